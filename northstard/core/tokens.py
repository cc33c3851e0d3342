"""API tokens as the config lists them: the token format, digests, names, and their parsing.

Pure (no I/O): the config schema checks ``[auth] tokens`` with ``parse_tokens``,
and ``policy/auth.py`` builds the Authenticator from the same entries.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ID_CHARS", "OPEN_CHOICES", "TOKEN_PREFIX", "TokenEntry", "digest", "new_token", "new_token_text",
    "parse_tokens", "tokens_problem", "valid_name",
]

TOKEN_PREFIX = "nsd_"
ID_CHARS = 16
OPEN_CHOICES = ("health", "metrics")
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_HEX = re.compile(r"[0-9a-fA-F]{64}")


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """The sha256 hex digest the config keeps for ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


def valid_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


def new_token_text(name: str | None = None) -> tuple[str, str]:
    """(token, the ``[auth] tokens`` entry that accepts it)."""
    token = new_token()
    entry = f'"{digest(token)}"' if not name else f'{{ name = "{name}", sha256 = "{digest(token)}" }}'
    return token, entry


@dataclass(frozen=True)
class TokenEntry:
    """One accepted token: its sha256 digest and an optional name."""

    sha256: str
    name: str = ""

    @property
    def id(self) -> str:
        """A stable short id: the first characters of the digest (not secret)."""
        return self.sha256[:ID_CHARS]

    def __repr__(self) -> str:
        return f"<TokenEntry {self.name or '-'} {self.id}>"


def _entry(index: int, value: object) -> TokenEntry:
    where = f"entry {index + 1}"
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"name", "sha256"})
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r} (expected name and sha256)")
        name = value.get("name", "")
        if not isinstance(name, str) or (name and not valid_name(name)):
            raise ValueError(f"{where}: name: letters, digits and _ . @ - (at most 64)")
        value, named = value.get("sha256"), name
    else:
        named = ""
    if isinstance(value, str) and value.startswith(TOKEN_PREFIX):
        raise ValueError(f"{where}: this is a token itself; put its sha256 digest here "
                         "(`northstard token new` prints the entry)")
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise ValueError(f"{where}: expected a sha256 hex digest (64 hex characters)")
    return TokenEntry(value.lower(), named)


def parse_tokens(values: Iterable[object]) -> tuple[TokenEntry, ...]:
    """``[auth] tokens`` as entries; ValueError naming the bad entry."""
    entries = tuple(_entry(i, v) for i, v in enumerate(values))
    names = [e.name for e in entries if e.name]
    if len(names) != len(set(names)):
        raise ValueError("two tokens share a name")
    if len({e.id for e in entries}) != len(entries):
        raise ValueError("the same digest is listed twice")
    return entries


def tokens_problem(value: list[object]) -> str | None:
    """The config check of ``auth.tokens``."""
    try:
        parse_tokens(value)
    except ValueError as exc:
        return str(exc)
    return None
