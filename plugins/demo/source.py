"""The demo ``Source``: each poll advances the simulation by the time since the last one.

Elapsed time comes from ``trio.current_time()`` (so a test's ``MockClock``
drives it) times ``speed``. Every reading is the simulation's current state
plus its recent changes (``Simulator.collect``), marked complete.
"""

from __future__ import annotations

from datetime import UTC, datetime

import trio

from northstard.records import Reading

from .settings import Settings
from .sim import Simulator

__all__ = ["DemoSource"]


class DemoSource:
    """One ``[sources.NAME]`` instance of the demo plugin."""

    def __init__(self, name: str, settings: Settings, *, start: datetime | None = None) -> None:
        self.name = name
        self.settings = settings.resolved()
        self.sim = Simulator(self.settings, start or datetime.now(UTC))
        self.polls = 0
        self._last: float | None = None

    def __repr__(self) -> str:
        return f"<DemoSource {self.name!r} polls={self.polls} {self.sim!r}>"

    async def poll(self) -> Reading:
        """Advance by the elapsed time (none at the first poll) and read the state."""
        await trio.lowlevel.checkpoint()
        now = trio.current_time()
        if self._last is not None:
            self.sim.step((now - self._last) * self.settings.speed)
        self._last = now
        self.polls += 1
        notes = {"seed": str(self.settings.seed), "business_time": self.sim.now.isoformat()}
        return Reading(self.name, self.sim.collect(), datetime.now(UTC), True, notes)

    async def aclose(self) -> None:
        """Nothing to release."""
        await trio.lowlevel.checkpoint()
