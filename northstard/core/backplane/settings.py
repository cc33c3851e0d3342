"""``[backplane]`` as a frozen settings record, and its password (never from the config file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

__all__ = ["BackplaneSettings", "redis_url_problem", "served_by_core"]

CREDENTIAL = "backplane.password"  # $CREDENTIALS_DIRECTORY/backplane.password (systemd LoadCredential)


def served_by_core(core_url: str, what: str = "history") -> str:
    """What an edge answers for what needs the database (REST 503, gRPC UNAVAILABLE)."""
    if core_url:
        return f"{what} is served by the core daemon at {core_url} ([backplane] core_url)"
    return f"{what} is served by the core daemon (set [backplane] core_url on the edge to name it)"


def redis_url_problem(value: str) -> str | None:
    """A ``[backplane] url`` check: empty (off), or redis:// / rediss:// with a host and no password."""
    if not value:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        return "expected redis://HOST[:PORT][/DB] or rediss://..."
    if parts.password is not None:
        return "no password in the URL: use backplane.password_file or $CREDENTIALS_DIRECTORY/" + CREDENTIAL
    return None


class BackplaneKeys(Protocol):
    """The ``[backplane]`` keys read here (``settings.BackplaneSection`` has them)."""

    @property
    def url(self) -> str: ...
    @property
    def prefix(self) -> str: ...
    @property
    def stream_maxlen(self) -> int: ...
    @property
    def heartbeat_s(self) -> float: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def core_url(self) -> str: ...


@dataclass(frozen=True)
class BackplaneSettings:
    url: str
    prefix: str = "northstard:"
    maxlen: int = 10000
    heartbeat_s: float = 1.0
    timeout_s: float = 5.0
    core_url: str = ""
    password: str | None = field(default=None, repr=False)
    # rediss:// with ca_file: the ssl.SSLContext ``actors.backplane.client.read_tls`` made (passed on)
    tls: object = field(default=None, repr=False, compare=False)

    @property
    def stream_key(self) -> str:
        return f"{self.prefix}stream"

    @property
    def current_key(self) -> str:
        return f"{self.prefix}current"

    @property
    def core_key(self) -> str:
        return f"{self.prefix}core"

    @property
    def core_ttl_ms(self) -> int:
        """The liveness key expires after three missed heartbeats."""
        return max(1, int(self.heartbeat_s * 3000))

    @classmethod
    def from_config(cls, section: BackplaneKeys, ring_size: int, password: str | None,
                    tls: object = None) -> BackplaneSettings:
        """``[backplane]``; ``password`` and ``tls`` as read by ``actors.backplane.client``
        (``read_password``, ``read_tls``)."""
        return cls(
            url=section.url, prefix=section.prefix,
            maxlen=section.stream_maxlen or ring_size, heartbeat_s=section.heartbeat_s,
            timeout_s=section.timeout_s, core_url=section.core_url,
            password=password, tls=tls,
        )

