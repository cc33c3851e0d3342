"""The writer's process: the one read-write SQLite connection, in a process of its own.

    python -m northstard.store.writer_child FD MEMFD PARENT_PID PATH SYNCHRONOUS

The writer actor (``actors/writer.py``, through ``writer_process``) starts it
and sends it requests; it answers each in turn. Its
own interpreter, so its SQLite work and the engine's Python run at the same
time (in one process they took turns on one GIL). Nothing in it decides
what to write: a request is a ``batch.Job`` built by the actor, or one of the
few maintenance steps below.

A request is ``(name, args)`` in ``marshal``'s format, written at the start of the shared
memory file ``MEMFD`` (one ``pwrite``: a batch's request is megabytes, which
through a socket would move a buffer at a time, each time the sender's thread
got the GIL back), announced by its 4-byte big-endian length on the socket
``FD``; one request at a time, so the file is reused. An answer is its length,
then its bytes, on the socket. Answers are ``("ok", result)``, ``("error", text)`` for an
SQLite error (the actor goes degraded and retries), or ``("crash", traceback)``
for anything else, after which the process exits. The first answer is to
the opening of the database: the position of the last committed change.

It lives exactly as long as its actor wants it: it ignores SIGINT and SIGTERM
(a Ctrl-C or a ``systemctl stop`` reaches the whole process group: the actor
flushes, then closes it), exits at the end of its socket, and the kernel kills
it when the daemon's process dies (``PR_SET_PDEATHSIG``), so a writer never
outlives the daemon that owns its database.

Bounds: one request at a time, as large as one batch (``storage.batch_max``
changes); the shared file stays as large as the largest request; the rollup's
running totals as in ``rollup.RunningTotals``.
"""

from __future__ import annotations

import ctypes
import marshal
import os
import signal
import socket
import sqlite3
import struct
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from northstard.store import batch
from northstard.store.gctune import tune_gc
from northstard.store.record_log import KeyOp
from northstard.store.rollup import RunningTotals
from northstard.store.sqlite import open_writer

__all__ = ["HEADER", "Writer", "dumps", "frame", "main", "read_exactly"]

HEADER = struct.Struct(">I")
DAY_MS = 86_400_000
RETENTION_CHUNK = 5000
PR_SET_PDEATHSIG = 1


def dumps(message: Any) -> bytes:
    """A message as it crosses: ``marshal`` (builtin values only; several times faster than
    pickle for rows of str and int, and both ends run the same Python)."""
    return marshal.dumps(message)


def frame(message: object) -> bytes:
    """An answer as sent on the socket: its length, then its bytes (``dumps``)."""
    body = dumps(message)
    return HEADER.pack(len(body)) + body


def read_exactly(sock: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            return None
        got += n
    return bytes(buffer)


def _receive(sock: socket.socket, memfd: int) -> object | None:
    """The next request: its length from the socket, its bytes from the shared file."""
    header = read_exactly(sock, HEADER.size)
    if header is None:
        return None
    size = HEADER.unpack(header)[0]
    body = bytearray()
    while len(body) < size:
        chunk = os.pread(memfd, size - len(body), len(body))
        if not chunk:
            raise EOFError(f"request of {size} bytes cut at {len(body)}")
        body += chunk
    request: object = marshal.loads(body)
    return request


class Writer:
    """The connection and what is kept between requests (the rollup's running totals)."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self.conn = open_writer(path, synchronous)
        self.totals = RunningTotals()

    def committed(self) -> tuple[str, int] | None:
        """The position of the last committed change (``current``), or None: a new store."""
        row = self.conn.execute("SELECT epoch, seq FROM current WHERE id = 1").fetchone()
        return (str(row[0]), int(row[1])) if row is not None else None

    def write(self, now_ms: int, changes: list[tuple[int, list[KeyOp]]],
              statements: list[batch.Statement], rollups: list[batch.Rollup]) -> None:
        batch.run(self.conn, batch.Job(now_ms, changes, statements, rollups), self.totals)

    def statements(self, statements: list[batch.Statement]) -> None:
        batch.run(self.conn, batch.Job(statements=statements), self.totals)

    def checkpoint(self) -> None:
        """Everything into the main file, the WAL emptied, so the file alone is the whole
        database (other connections, such as the engine's reader, may still be open)."""
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def retention(self, keep_deltas_days: float, keep_buckets_days: float) -> int:
        """Delete one bounded chunk of expired rows; returns how many went."""
        now_ms = int(time.time() * 1000)
        removed = 0
        with self.conn:
            if keep_deltas_days > 0:
                cutoff = now_ms - int(keep_deltas_days * DAY_MS)
                for table in ("deltas", "snapshots"):
                    removed += self.conn.execute(
                        f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table}"
                        " WHERE ts_ms < ? LIMIT ?)",
                        (cutoff, RETENTION_CHUNK),
                    ).rowcount
            if keep_buckets_days > 0:
                cutoff = now_ms - int(keep_buckets_days * DAY_MS)
                removed += self.conn.execute(
                    "DELETE FROM buckets WHERE start_ms < ?", (cutoff,)
                ).rowcount
        return removed

    def handlers(self) -> dict[str, Callable[..., object]]:
        return {"write": self.write, "statements": self.statements,
                "checkpoint": self.checkpoint, "retention": self.retention}


def serve(sock: socket.socket, memfd: int, path: Path, synchronous: str) -> None:
    """Open the database, then answer requests until the socket ends."""
    try:
        writer = Writer(path, synchronous)
    except Exception as exc:  # the actor raises it as the opening's error
        sock.sendall(frame(("crash", str(exc))))
        return
    sock.sendall(frame(("ok", writer.committed())))
    handlers = writer.handlers()
    try:
        while (request := _receive(sock, memfd)) is not None:
            assert isinstance(request, tuple)
            name, args = request
            try:
                answer: tuple[str, object] = ("ok", handlers[name](*args))
            except sqlite3.Error as exc:
                answer = ("error", f"{type(exc).__name__}: {exc}")
            except Exception:
                sock.sendall(frame(("crash", traceback.format_exc())))
                return
            sock.sendall(frame(answer))
    finally:
        writer.conn.close()


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL when the daemon dies (Linux); if it is already gone, exit now."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the end of the socket still ends it
    if os.getppid() != parent_pid:
        os._exit(0)


def main(argv: list[str]) -> int:
    fd, memfd, parent_pid = int(argv[0]), int(argv[1]), int(argv[2])
    path, synchronous = Path(argv[3]), argv[4]
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tune_gc()  # as the daemon's: a batch's rows would otherwise be scanned while written
    with socket.socket(fileno=fd) as sock:
        serve(sock, memfd, path, synchronous)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
