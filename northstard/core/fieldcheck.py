"""Schema drift seen on the first day: the fields a live source sent vs its provider's published schema.

A client ``observe``s every JSON body it decodes into a ``FieldLog``: the
field names of the body and, one level down at a time, of every list of
objects in it (labelled ``"GET /portfolio/fills"``, ``"GET /portfolio/fills
fills[]"``, ``"GET /v1/organizations/cost_report data[] results[]"``). A
plugin ships, for those labels, the ``Shape`` its provider's vendored
specification gives (every property name it knows, and those it requires).
``drift`` compares the two: fields received that the specification does not
know, and required fields some row did not carry. Pure: no I/O.

Bound: a ``FieldLog`` keeps at most ``MAX_LABELS`` labels of at most
``MAX_NAMES`` names each (a hostile body cannot grow it); names beyond that
are not kept and ``overflow`` counts them; lists nested deeper than
``MAX_DEPTH`` are not walked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["MAX_DEPTH", "MAX_LABELS", "MAX_NAMES", "FieldLog", "Shape", "drift"]

MAX_LABELS = 64
MAX_NAMES = 512
MAX_DEPTH = 3
_SHOWN = 20  # names listed per label in a report


@dataclass(frozen=True)
class Shape:
    """What a specification says of one object: every field it names, and those it requires."""

    known: frozenset[str]
    required: frozenset[str] = frozenset()


@dataclass
class FieldLog:
    """Field names seen per label (union) and in every object of it (intersection), bounded."""

    seen: dict[str, set[str]] = field(default_factory=dict)
    always: dict[str, set[str]] = field(default_factory=dict)
    overflow: int = 0

    def __repr__(self) -> str:
        return f"<FieldLog labels={len(self.seen)} overflow={self.overflow}>"

    def observe(self, label: str, body: object, depth: int = 0) -> None:
        """Record the field names of ``body`` (an object) and of the objects in its lists."""
        if not isinstance(body, Mapping):
            return
        self._add(label, body.keys())
        if depth >= MAX_DEPTH:
            return
        for key, value in body.items():
            if isinstance(value, list):
                for row in value:
                    self.observe(f"{label} {key}[]", row, depth + 1)

    def _add(self, label: str, names: Iterable[object]) -> None:
        keys = {str(name) for name in names}
        if label not in self.seen:
            if len(self.seen) >= MAX_LABELS:
                self.overflow += len(keys)
                return
            self.seen[label] = set()
            self.always[label] = set(keys)
        seen = self.seen[label]
        room = MAX_NAMES - len(seen)
        fresh = keys - seen
        self.overflow += max(0, len(fresh) - room)
        seen.update(sorted(fresh)[:max(0, room)])
        self.always[label] &= keys


def drift(log: FieldLog, shapes: Mapping[str, Shape]) -> dict[str, dict[str, list[str]]]:
    """Per label observed: ``unknown`` fields (sent, not in the spec) and ``missing`` (required, not sent).

    Only labels with something to say are listed; a label never observed (no
    fills today) says nothing about its fields.
    """
    out: dict[str, dict[str, list[str]]] = {}
    for label, shape in shapes.items():
        if label not in log.seen:
            continue
        unknown = sorted(log.seen[label] - shape.known)[:_SHOWN]
        missing = sorted(shape.required - log.always[label])[:_SHOWN]
        if unknown or missing:
            out[label] = {"unknown": unknown, "missing": missing}
    return out
