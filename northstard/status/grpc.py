"""What the gRPC edge publishes about itself (read-only for the rest): where it listens, or why not.

A status record: the gRPC edge writes it, the HTTP edge's health route reads it,
so neither edge imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

__all__ = ["GrpcHandle"]


@dataclass
class GrpcHandle:
    """Where the gRPC edge listens (None while it does not), or why it cannot; set by ``run_grpc``."""

    address: str | None = None
    server: object | None = None  # the running GrpcServer (tests read its feed); no edge import
    error: str | None = None  # the bind failure while it is retrying
    failures: int = 0  # binds failed in a row
    _changed: trio.Event = field(default_factory=trio.Event, repr=False)

    def changed(self) -> None:
        """Wake whoever waits for the next change (a failed bind, or listening)."""
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def document(self) -> dict[str, object]:
        """The ``grpc`` entry of ``/api/health``."""
        if self.error is not None:
            return {"status": "failing", "error": self.error, "failures": self.failures}
        if self.address is None:
            return {"status": "starting"}
        return {"status": "ok", "address": self.address}
