"""Typed settings: the core config sections as frozen records, read by attribute.

``Config.settings`` builds one ``Settings`` from the validated sections, once,
when the config loads (``settings.hub.ring_size``). The schema in
``config.CORE`` stays the one place for defaults, limits and help; these
records only give each key its type, and ``tests/test_settings.py`` checks
that every section here has exactly the schema's keys, in its order, with its
types (a list key is a tuple here, a key whose default is None may be None).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "AlertingSection", "AuthSection", "BackplaneSection", "BackupSection", "CacheSection",
    "EngineSection", "GrpcSection", "HubSection", "LimitsSection", "LogSection", "ServerSection",
    "Settings", "StorageSection", "SupervisorSection", "TokenSpec", "build_settings",
]

_R = TypeVar("_R", bound="DataclassInstance")

TokenSpec = str | Mapping[str, str]  # an [auth] tokens entry: a digest, or { name, sha256 }


@dataclass(frozen=True)
class ServerSection:
    host: str
    port: int
    ws_max_message_bytes: int
    ws_allowed_origins: tuple[str, ...]
    cors_allowed_origins: tuple[str, ...]
    insecure_no_auth: bool
    ws_blocked_close_after_s: float
    ws_ping_interval_s: float
    sse_keepalive_s: float
    sse_retry_ms: int
    longpoll_max_s: float
    shutdown_grace_s: float
    backlog: int
    send_threads: int
    tls_cert: Path | None
    tls_key: Path | None
    tls_min_version: str
    tls_handshake_timeout_s: float


@dataclass(frozen=True)
class StorageSection:
    path: Path | None
    synchronous: str
    batch_max: int
    batch_deadline_ms: float
    snapshot_every: int
    keep_deltas_days: float
    keep_buckets_days: float


@dataclass(frozen=True)
class EngineSection:
    revenue_basis: Literal["invoiced", "collected"]
    currency: str
    max_batch: int


@dataclass(frozen=True)
class HubSection:
    ring_size: int
    ring_max_bytes: int
    resume_rate_per_s: float
    resume_burst: int
    max_rate_hz: float


@dataclass(frozen=True)
class GrpcSection:
    enabled: bool
    host: str
    port: int
    tokens: tuple[str, ...]
    tls_cert: Path | None
    tls_key: Path | None
    keepalive_time_s: float
    keepalive_timeout_s: float
    min_client_ping_interval_s: float
    max_rate_hz: float
    shutdown_grace_s: float


@dataclass(frozen=True)
class AuthSection:
    tokens: tuple[TokenSpec, ...]
    open: tuple[str, ...]
    session_lifetime_s: float
    cookie_name: str
    cookie_secure: str
    session_key_file: Path | None


@dataclass(frozen=True)
class LimitsSection:
    rest_rate_per_s: float
    rest_burst: int
    connect_rate_per_s: float
    connect_burst: int
    max_streams: int
    max_streams_per_client: int
    header_timeout_s: float
    idle_timeout_s: float
    exempt_loopback: bool
    max_tracked_clients: int
    max_connections: int
    max_connections_per_client: int
    open_files_reserve: int
    stream_send_buffer_bytes: int


@dataclass(frozen=True)
class CacheSection:
    history_bytes: int


@dataclass(frozen=True)
class LogSection:
    level: str
    format: str


@dataclass(frozen=True)
class SupervisorSection:
    max_core_restarts: int
    restart_window_s: float
    backoff_initial_s: float
    backoff_max_s: float


@dataclass(frozen=True)
class BackplaneSection:
    url: str
    password_file: Path | None
    ca_file: Path | None
    prefix: str
    stream_maxlen: int
    heartbeat_s: float
    timeout_s: float
    core_url: str


@dataclass(frozen=True)
class AlertingSection:
    tick_s: float
    max_window_points: int
    keep_history: int


@dataclass(frozen=True)
class BackupSection:
    dir: Path | None
    every_s: float
    keep: int
    keep_days: float


@dataclass(frozen=True)
class Settings:
    """Every core section, typed (the ``[sources]``, ``[alerts]`` and ``[notifiers]`` tables aside)."""

    server: ServerSection
    storage: StorageSection
    engine: EngineSection
    hub: HubSection
    grpc: GrpcSection
    auth: AuthSection
    limits: LimitsSection
    cache: CacheSection
    log: LogSection
    supervisor: SupervisorSection
    backplane: BackplaneSection
    alerting: AlertingSection
    backup: BackupSection


def _record(kind: type[_R], values: Mapping[str, object]) -> _R:
    return kind(**{f.name: _frozen(values[f.name]) for f in fields(kind)})


def _frozen(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def build_settings(sections: Mapping[str, Mapping[str, object]]) -> Settings:
    """The typed records of validated sections (lists become tuples); KeyError on a missing key."""
    return Settings(
        server=_record(ServerSection, sections["server"]),
        storage=_record(StorageSection, sections["storage"]),
        engine=_record(EngineSection, sections["engine"]),
        hub=_record(HubSection, sections["hub"]),
        grpc=_record(GrpcSection, sections["grpc"]),
        auth=_record(AuthSection, sections["auth"]),
        limits=_record(LimitsSection, sections["limits"]),
        cache=_record(CacheSection, sections["cache"]),
        log=_record(LogSection, sections["log"]),
        supervisor=_record(SupervisorSection, sections["supervisor"]),
        backplane=_record(BackplaneSection, sections["backplane"]),
        alerting=_record(AlertingSection, sections["alerting"]),
        backup=_record(BackupSection, sections["backup"]),
    )
