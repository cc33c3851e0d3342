"""Access control: API tokens, browser session cookies, and who a request comes from.

A token is ``nsd_`` and 43 URL-safe characters (``northstard token new``).
The config keeps only its sha256 hex digest, bare or named::

    [auth]
    tokens = ["<sha256 hex>", { name = "ci", sha256 = "<sha256 hex>" }]

A request presents a token as ``Authorization: Bearer <token>``, as
``?token=<token>``, or through a session cookie the login page (or a
``?token=`` link) set. The cookie is ``<id>.<expiry>.<mac>``: ``id`` the first
16 hex characters of the token's digest, ``expiry`` Unix seconds, ``mac``
HMAC-SHA256 over the token's full digest and the expiry, keyed by a random
key kept beside the database. It is checked against the tokens configured
now, so removing a token from the config ends its sessions, and against the
sessions ended by logout (``revoked.py``: kept until their expiry, bounded).
Every comparison is constant-time. ``Authenticator.principal_of`` names the token
a request came with (its ``id``), for per-token limits.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from northstard.core.hosts import is_loopback
from northstard.core.tokens import (
    OPEN_CHOICES,
    TOKEN_PREFIX,
    TokenEntry,
    digest,
    new_token,
    new_token_text,
    parse_tokens,
    tokens_problem,
    valid_name,
)
from northstard.errors import ConfigError
from northstard.policy.revoked import Revoked
from northstard.settings import AuthSection, Settings

__all__ = [
    "COOKIE_NAME", "QUERY_PARAM", "TOKEN_PREFIX", "Authenticator", "TokenEntry", "bearer",
    "check_exposure", "cookie", "digest", "exposed_listeners", "load_session_key", "new_token",
    "new_token_text", "parse_tokens", "tokens_problem", "valid_name",
]

COOKIE_NAME = "northstard_session"
QUERY_PARAM = "token"
KEY_FILE = "northstard.session-key"
MIN_KEY_CHARS = 32
_SESSION = re.compile(r"([0-9a-f]{16})\.([0-9]{1,12})\.([0-9a-f]{64})")  # id.expiry.mac, ASCII only


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def cookie(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header."""
    for part in (header or "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"') or None
    return None


def _mac(key: bytes, sha256: str, expiry: int) -> str:
    return hmac.new(key, f"{sha256}.{expiry}".encode(), hashlib.sha256).hexdigest()


def _signing_key(key: bytes, generation: int) -> bytes:
    """The cookie-signing key of ``generation`` (0: the key itself; each new one ends every session)."""
    if generation == 0:
        return key
    return hmac.new(key, f"northstard session generation {generation}".encode(), hashlib.sha256).digest()


def _match(entries: Iterable[TokenEntry], presented: str, attribute: str) -> TokenEntry | None:
    """The entry whose ``attribute`` equals ``presented``, looking at every entry in constant time."""
    found = None
    for entry in entries:
        if hmac.compare_digest(getattr(entry, attribute).encode(), presented.encode()):
            found = entry
    return found


class Authenticator:
    """What the edges ask: is auth on, which token (if any) a request carries, its session cookie."""

    def __init__(self, tokens: Iterable[TokenEntry] = (), key: bytes = b"", *,
                 lifetime_s: float = 604800.0, cookie_name: str = COOKIE_NAME,
                 open_paths: Iterable[str] = OPEN_CHOICES, cookie_secure: str = "auto",
                 revoked: Revoked | None = None, revoked_path: Path | None = None) -> None:
        self.tokens = tuple(tokens)
        self.lifetime_s = int(lifetime_s)
        self.cookie_name = cookie_name
        self.open = frozenset(open_paths)
        self.cookie_secure = cookie_secure
        self.revoked = revoked if revoked is not None else Revoked()
        self.revoked_path = revoked_path  # where logouts are kept (None: in memory only)
        self._key = key
        self._signing = _signing_key(key, self.revoked.generation)
        if self.tokens and len(key) < MIN_KEY_CHARS:
            raise ValueError("a session key of at least 32 bytes is needed")

    @classmethod
    def from_config(cls, section: AuthSection, key: bytes,
                    revoked: Revoked | None = None, revoked_path: Path | None = None) -> Authenticator:
        return cls(parse_tokens(section.tokens), key, lifetime_s=section.session_lifetime_s,
                   cookie_name=section.cookie_name, open_paths=section.open,
                   cookie_secure=section.cookie_secure, revoked=revoked, revoked_path=revoked_path)

    def __repr__(self) -> str:
        return f"<Authenticator tokens={len(self.tokens)} open={sorted(self.open)}>"

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    @property
    def digests(self) -> tuple[str, ...]:
        return tuple(entry.sha256 for entry in self.tokens)

    def is_open(self, what: str) -> bool:
        """Whether ``health`` or ``metrics`` is served without credentials."""
        return not self.enabled or what in self.open

    def check_token(self, token: str | None) -> TokenEntry | None:
        return _match(self.tokens, digest(token), "sha256") if token else None

    def session(self, entry: TokenEntry, now: float | None = None) -> str:
        """A session cookie value for ``entry``, valid for ``lifetime_s``."""
        expiry = int(time.time() if now is None else now) + self.lifetime_s
        return f"{entry.id}.{expiry}.{_mac(self._signing, entry.sha256, expiry)}"

    def check_session(self, value: str | None, now: float | None = None) -> TokenEntry | None:
        """The token a session cookie stands for; None for anything else, however malformed."""
        parts = _SESSION.fullmatch(value or "")
        if parts is None or not self.tokens:
            return None
        entry = _match(self.tokens, parts[1], "id")
        expiry = int(parts[2])
        moment = time.time() if now is None else now
        if entry is None or not moment < expiry <= moment + self.lifetime_s:
            return None
        expected = _mac(self._signing, entry.sha256, expiry)
        if not hmac.compare_digest(parts[3].encode(), expected.encode()) or parts[3] in self.revoked:
            return None
        return entry

    def revoke(self, value: str | None, now: float | None = None) -> bool:
        """End the session cookie ``value`` (logout); False if it was no live session.

        At the bound of ``revoked`` this ends every session (a new generation of the key).
        """
        moment = time.time() if now is None else now
        if self.check_session(value, moment) is None:
            return False
        _, expiry, mac = str(value).split(".")
        if self.revoked.add(mac, int(expiry), moment):
            self._signing = _signing_key(self._key, self.revoked.generation)
        return True

    def identify(self, headers: Mapping[str, str], query: Mapping[str, str]) -> TokenEntry | None:
        """The token a request carries: a Bearer header, the session cookie, or ``?token=``."""
        return (self.check_token(bearer(headers.get("authorization")))
                or self.check_session(cookie(headers.get("cookie"), self.cookie_name))
                or self.check_token(query.get(QUERY_PARAM)))

    def principal_of(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        """The short id of the request's accepted token; None without one (or with auth off)."""
        entry = self.identify(headers, query) if self.enabled else None
        return entry.id if entry else None


def load_session_key(configured: Path | None, state_dir: Path) -> bytes:
    """The cookie-signing key: ``configured``, else a random one kept 0600 in ``state_dir``."""
    if configured is not None:
        try:
            key = configured.read_bytes().strip()
        except OSError as exc:
            raise ConfigError("auth.session_key_file", f"cannot read: {exc.strerror}") from None
        if len(key) < MIN_KEY_CHARS:
            raise ConfigError("auth.session_key_file", f"the key needs {MIN_KEY_CHARS} characters at least")
        return key
    path = state_dir / KEY_FILE
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes().strip()
        if len(key) >= MIN_KEY_CHARS:
            return key
        raise ConfigError("auth.session_key_file",
                          f"{path}: too short; delete it to make a new one") from None
    key = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key


def exposed_listeners(settings: Settings, passed: Sequence[str] = ()) -> dict[str, str]:
    """The listeners other machines can reach with no token required: config key -> address.

    ``passed``: the addresses of the sockets systemd passed (socket activation), which the
    web edge serves instead of binding ``server.host``; their key is ``LISTEN_FDS``.
    """
    tokens = bool(settings.auth.tokens)
    grpc = settings.grpc
    exposed: dict[str, str] = {}
    web = [host for host in passed or [settings.server.host] if not is_loopback(host)]
    if web and not tokens:
        exposed["LISTEN_FDS" if passed else "server.host"] = web[0]
    if grpc.enabled and not (tokens or grpc.tokens) and not is_loopback(grpc.host):
        exposed["grpc.host"] = grpc.host
    return exposed


def check_exposure(settings: Settings, passed: Sequence[str] = ()) -> list[str]:
    """Refuse (ConfigError) a non-local listener with no tokens, unless ``insecure_no_auth``.

    Returns the keys of the listeners served without auth under that override (to warn about).
    """
    exposed = exposed_listeners(settings, passed)
    if exposed and not settings.server.insecure_no_auth:
        key, host = next(iter(exposed.items()))
        raise ConfigError(key, f"{host!r} is reachable from other "
                          "machines and no [auth] tokens are set: add one (`northstard token new`), "
                          "listen on 127.0.0.1, or pass --insecure-no-auth")
    return list(exposed)
