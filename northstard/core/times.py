"""UTC instants as the wire writes them: ISO 8601, milliseconds, a ``Z``. Pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["EPOCH", "iso_from_ms", "iso_ms", "ms_from_iso"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)


def iso_ms(moment: datetime) -> str:
    """``moment`` (any zone) as UTC ISO 8601 with milliseconds and a Z: ``2026-12-03T15:10:54.123Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_ms(ms: int) -> str:
    """Epoch milliseconds as ``iso_ms`` writes them (exact: integer arithmetic, no float)."""
    return iso_ms(EPOCH + timedelta(milliseconds=ms))


def ms_from_iso(text: str) -> int:
    """ISO 8601 (a ``Z`` or an offset; UTC when it has no zone) as epoch milliseconds, floored.

    ValueError if ``text`` is not ISO 8601.
    """
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // MILLISECOND
