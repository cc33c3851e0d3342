"""The writer actor's side of its process (``writer_child``): start it, feed it, close it.

``WriterProcess.start`` spawns ``python -m northstard.store.writer_child``
with one end of a socket pair and a shared memory file for the requests
(``writer_child`` says why), and waits until it has opened the database
(its error, such as a newer schema, is raised here as a ``StoreError``).

Requests go through a thread of their own, the conveyor: ``submit`` queues a
request (at most a few: the actor's pipeline bounds them), the conveyor sends
one, waits for its answer with the GIL released, and sends the next at once
if the answer was "committed". So the process is fed as soon as it is done,
not when the event loop is next free (the engine computes a change without
yielding: a backlog merged into one change is a few hundred milliseconds).
After an answer that is an SQLite error the conveyor drops what is queued and
sends nothing more until the actor has read that answer: a batch is never
written after one that failed. ``answer`` gives the answers in order; an
SQLite error is raised as ``StoreError`` (the actor goes degraded and
retries), a crash or the end of the process as ``WriterGone`` (the actor fails
and its supervisor starts it, and so a new process, again).
"""

from __future__ import annotations

import contextlib
import marshal
import math
import os
import socket
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

import trio

import northstard
from northstard.errors import StoreError, WriterGone
from northstard.store.writer_child import HEADER, dumps, read_exactly

__all__ = ["WriterProcess"]

CLOSE_S = 30.0  # how long a closing child may take to finish its last request and exit
ROOT = str(Path(northstard.__file__).resolve().parent.parent)  # the child imports northstard from here

Answer = tuple[str, object]


def _put(memfd: int, body: bytes) -> None:
    """Write ``body`` at the start of the shared file (one syscall without the GIL)."""
    view = memoryview(body)
    done = 0
    while done < len(view):
        done += os.pwrite(memfd, view[done:], done)


class WriterProcess:
    def __init__(self, process: trio.Process, sock: socket.socket, memfd: int) -> None:
        self.process = process
        self.sock = sock
        self.memfd = memfd
        self._answers_in, self._answers = trio.open_memory_channel[Answer](math.inf)
        self._token = trio.lowlevel.current_trio_token()
        self._lock = threading.Condition()
        self._queue: deque[bytes] = deque()  # submitted, not yet sent (under _lock)
        self._refused = 0  # error answers the conveyor has had (under _lock)
        self._refused_read = 0  # error answers ``answer`` has given
        self._closing = False
        self._gone: str | None = None  # the process crashed or ended: nothing more will answer
        self.committed: tuple[str, int] | None = None  # (epoch, seq) of the last commit at start
        self._thread = threading.Thread(target=self._convey, name="northstard-writer-conveyor",
                                        daemon=True)

    @classmethod
    async def start(cls, path: Path, synchronous: str) -> WriterProcess:
        ours, theirs = socket.socketpair()
        memfd = os.memfd_create("northstard-writer")
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}  # systemd: ours only
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
        command = [sys.executable, "-P", "-m", "northstard.store.writer_child",
                   str(theirs.fileno()), str(memfd), str(os.getpid()), str(path), synchronous]
        try:
            process = await trio.lowlevel.open_process(
                command, pass_fds=(theirs.fileno(), memfd), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, env=env)  # stderr: the daemon's (a crash's traceback)
        except BaseException:
            ours.close()
            os.close(memfd)
            raise
        finally:
            theirs.close()
        writer = cls(process, ours, memfd)
        writer._thread.start()
        try:  # the child's first answer, unasked: the opening
            opened = await writer.answer(opening=True)
            if isinstance(opened, tuple):
                writer.committed = (str(opened[0]), int(opened[1]))
        except BaseException:
            await writer.close()
            raise
        return writer

    def submit(self, body: bytes) -> bool:
        """Queue a request already encoded (``writer_child.dumps((name, args))``). False, and
        nothing queued, while an error answer is on its way that ``answer`` has not given yet."""
        with self._lock:
            if self._refused != self._refused_read:
                return False
            self._queue.append(body)
            self._lock.notify()
        return True

    def withdraw(self) -> int:
        """Take back every request not yet sent; how many."""
        with self._lock:
            count = len(self._queue)
            self._queue.clear()
        return count

    async def call(self, name: str, *args: object) -> object:
        """Run request ``name`` in the child (with nothing else submitted); its result."""
        if not self.submit(dumps((name, args))):
            raise StoreError("a write is refused and not yet answered")
        return await self.answer()

    async def answer(self, *, opening: bool = False) -> object:
        """The answer to the oldest request submitted and sent; shielded from cancellation (a
        request that was sent is answered before anything else happens)."""
        if self._gone is not None:
            raise WriterGone(self._gone)
        with trio.CancelScope(shield=True):
            status, value = await self._answers.receive()
        if status == "ok":
            return value
        if status == "error":  # the conveyor dropped what was queued behind it
            self._refused_read += 1
            raise StoreError(str(value))
        if status == "crash" and opening:
            raise StoreError(str(value))
        self._gone = f"writer process {status} (exit {self.process.poll()}): {value}"
        raise WriterGone(self._gone)

    def _convey(self) -> None:
        """The conveyor (its own thread): send, wait for the answer, hand it to the loop."""
        try:
            self._deliver(self._read_answer())  # the opening
            while (body := self._next()) is not None:
                _put(self.memfd, body)
                self.sock.sendall(HEADER.pack(len(body)))
                answer = self._read_answer()
                if answer[0] != "ok":
                    with self._lock:
                        self._refused += 1
                        self._queue.clear()
                self._deliver(answer)
        except Exception as exc:  # the socket's end (OSError, EOFError) or a garbled answer
            self._deliver(("ended", f"{type(exc).__name__}: {exc}"))

    def _next(self) -> bytes | None:
        with self._lock:
            while not self._queue and not self._closing:
                self._lock.wait()
            return self._queue.popleft() if self._queue else None

    def _read_answer(self) -> Answer:
        header = read_exactly(self.sock, HEADER.size)
        body = read_exactly(self.sock, HEADER.unpack(header)[0]) if header is not None else None
        if body is None:
            raise EOFError("the writer process closed its socket")
        status, value = marshal.loads(body)
        return str(status), value

    def _deliver(self, answer: Answer) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._answers_in.send_nowait, answer)

    async def close(self) -> None:
        """End the socket (the child closes the database and exits); kill it if it does not."""
        with trio.CancelScope(shield=True):
            with self._lock:
                self._closing = True
                self._queue.clear()
                self._lock.notify()
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
            with trio.move_on_after(CLOSE_S):
                await self.process.wait()
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
            await trio.to_thread.run_sync(self._thread.join)
            self.sock.close()
            os.close(self.memfd)
