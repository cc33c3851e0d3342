"""What each reading re-sends: the records that changed, newest version only.

A record enters the log each time it changes (a fill once; an invoice when
issued, again when paid). ``take`` returns every change since the previous
``take`` - never dropped, however many - plus up to ``cap`` changes from the
last ``keep_s`` business seconds, which are re-sent unchanged (harmless: the
engine ignores exact duplicates). Older entries are forgotten, so memory and
readings stay bounded; a forgotten record's last version was already sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from northstard.core.records import Record

__all__ = ["ChangeLog"]


@dataclass(frozen=True)
class _Entry:
    serial: int
    tick: int
    record: Record


class ChangeLog:
    """Changed records in order of change, keyed by (kind, id)."""

    def __init__(self, keep_s: int, cap: int = 200) -> None:
        self.keep_s = keep_s
        self.cap = cap
        self.entries: dict[tuple[str, str], _Entry] = {}
        self.serial = 0
        self.taken = 0

    def __repr__(self) -> str:
        return f"<ChangeLog entries={len(self.entries)} new={self.serial - self.taken}>"

    def add(self, tick: int, record: Record) -> None:
        """Log the current version of ``record``, changed at ``tick``."""
        key = (record.kind, record.id)
        self.entries.pop(key, None)
        self.serial += 1
        self.entries[key] = _Entry(self.serial, tick, record)

    def take(self, now: int) -> list[Record]:
        """New changes plus recent ones, oldest first; then forget what is too old."""
        horizon = now - self.keep_s
        picked: list[Record] = []
        recent = 0
        for entry in reversed(self.entries.values()):
            if entry.serial > self.taken:
                picked.append(entry.record)
            elif entry.tick >= horizon and recent < self.cap:
                picked.append(entry.record)
                recent += 1
        self.taken = self.serial
        self.entries = {key: e for key, e in self.entries.items() if e.tick >= horizon}
        picked.reverse()
        return picked
