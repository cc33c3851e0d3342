"""An asyncio event loop in a worker thread, owned and driven by a trio task.

    async with open_asyncio_thread() as loop_thread:
        result = await loop_thread.run(coroutine())   # trio waits, never blocks
        loop_thread.call_soon(function, *args)        # fire and forget

Trio hands work over with ``call_soon_threadsafe`` / ``run_coroutine_threadsafe``;
the loop reports back with ``TrioToken.run_sync_soon``, which never blocks the
loop. Nothing on the loop touches a trio object except through that. Leaving
the block stops the loop (``asyncio.run`` cancels what is left and shuts
down its executor) and waits for the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TypeVar

import trio

__all__ = ["AsyncioThread", "open_asyncio_thread"]

T = TypeVar("T")


class AsyncioThread:
    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self.token = token
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = False

    def __repr__(self) -> str:
        state = "running" if self.loop is not None and self.loop.is_running() else "stopped"
        return f"<AsyncioThread {state}>"

    def to_trio(self, function: Callable[..., object], *args: object) -> None:
        """From the loop thread: run ``function(*args)`` on trio's thread soon (never blocks)."""
        with contextlib.suppress(trio.RunFinishedError):
            self.token.run_sync_soon(function, *args)

    async def _main(self, ready: trio.Event) -> None:
        self._stop = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        if self._stopping:  # stopped before it started (``stop`` sets the flag, then looks)
            return
        self.to_trio(ready.set)
        await self._stop.wait()

    def host(self, ready: trio.Event) -> None:
        """The worker thread's body: the loop, until ``stop``."""
        asyncio.run(self._main(ready))

    def call_soon(self, function: Callable[..., object], *args: object) -> bool:
        """From trio: schedule ``function(*args)`` on the loop; False once the loop is gone."""
        if self.loop is None:
            return False
        try:
            self.loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop is closed
            return False
        return True

    async def run(self, coroutine: Coroutine[object, object, T]) -> T:
        """From trio: run ``coroutine`` on the loop and wait for its result."""
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        done = trio.Event()
        future.add_done_callback(lambda _: self.to_trio(done.set))
        try:
            await done.wait()
        except trio.Cancelled:
            future.cancel()
            raise
        return future.result()

    def stop(self) -> None:
        """From trio: end the loop (``asyncio.run`` then cancels what is left)."""
        self._stopping = True
        if self._stop is not None:
            self.call_soon(self._stop.set)


@contextlib.asynccontextmanager
async def open_asyncio_thread() -> AsyncIterator[AsyncioThread]:
    """A running loop in a worker thread for the duration of the block."""
    thread = AsyncioThread(trio.lowlevel.current_trio_token())
    ready = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, thread.host, ready)
        try:
            await ready.wait()
            yield thread
        finally:
            thread.stop()
