"""Pure units of the WebSocket edge: frames, the frame reader, HTTP heads, the handshake checks."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from northstard.core.http1 import (
    error_response,
    head_end,
    parse_head,
    request_line,
    response_head,
)
from northstard.core.wsframes import (
    Close,
    CloseCode,
    FrameReader,
    Message,
    Opcode,
    Ping,
    Pong,
    ProtocolError,
    accept_key,
    close_frame,
    encode_frame,
    mask,
    text_frame,
    valid_key,
)
from northstard.edges.stream.fastws import check_handshake
from northstard.errors import RequestError
from northstard.policy.access import origin_allowed

KEY = b"\x01\x02\x03\x04"


def client(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    return encode_frame(opcode, payload, fin=fin, mask_key=KEY, rsv=rsv)


def refused(data: bytes, max_message_bytes: int = 1024) -> ProtocolError:
    with pytest.raises(ProtocolError) as raised:
        FrameReader(max_message_bytes).feed(data)
    return raised.value


# -- frames ---------------------------------------------------------------------------


def test_accept_key_is_the_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_key_must_be_16_bytes_of_base64() -> None:
    assert valid_key("dGhlIHNhbXBsZSBub25jZQ==")
    assert not valid_key("dGhlIHNhbXBsZQ==")
    assert not valid_key("not base64!")
    assert not valid_key("dGhlIHNhbXBsZSBub25jZQ==é")


@pytest.mark.parametrize(("size", "header"), [
    (0, b"\x81\x00"), (125, b"\x81\x7d"), (126, b"\x81\x7e\x00\x7e"),
    (65535, b"\x81\x7e\xff\xff"), (65536, b"\x81\x7f" + (65536).to_bytes(8, "big")),
])
def test_server_frames_are_unmasked_with_the_shortest_length(size: int, header: bytes) -> None:
    frame = text_frame("x" * size)
    assert frame == header + b"x" * size


def test_masking_twice_gives_the_payload_back() -> None:
    payload = bytes(range(256)) * 3
    assert mask(mask(payload, KEY), KEY) == payload
    assert mask(b"", KEY) == b""


def test_a_close_reason_is_cut_on_a_character_boundary() -> None:
    frame = close_frame(1001, "é" * 100)
    assert frame[1] <= 125
    payload = frame[2:]
    assert int.from_bytes(payload[:2], "big") == 1001
    assert payload[2:].decode() == "é" * 61


# -- the frame reader ----------------------------------------------------------------------


def test_reads_text_binary_and_control_frames() -> None:
    reader = FrameReader(1024)
    data = (client(Opcode.TEXT, "héllo".encode()) + client(Opcode.BINARY, b"\x00\x01")
            + client(Opcode.PING, b"p") + client(Opcode.PONG, b"q")
            + client(Opcode.CLOSE, (1000).to_bytes(2, "big") + b"bye"))
    assert reader.feed(data) == [Message("héllo"), Message(b"\x00\x01"), Ping(b"p"), Pong(b"q"),
                                 Close(1000, "bye")]


def test_a_fragmented_message_is_reassembled_around_a_control_frame() -> None:
    reader = FrameReader(1024)
    assert reader.feed(client(Opcode.TEXT, b'{"type":', fin=False)) == []
    assert reader.feed(client(Opcode.PING, b"mid")) == [Ping(b"mid")]
    assert reader.feed(client(Opcode.CONTINUATION, b'"ping"', fin=False)) == []
    assert reader.feed(client(Opcode.CONTINUATION, b"}")) == [Message('{"type":"ping"}')]


def test_a_frame_split_anywhere_reads_the_same() -> None:
    data = client(Opcode.TEXT, b"x" * 300) + client(Opcode.PING, b"")
    for cut in range(len(data)):
        reader = FrameReader(1024)
        assert reader.feed(data[:cut]) + reader.feed(data[cut:]) == [Message("x" * 300), Ping(b"")]


@given(st.lists(st.text(max_size=200), max_size=8), st.integers(1, 50), st.data())
def test_any_messages_in_any_chunks_come_out_whole(
    texts: list[str], fragment: int, data: st.DataObject
) -> None:
    wire = b""
    for text in texts:
        payload = text.encode()
        pieces = [payload[i:i + fragment] for i in range(0, len(payload), fragment)] or [b""]
        for index, piece in enumerate(pieces):
            opcode = Opcode.TEXT if index == 0 else Opcode.CONTINUATION
            wire += client(opcode, piece, fin=index == len(pieces) - 1)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    reader = FrameReader(4096)
    events = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        events += reader.feed(wire[start:end])
    assert events == [Message(text) for text in texts]


@pytest.mark.parametrize(("data", "code"), [
    (encode_frame(Opcode.TEXT, b"unmasked"), CloseCode.PROTOCOL_ERROR),
    (client(Opcode.TEXT, b"x", rsv=4), CloseCode.PROTOCOL_ERROR),
    (client(0x3, b"x"), CloseCode.PROTOCOL_ERROR),
    (client(0xB, b"x"), CloseCode.PROTOCOL_ERROR),
    (client(Opcode.PING, b"x", fin=False), CloseCode.PROTOCOL_ERROR),
    (client(Opcode.PING, b"x" * 126), CloseCode.PROTOCOL_ERROR),
    (client(Opcode.CONTINUATION, b"x"), CloseCode.PROTOCOL_ERROR),
    (client(Opcode.TEXT, b"a", fin=False) + client(Opcode.TEXT, b"b"), CloseCode.PROTOCOL_ERROR),
    (client(Opcode.TEXT, b"\xff\xfe"), CloseCode.INVALID_DATA),
    (client(Opcode.TEXT, b"\xc3", fin=False) + client(Opcode.CONTINUATION, b"("),
     CloseCode.INVALID_DATA),
    (client(Opcode.CLOSE, b"\x03"), CloseCode.PROTOCOL_ERROR),
    (client(Opcode.CLOSE, (1005).to_bytes(2, "big")), CloseCode.PROTOCOL_ERROR),
    (client(Opcode.CLOSE, (999).to_bytes(2, "big")), CloseCode.PROTOCOL_ERROR),
    (client(Opcode.CLOSE, (1000).to_bytes(2, "big") + b"\xff"), CloseCode.INVALID_DATA),
    (client(Opcode.TEXT, b"x" * 1025), CloseCode.TOO_BIG),
    (client(Opcode.TEXT, b"x" * 600, fin=False) + client(Opcode.CONTINUATION, b"x" * 600),
     CloseCode.TOO_BIG),
])
def test_protocol_violations_name_their_close_code(data: bytes, code: CloseCode) -> None:
    assert refused(data).code == code


def test_an_oversized_frame_is_refused_from_its_header_alone() -> None:
    header = b"\x81\xff" + (1 << 40).to_bytes(8, "big") + KEY
    assert refused(header).code == CloseCode.TOO_BIG
    top_bit = b"\x81\xff" + (1 << 63).to_bytes(8, "big") + KEY
    assert refused(top_bit, 1 << 62).code == CloseCode.PROTOCOL_ERROR


def test_a_close_without_a_code_reads_as_no_status() -> None:
    assert FrameReader(10).feed(client(Opcode.CLOSE, b"")) == [Close(CloseCode.NO_STATUS, "")]


# -- HTTP heads ---------------------------------------------------------------------------


UPGRADE = (
    b"GET /ws?since=e%3A5&since=x HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: WebSocket\r\n"
    b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\nX-Twice: a\r\nX-Twice: b\r\n\r\n"
)


def test_a_head_is_parsed_with_lower_case_names_and_joined_repeats() -> None:
    assert request_line(UPGRADE[:10]) is None
    assert request_line(UPGRADE) == ("GET", "/ws?since=e%3A5&since=x", "HTTP/1.1")
    assert head_end(UPGRADE[:-1]) == -1 and head_end(UPGRADE + b"rest") == len(UPGRADE)
    request = parse_head(UPGRADE)
    assert request.path == "/ws" and request.args == {"since": "e:5"}
    assert request.headers["x-twice"] == "a, b"
    assert request.tokens("connection") == {"keep-alive", "upgrade"}


@pytest.mark.parametrize("head", [
    b"GET /ws\r\n\r\n", b"GET ws HTTP/1.1\r\n\r\n", b"GET /ws HTTP/2\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nno colon\r\n\r\n", b"GET /ws HTTP/1.1\r\n folded: x\r\n\r\n",
])
def test_a_malformed_head_is_a_400(head: bytes) -> None:
    with pytest.raises(RequestError) as raised:
        parse_head(head)
    assert raised.value.status == 400


def test_responses_are_http_1_1_with_json_errors() -> None:
    assert response_head(101, [("upgrade", "websocket")]) == (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n")
    answer = error_response(403, "forbidden", "no", [("x-a", "b")])
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"content-length: %d" % len(body) in head and b"connection: close" in head
    assert json.loads(body) == {"error": "forbidden", "detail": "no"}


# -- the handshake ---------------------------------------------------------------------------


def _status(head: bytes, allowed: tuple[str, ...] = ()) -> int:
    try:
        check_handshake(parse_head(head), allowed)
    except RequestError as exc:
        return exc.status
    return 101


def test_a_valid_upgrade_is_accepted() -> None:
    assert check_handshake(parse_head(UPGRADE), ()) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(("old", "new", "status"), [
    (b"GET /ws", b"POST /ws", 405),
    (b"HTTP/1.1\r\nHost", b"HTTP/1.0\r\nHost", 400),
    (b"Host: example.com:8080\r\n", b"", 400),
    (b"Upgrade: WebSocket\r\n", b"", 426),
    (b"keep-alive, Upgrade", b"keep-alive", 400),
    (b"Version: 13", b"Version: 8", 426),
    (b"Key: dGhlIHNhbXBsZSBub25jZQ==", b"Key: short", 400),
    (b"X-Twice: a", b"Origin: https://evil.example\r\nX-Twice: a", 403),
    (b"X-Twice: a", b"Origin: null\r\nX-Twice: a", 403),
    (b"X-Twice: a", b"Origin: http://example.com:8080\r\nX-Twice: a", 101),
])
def test_bad_upgrades_get_400_405_426_or_403(old: bytes, new: bytes, status: int) -> None:
    assert old in UPGRADE
    assert _status(UPGRADE.replace(old, new)) == status


def test_origins_same_origin_listed_or_any() -> None:
    assert origin_allowed(None, "a.example", ())
    assert origin_allowed("https://a.example", "A.example", ())
    assert not origin_allowed("https://b.example", "a.example", ())
    assert origin_allowed("https://B.example", "a.example", ("https://b.example",))
    assert not origin_allowed("http://b.example", "a.example", ("https://b.example",))
    assert origin_allowed("https://anything", "a.example", ("*",))
    assert not origin_allowed("http://[bad", "a.example", ())
