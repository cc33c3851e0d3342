"""The kalshi plugin's one error type: a ``SourceError`` that says how far a call got.

``status`` is the HTTP status Kalshi answered with (None if it did not
answer); ``reachable`` and ``authenticated`` let ``northstard sources check``
report "reachable, authenticated" without parsing messages. Schema drift stays
``northstard.errors.SchemaDriftError``.
"""

from __future__ import annotations

from northstard.errors import SourceError

__all__ = ["KalshiError"]


class KalshiError(SourceError):
    """A failed call or an unusable configuration; the message never holds a secret."""

    def __init__(
        self, message: str, *, status: int | None = None, reachable: bool = True,
        authenticated: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reachable = reachable
        self.authenticated = authenticated and status not in (401, 403)
