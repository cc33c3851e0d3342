"""JSON Merge Patch (RFC 7396): diff, apply and compose. Pure, no I/O.

The snapshot document keeps two rules that make composition exact: every
path keeps one type (an object stays an object), and an object-valued key,
once present, is never removed (it may go to zeros). Only scalar keys
(strings) come and go. Under those rules ``compose(p1, p2)`` applied to a
document equals applying ``p1`` then ``p2`` (property-tested).
"""

from __future__ import annotations

from typing import Any, TypeAlias

__all__ = ["Doc", "apply_patch", "compose", "diff"]

Doc: TypeAlias = dict[str, Any]


def diff(old: Doc, new: Doc) -> Doc:
    """The smallest merge patch that turns ``old`` into ``new``."""
    patch: Doc = {}
    for key, value in new.items():
        before = old.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(before, dict):
            sub = diff(before, value)
            if sub:
                patch[key] = sub
        elif not _same(before, value):
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def apply_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 MergePatch(target, patch); returns a new value, inputs untouched."""
    if not isinstance(patch, dict):
        return patch
    result: Doc = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_patch(result.get(key), value)
    return result


def compose(first: Doc, second: Doc) -> Doc:
    """One patch equal to applying ``first`` then ``second``."""
    result: Doc = dict(first)
    for key, value in second.items():
        before = result.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(before, dict):
            result[key] = compose(before, value)
        elif isinstance(value, dict) and before is not _MISSING:
            # first replaced or removed a scalar here: the result is a fresh object
            result[key] = apply_patch({}, value)
        else:
            result[key] = value
    return result


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1, 1.0 and true are different values here, unlike Python's ==."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: object = _Missing()
