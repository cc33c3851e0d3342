"""A stream position ``(epoch, seq)``: what a client holds, and its ``EPOCH:SEQ`` text form."""

from __future__ import annotations

from dataclasses import dataclass

from northstard.core.money import DIGITS

__all__ = ["Position", "parse_position"]


@dataclass(frozen=True)
class Position:
    epoch: str
    seq: int

    def __str__(self) -> str:
        return f"{self.epoch}:{self.seq}"


def parse_position(text: str) -> Position:
    """``EPOCH:SEQ`` to a Position; ValueError when malformed."""
    epoch, sep, seq = text.strip().strip('"').rpartition(":")
    if not sep or not epoch or DIGITS.fullmatch(seq) is None or len(seq) > 18:
        raise ValueError("expected EPOCH:SEQ")
    return Position(epoch, int(seq))
