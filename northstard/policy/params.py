"""Parsing request parameters; every problem is a ``RequestError`` (a JSON 400)."""

from __future__ import annotations

from collections.abc import Mapping

from northstard.actors.hub import Position, parse_position
from northstard.core.money import DIGITS
from northstard.core.times import ms_from_iso
from northstard.errors import RequestError

__all__ = ["parse_instant", "parse_since", "parse_wait"]

MAX_MS = 253_402_300_799_000  # 9999-12-31


def parse_instant(name: str, value: str) -> int:
    """ISO 8601 (with a zone, or UTC assumed) or integer epoch milliseconds -> ms."""
    text = value.strip()
    if DIGITS.fullmatch(text.removeprefix("-")):
        if len(text) > 16:
            raise RequestError("bad_parameter", f"{name}: out of range")
        ms = int(text)
    else:
        try:
            ms = ms_from_iso(text)
        except ValueError:
            raise RequestError(
                "bad_parameter", f"{name}: expected ISO 8601 or epoch milliseconds"
            ) from None
    if not 0 <= ms <= MAX_MS:
        raise RequestError("bad_parameter", f"{name}: out of range")
    return ms


def parse_since(args: Mapping[str, str], header: str | None = None) -> Position | None:
    """The resume position from ``?since=EPOCH:SEQ`` or a Last-Event-ID header."""
    text = args.get("since") or header
    if not text:
        return None
    try:
        return parse_position(text)
    except ValueError:
        raise RequestError("bad_parameter", "since: expected EPOCH:SEQ") from None


def parse_wait(args: Mapping[str, str], limit: float) -> float:
    text = args.get("wait")
    if text is None:
        return 0.0
    try:
        wait = float(text)
    except ValueError:
        raise RequestError("bad_parameter", "wait: expected seconds") from None
    if not 0 <= wait <= limit:
        raise RequestError("bad_parameter", f"wait: must be between 0 and {limit:g} seconds")
    return wait
