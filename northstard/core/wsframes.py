"""WebSocket frames (RFC 6455), with no I/O: encode server frames, parse client frames.

Server frames are unmasked, so one encoded frame serves every client::

    frame = text_frame(message)          # once per message
    for sock in sockets: sock.send(frame)

``FrameReader.feed(data)`` turns the bytes a client sent into events
(``Message``, ``Ping``, ``Pong``, ``Close``) and raises ``ProtocolError``
carrying the close code to answer with: 1002 for an unmasked frame, a
reserved bit, an unknown opcode or a broken fragmentation; 1007 for text that
is not UTF-8; 1009 for a message over the size limit.

Text is checked as it arrives: each message has an incremental UTF-8 decoder
fed every payload byte received so far, whole frame or not, so invalid UTF-8
is refused (1007) at the bytes that break it, not after the last fragment.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "Close",
    "CloseCode",
    "FrameReader",
    "Message",
    "Opcode",
    "Ping",
    "Pong",
    "ProtocolError",
    "accept_key",
    "close_frame",
    "encode_frame",
    "mask",
    "text_frame",
    "valid_key",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_CONTROL_PAYLOAD = 125
MAX_REASON_BYTES = 123
MAX_LENGTH = (1 << 63) - 1  # the most significant bit of a 64-bit length must be 0


class Opcode(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    NO_STATUS = 1005  # never sent: a close frame without a code reads as this
    INVALID_DATA = 1007
    POLICY = 1008
    TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    BLOCKED = 4008  # northstard: the client stopped reading for too long


_OPCODES = frozenset(int(opcode) for opcode in Opcode)


@dataclass(frozen=True)
class Message:
    data: str | bytes


@dataclass(frozen=True)
class Ping:
    payload: bytes


@dataclass(frozen=True)
class Pong:
    payload: bytes


@dataclass(frozen=True)
class Close:
    code: int
    reason: str


Event = Message | Ping | Pong | Close


class ProtocolError(Exception):
    """The client broke the protocol; close the connection with ``code``."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(f"{int(code)}: {reason}")
        self.code = code
        self.reason = reason


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` answer to a ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def valid_key(key: str) -> bool:
    """A key is the base64 of 16 bytes."""
    try:
        return len(base64.b64decode(key.encode("ascii"), validate=True)) == 16
    except (ValueError, UnicodeEncodeError):
        return False


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR with the 4-byte masking key (masking and unmasking are the same)."""
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(payload), "big")


def _length_bytes(size: int) -> tuple[int, bytes]:
    if size < 126:
        return size, b""
    if size < 1 << 16:
        return 126, size.to_bytes(2, "big")
    return 127, size.to_bytes(8, "big")


def encode_frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask_key: bytes | None = None, rsv: int = 0
) -> bytes:
    """One frame. Servers send unmasked frames; ``mask_key`` is for client frames (tests)."""
    first = (0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode
    length, extended = _length_bytes(len(payload))
    if mask_key is None:
        return bytes((first, length)) + extended + payload
    return bytes((first, 0x80 | length)) + extended + mask_key + mask(payload, mask_key)


def text_frame(text: str) -> bytes:
    return encode_frame(Opcode.TEXT, text.encode())


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame; the reason is cut to fit a control frame, on a character boundary."""
    data = reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore").encode()
    return encode_frame(Opcode.CLOSE, code.to_bytes(2, "big") + data)


def _valid_close_code(code: int) -> bool:
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011) or 3000 <= code <= 4999


def _close_event(payload: bytes) -> Close:
    if not payload:
        return Close(CloseCode.NO_STATUS, "")
    if len(payload) == 1:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not _valid_close_code(code):
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        return Close(code, payload[2:].decode())
    except UnicodeDecodeError:
        raise ProtocolError(CloseCode.INVALID_DATA, "close reason is not UTF-8") from None


def _check_bits(first: int, second: int) -> None:
    """What the first two bytes of a client frame alone can break."""
    if not second & 0x80:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "client frames must be masked")
    if first & 0x70:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "reserved bits set (no extension agreed)")
    if first & 0x0F not in _OPCODES:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, f"unknown opcode {first & 0x0F:#x}")
    if first & 0x0F >= Opcode.CLOSE and (not first & 0x80 or second & 0x7F > MAX_CONTROL_PAYLOAD):
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "control frames must be final and at most 125 bytes")


@dataclass(frozen=True)
class _Header:
    fin: bool
    opcode: int
    length: int
    size: int  # header bytes, masking key included
    key: bytes


class FrameReader:
    """Incremental parser of client frames; reassembles fragmented messages.

    Holds at most one frame's bytes plus one message (``max_message_bytes``).
    """

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self._buffer = bytearray()
        self._fragments = bytearray()  # a binary message so far
        self._text: list[str] = []  # a text message so far, decoded
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._size = 0  # payload bytes of the message so far (whole frames)
        self._fragment_opcode: int | None = None
        self._frame: _Header | None = None  # the frame under way, once its header was checked
        self._decoded = 0  # payload bytes of that frame already fed to the decoder

    def __repr__(self) -> str:
        return (f"<FrameReader buffered={len(self._buffer)} "
                f"fragments={self._size} opcode={self._fragment_opcode}>")

    def feed(self, data: bytes) -> list[Event]:
        """Events completed by ``data``; ProtocolError when the client broke the protocol."""
        self._buffer += data
        events: list[Event] = []
        while (header := self._header()) is not None:
            if self._frame is None:
                self._begin(header)
                self._frame = header
            end = header.size + header.length
            if self._is_text(header):
                self._decode(header, min(len(self._buffer), end))
            if len(self._buffer) < end:
                break
            payload = b"" if self._is_text(header) else mask(bytes(self._buffer[header.size:end]), header.key)
            del self._buffer[:end]
            self._frame, self._decoded = None, 0
            event = self._end(header, payload)
            if event is not None:
                events.append(event)
        return events

    def _header(self) -> _Header | None:
        """The next frame's header once it is all here; each check as soon as its bytes are.

        The bits of the first two bytes are checked at once, the length once it is
        known: a frame that can only be refused is never waited on (an unmasked
        frame has no masking key to wait for).
        """
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        fin, opcode = bool(first & 0x80), first & 0x0F
        _check_bits(first, second)
        length, size = second & 0x7F, 2
        if length == 126:
            size = 4
        elif length == 127:
            size = 10
        if len(buffer) < size:
            return None
        if size > 2:
            length = int.from_bytes(buffer[2:size], "big")
        self._check_length(opcode, length)
        if len(buffer) < size + 4:
            return None
        return _Header(fin, opcode, length, size + 4, bytes(buffer[size:size + 4]))

    def _check_length(self, opcode: int, length: int) -> None:
        if length > MAX_LENGTH:
            raise ProtocolError(CloseCode.PROTOCOL_ERROR, "64-bit length with its top bit set")
        if opcode < Opcode.CLOSE and self._size + length > self.max_message_bytes:
            raise ProtocolError(CloseCode.TOO_BIG,
                                f"message over {self.max_message_bytes} bytes")

    def _begin(self, header: _Header) -> None:
        """A data frame must start a message or continue the one under way."""
        opcode = header.opcode
        if opcode == Opcode.CONTINUATION:
            if self._fragment_opcode is None:
                raise ProtocolError(CloseCode.PROTOCOL_ERROR, "continuation without a message")
        elif opcode < Opcode.CLOSE:
            if self._fragment_opcode is not None:
                raise ProtocolError(CloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
            self._fragment_opcode = opcode

    def _is_text(self, header: _Header) -> bool:
        return header.opcode < Opcode.CLOSE and self._fragment_opcode == Opcode.TEXT

    def _decode(self, header: _Header, end: int) -> None:
        """Feed the text payload received up to ``end`` (a frame may be partial) to the decoder."""
        start = header.size + self._decoded
        if end <= start:
            return
        offset = self._decoded % 4
        key = header.key[offset:] + header.key[:offset]
        try:
            self._text.append(self._decoder.decode(mask(bytes(self._buffer[start:end]), key)))
        except UnicodeDecodeError:
            raise ProtocolError(CloseCode.INVALID_DATA, "text message is not UTF-8") from None
        self._decoded = end - header.size

    def _end(self, header: _Header, payload: bytes) -> Event | None:
        """The event a whole frame completes, if any."""
        opcode = header.opcode
        if opcode == Opcode.PING:
            return Ping(payload)
        if opcode == Opcode.PONG:
            return Pong(payload)
        if opcode == Opcode.CLOSE:
            return _close_event(payload)
        self._size += header.length
        self._fragments += payload
        if not header.fin:
            return None
        return self._message()

    def _message(self) -> Message:
        opcode, data = self._fragment_opcode, bytes(self._fragments)
        self._fragment_opcode, self._size = None, 0
        self._fragments.clear()
        if opcode == Opcode.BINARY:
            return Message(data)
        try:
            self._text.append(self._decoder.decode(b"", final=True))  # a character cut at the end
        except UnicodeDecodeError:
            raise ProtocolError(CloseCode.INVALID_DATA, "text message is not UTF-8") from None
        finally:
            self._decoder.reset()
        text = "".join(self._text)
        self._text.clear()
        return Message(text)
