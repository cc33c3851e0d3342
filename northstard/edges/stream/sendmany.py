"""The fan-out's inner loop: one frame to many sockets, in C, on every core.

On loopback a ``send`` of a 500-byte frame costs ~9 µs, nearly all of it in
the kernel (the sender's system call also runs the receiver's TCP input), so
10,000 clients make a ~90 ms burst on one core. ``northstard._fanout``
(``_fanout.c``) sends to a whole array of descriptors with the GIL released,
so the burst is split over ``threads`` threads that really run in parallel,
and the Python work per client drops to building the descriptor array.

A ``Batch`` splits the peers once (descriptor array built once, kept while
the set of peers does not change); ``Sender.send`` returns only the peers of
a batch that did not take the whole frame,
with what they took: the byte count (0: would block) or -1 for a failed
connection, the same contract as ``Peer.send_some``. A peer whose ``fd`` is
-1 (its ``send`` is not the socket's own, e.g. TLS) is sent to in Python, as
is everyone when the C module was not built (no compiler at install).
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar

SendMany = Callable[["array[int]", bytes, int, int], list[tuple[int, int]]]


def _compiled() -> SendMany | None:
    try:
        from northstard._fanout import send_many
    except ImportError:  # pip builds it; without a compiler the loop runs in Python
        return None
    return send_many


_send_many = _compiled()

__all__ = ["COMPILED", "Batch", "Sender", "default_threads", "send_each"]

COMPILED = _send_many is not None
SPLIT_MIN = 1024  # below this many sockets one thread does it all (a hand-off costs ~50 µs)
CHUNKS_PER_THREAD = 8
CHUNK_MIN = 128


class Sendable(Protocol):
    @property
    def fd(self) -> int: ...

    def send_some(self, data: bytes) -> int:
        """Bytes of ``data`` taken: 0 if the socket would block, -1 if the connection failed."""
        ...


P = TypeVar("P", bound=Sendable)


def default_threads() -> int:
    """One sending thread per core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def send_each(peers: Sequence[P], frame: bytes) -> list[tuple[P, int]]:
    """The Python loop: ``peer.send_some(frame)`` for each peer; the ones that took less."""
    size = len(frame)
    short = []
    for peer in peers:
        sent = peer.send_some(frame)
        if sent != size:
            short.append((peer, sent))
    return short


def _send_chunks(fds: array[int], frame: bytes, chunks: Iterator[tuple[int, int]]) -> list[tuple[int, int]]:
    assert _send_many is not None
    short: list[tuple[int, int]] = []
    for start, stop in chunks:
        short.extend(_send_many(fds, frame, start, stop))
    return short


class Batch(Generic[P]):
    """Peers to send to, split once: the C loop's descriptors, and the peers it cannot write to."""

    __slots__ = ("fds", "other", "raw")

    def __init__(self, peers: Iterable[P]) -> None:
        self.raw: list[P] = []
        self.other: list[P] = []
        for peer in peers:
            (self.raw if peer.fd >= 0 and COMPILED else self.other).append(peer)
        self.fds = array("i", [peer.fd for peer in self.raw])

    def __len__(self) -> int:
        return len(self.raw) + len(self.other)


class Sender:
    """Sends a frame to a batch of peers: the C loop split over ``threads`` threads."""

    def __init__(self, threads: int = 1, split_min: int = SPLIT_MIN, chunk_min: int = CHUNK_MIN) -> None:
        self.threads = max(1, threads)
        self.split_min = max(1, split_min)
        self.chunk_min = max(1, chunk_min)
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"<Sender threads={self.threads} compiled={COMPILED}>"

    def send(self, batch: Batch[P], frame: bytes) -> list[tuple[P, int]]:
        """Send ``frame`` to every peer of ``batch``; the ones that took less, with what they took."""
        short = send_each(batch.other, frame) if batch.other else []
        if batch.raw:
            raw = batch.raw
            short.extend((raw[index], sent) for index, sent in self._send_fds(batch.fds, frame))
        return short

    def _send_fds(self, fds: array[int], frame: bytes) -> list[tuple[int, int]]:
        assert _send_many is not None
        count = len(fds)
        helpers = min(self.threads, count // self.split_min) - 1
        if helpers <= 0:
            return _send_many(fds, frame, 0, count)
        # Chunks taken in turn by this thread and the helpers (next() on a shared iterator is
        # atomic under the GIL): a thread that gets descheduled holds up one chunk, not half.
        size = max(self.chunk_min, count // (CHUNKS_PER_THREAD * (helpers + 1)))
        chunks = iter([(start, min(start + size, count)) for start in range(0, count, size)])
        pool = self._executor()
        others = [pool.submit(_send_chunks, fds, frame, chunks) for _ in range(helpers)]
        short = _send_chunks(fds, frame, chunks)
        for future in others:
            short.extend(future.result())
        short.sort()
        return short

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="northstard-send")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
