"""Session cookies ended by ``POST /logout`` before their expiry, kept across restarts.

A revocation is a cookie's MAC (one per token and expiry second) and its
expiry. It is kept until that expiry — after it the cookie is refused anyway —
so the list holds the sessions logged out within the last
``auth.session_lifetime_s``, and at most ``MAX_REVOKED`` (10,000; 0.76 MB on
disk, `bench/cookies.py`) of them. At the bound, expired entries are dropped first; if the list
is still full, the next logout ends every session instead: the *generation*
goes up, the cookie-signing key is derived from it, so every cookie made
before stops working, and the list empties (everyone signs in again). A
logged-out cookie never works again, and the memory stays bounded; the price,
paid only after 10,000 logouts within one session lifetime, is that the
others sign in again too.

The file, ``northstard.session-revoked`` beside the database (the state
directory, which the service can write even when ``auth.session_key_file``
sits in a read-only /etc), is made 0600 and holds ``generation <n>`` then one
``<expiry> <mac>`` line per revocation. A logout appends one line; a new
generation, and each start, rewrite it whole (temporary file, then rename),
without the expired lines. The web edge is its only writer, one write at a
time, in a worker thread (``web/login.py``): like the store's single-writer
rule, without routing a logout through the P&L writer's channel. Deleting the
file brings back the sessions it ended, until they expire.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from northstard.core.money import DIGITS

__all__ = ["FILE_NAME", "MAX_REVOKED", "Pending", "Revoked", "load_revoked", "write_pending"]

FILE_NAME = "northstard.session-revoked"
MAX_REVOKED = 10_000


@dataclass(frozen=True)
class Pending:
    """What to write: ``text`` appended, or (``whole``) the file's whole new content."""

    text: str
    whole: bool


class Revoked:
    """The live revocations and the generation; no I/O (``load_revoked`` / ``write_pending`` do it)."""

    def __init__(self, generation: int = 0, entries: dict[str, int] | None = None,
                 limit: int = MAX_REVOKED) -> None:
        self.generation = generation
        self.limit = limit
        self._expiry = dict(entries or {})
        self._appended: list[str] = []
        self._rewrite = False

    def __repr__(self) -> str:
        return f"<Revoked generation={self.generation} entries={len(self._expiry)}/{self.limit}>"

    def __len__(self) -> int:
        return len(self._expiry)

    def __contains__(self, mac: object) -> bool:
        return mac in self._expiry

    def add(self, mac: str, expiry: int, now: float) -> bool:
        """Revoke the cookie with ``mac``; True when that took a new generation (all sessions end)."""
        if mac in self._expiry:
            return False
        if len(self._expiry) >= self.limit:
            self.drop_expired(now)
        if len(self._expiry) >= self.limit:
            self.generation += 1
            self._expiry.clear()
            self._appended.clear()
            self._rewrite = True
            return True
        self._expiry[mac] = expiry
        self._appended.append(f"{expiry} {mac}\n")
        return False

    def drop_expired(self, now: float) -> int:
        """Forget the revocations whose cookies have expired anyway; how many went."""
        gone = [mac for mac, expiry in self._expiry.items() if expiry <= now]
        for mac in gone:
            del self._expiry[mac]
        self._rewrite = self._rewrite or bool(gone)
        return len(gone)

    def save_failed(self) -> None:
        """The last pending write did not land: write the whole file next time."""
        self._rewrite = True

    def text(self) -> str:
        """The whole file."""
        return f"generation {self.generation}\n" + "".join(f"{e} {m}\n" for m, e in self._expiry.items())

    def take_pending(self) -> Pending | None:
        """What the file lacks since the last call (taken on the event loop, written in a thread)."""
        if self._rewrite:
            self._rewrite, self._appended = False, []
            return Pending(self.text(), whole=True)
        if not self._appended:
            return None
        text, self._appended = "".join(self._appended), []
        return Pending(text, whole=False)


def _parse(text: str) -> tuple[int, dict[str, int]]:
    """The generation and entries of the file; a torn or foreign line is skipped."""
    generation, entries = 0, {}
    for line in text.splitlines():
        first, _, second = line.partition(" ")
        if first == "generation" and DIGITS.fullmatch(second):
            generation = int(second)
        elif DIGITS.fullmatch(first) and len(first) <= 12 and len(second) == 64:
            entries[second] = int(first)
    return generation, entries


def load_revoked(path: Path, now: float, limit: int = MAX_REVOKED) -> Revoked:
    """The revocations in ``path`` (none if it is missing), expired ones dropped and the file rewritten."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return Revoked(limit=limit)
    generation, entries = _parse(text)
    revoked = Revoked(generation, entries, limit)
    revoked.drop_expired(now)
    if len(revoked) > limit:  # never forget one: end every session instead
        revoked = Revoked(generation + 1, {}, limit)
    write_pending(path, Pending(revoked.text(), whole=True))
    return revoked


def write_pending(path: Path, pending: Pending) -> None:
    """Append ``pending.text``, or replace the file with it (0600 either way)."""
    if not pending.whole:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(pending.text)
            handle.flush()
            os.fsync(handle.fileno())
        return
    staged = path.with_name(path.name + ".new")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(pending.text)
            handle.flush()
            os.fsync(handle.fileno())
        staged.replace(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()
