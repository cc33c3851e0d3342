"""The fan-out's inner loop (web/sendmany.py and the C module): every socket gets the frame once."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from northstard.edges.stream import sendmany
from northstard.edges.stream.sendmany import COMPILED, Batch, Sender, send_each

FRAME = b"\x81\x05hello"


class SocketPeer:
    """Like ``broadcast.Peer``: a socket, its descriptor, and ``send_some``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()

    def send_some(self, data: bytes) -> int:
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0
        except OSError:
            return -1


class EncryptingPeer:
    """A peer whose ``send_some`` must be called (like a TLS peer): fd -1."""

    def __init__(self) -> None:
        self.fd = -1
        self.sent: list[bytes] = []

    def send_some(self, data: bytes) -> int:
        self.sent.append(bytes(data))
        return len(data)


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    with ExitStack() as stack:
        made = []
        for _ in range(40):
            ours, theirs = socket.socketpair()
            stack.callback(ours.close)
            stack.callback(theirs.close)
            ours.setblocking(False)
            theirs.setblocking(False)
            made.append((ours, theirs))
        yield made


def _fill(sock: socket.socket) -> None:
    """Send until the socket would block."""
    while True:
        try:
            sock.send(b"x" * 65536)
        except BlockingIOError:
            return


def test_compiled_in_ci() -> None:
    """CI installs with pip, which builds northstard._fanout: the C loop is what runs there."""
    if os.environ.get("CI"):
        assert COMPILED


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_every_socket_gets_the_frame_once(pairs: list[tuple[socket.socket, socket.socket]],
                                          threads: int) -> None:
    blocked_ours, _ = pairs[5]
    _fill(blocked_ours)
    gone_ours, gone_theirs = pairs[17]
    gone_theirs.close()
    encrypting = EncryptingPeer()
    peers: list[SocketPeer | EncryptingPeer] = [SocketPeer(ours) for ours, _ in pairs]
    peers.insert(9, encrypting)
    sender = Sender(threads, split_min=4, chunk_min=3)
    try:
        short = sender.send(Batch(peers), FRAME)
    finally:
        sender.close()
    assert {(peers.index(peer), sent) for peer, sent in short} == {(5, 0), (18, -1)}
    assert encrypting.sent == [FRAME]
    for index, (ours, theirs) in enumerate(pairs):
        if ours in (blocked_ours, gone_ours):
            continue
        assert theirs.recv(100) == FRAME, index
        with pytest.raises(BlockingIOError):
            theirs.recv(100)


def test_a_partial_write_reports_what_was_taken(pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    ours, theirs = pairs[0]
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = b"y" * (1 << 20)
    [(_peer, sent)] = Sender(1).send(Batch([SocketPeer(ours)]), big)
    assert 0 < sent < len(big)
    received = b""
    while len(received) < sent:
        received += theirs.recv(1 << 20)
    assert received == big[:sent]


def test_the_python_loop_keeps_the_same_contract(pairs: list[tuple[socket.socket, socket.socket]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the C module (no compiler at install) the loop runs in Python, with the same answers."""
    monkeypatch.setattr(sendmany, "COMPILED", False)
    monkeypatch.setattr(sendmany, "_send_many", None)
    _fill(pairs[2][0])
    peers = [SocketPeer(ours) for ours, _ in pairs]
    batch = Batch(peers)
    assert batch.raw == [] and len(batch) == len(peers)
    assert [(peers.index(p), sent) for p, sent in Sender(2).send(batch, FRAME)] == [(2, 0)]
    assert send_each([], FRAME) == []
    assert pairs[3][1].recv(100) == FRAME
