"""Configuration: one TOML file plus ``NORTHSTARD_...`` environment overrides.

Every key is typed and checked at start. An unknown key, a wrong type or an
impossible value raises ``ConfigError`` naming the key (the daemon prints that
one line and exits 2). An override ``NORTHSTARD_SERVER__PORT=9000`` sets
``server.port``: sections and keys are joined by a double underscore.

Secret keys (a source's API key, say) are never read from the config file:
they come from the environment (``NORTHSTARD_SOURCES__<NAME>__<KEY>``), from
a file named by ``<key>_file``, or from ``$CREDENTIALS_DIRECTORY/<name>.<key>``.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, TypeVar

from northstard.core.alertrules import KINDS, SEVERITIES, Rule, rule_from_section
from northstard.core.backplane.settings import redis_url_problem
from northstard.core.tokens import OPEN_CHOICES, tokens_problem
from northstard.errors import ConfigError
from northstard.settings import Settings, build_settings

__all__ = ["Config", "Field", "Schema", "SourceSection", "default", "default_settings", "load_config",
           "redacted"]

ENV_PREFIX = "NORTHSTARD_"
ENV_RESERVED = {"NORTHSTARD_CONFIG", "NORTHSTARD_DISABLE_PLUGINS", "NORTHSTARD_TOKEN"}  # TOKEN: tail
REDACTED = "<redacted>"


_T = TypeVar("_T")


@dataclass(frozen=True)
class Field:
    """One config key: its type, default and limits."""

    name: str
    type: type
    default: object = None
    required: bool = False
    secret: bool = False
    help: str = ""
    choices: tuple[object, ...] = ()
    min: float | None = None
    max: float | None = None
    check: Callable[[Any], str | None] | None = None

    def validate(self, key: str, value: Any) -> Any:
        value = _coerce(key, self.type, value)
        if self.choices and value not in self.choices:
            raise ConfigError(key, f"must be one of {', '.join(map(str, self.choices))}")
        if self.min is not None and value < self.min:
            raise ConfigError(key, f"must be at least {self.min}")
        if self.max is not None and value > self.max:
            raise ConfigError(key, f"must be at most {self.max}")
        problem = self.check(value) if self.check else None
        if problem:
            raise ConfigError(key, problem)
        return value


def _coerce(key: str, kind: type, value: object) -> object:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool):
        raise ConfigError(key, "expected an integer, got a boolean")
    if kind is Path and isinstance(value, str):
        return Path(value).expanduser()
    if kind is list and isinstance(value, list):
        return list(value)
    if not isinstance(value, kind):
        raise ConfigError(key, f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _default_db() -> Path:
    base = os.environ.get("STATE_DIRECTORY") or os.environ.get("XDG_STATE_HOME")
    root = Path(base.split(":")[0]) if base else Path.home() / ".local" / "state"
    if not os.environ.get("STATE_DIRECTORY"):
        root = root / "northstard"
    return root / "northstard.db"


def _origins(value: list[object]) -> str | None:
    for origin in value:
        if not isinstance(origin, str) or not (origin == "*" or "://" in origin):
            return "expected origins like \"https://example.com\" (or \"*\")"
    return None


def _sha256_digests(value: list[object]) -> str | None:
    hexdigits = set("0123456789abcdefABCDEF")
    if all(isinstance(v, str) and len(v) == 64 and set(v) <= hexdigits for v in value):
        return None
    return "expected sha256 hex digests of the tokens (64 hex characters each)"


def _open_choices(value: list[object]) -> str | None:
    if all(v in OPEN_CHOICES for v in value):
        return None
    return f"expected a list of {' and '.join(OPEN_CHOICES)}"


def _cookie_name(value: str) -> str | None:
    if value and all(c.isalnum() or c in "_-" for c in value):
        return None
    return "letters, digits, _ and - only"


CORE: dict[str, tuple[Field, ...]] = {
    "server": (
        Field("host", str, "127.0.0.1", help="address to listen on"),
        Field("port", int, 8080, min=0, max=65535, help="0 picks a free port"),
        Field("ws_max_message_bytes", int, 65536, min=128,
              help="larger client frames (or messages) are refused: close 1009"),
        Field("ws_allowed_origins", list, [], check=_origins,
              help="cross-origin pages allowed to open /ws besides the page's own, "
              "e.g. [\"https://dash.example.com\"] ('*': any)"),
        Field("cors_allowed_origins", list, [], check=_origins,
              help="Origins whose pages may read the REST API and SSE (CORS; '*': any, no cookies)"),
        Field("insecure_no_auth", bool, False,
              help="serve a non-loopback address without [auth] tokens (--insecure-no-auth; insecure)"),
        Field("ws_blocked_close_after_s", float, 30.0, min=0.01,
              help="a WebSocket or SSE client whose socket accepts nothing this long is closed (4008)"),
        Field("ws_ping_interval_s", float, 20.0, min=0, help="server pings on /ws; 0 is off"),
        Field("sse_keepalive_s", float, 15.0, min=0.1, help="SSE keep-alive comment interval"),
        Field("sse_retry_ms", int, 2000, min=0, help="the SSE retry: hint sent to clients"),
        Field("longpoll_max_s", float, 60.0, min=0, help="longest wait= accepted by /api/pnl/changes"),
        Field("shutdown_grace_s", float, 3.0, min=0, help="time given to close client streams on shutdown"),
        Field("backlog", int, 4096, min=1, help="listen backlog, for bursts of connections"),
        Field("send_threads", int, 0, min=0, max=64,
              help="threads writing each broadcast to the WS/SSE sockets; 0: one per core (max 4)"),
        Field("tls_cert", Path, None,
              help="PEM certificate chain, leaf first; with tls_key (both or neither): HTTPS and WSS on "
                   "this port"),
        Field("tls_key", Path, None, help="unencrypted PEM private key of tls_cert"),
        Field("tls_min_version", str, "1.2", choices=("1.2", "1.3"), help="oldest TLS version accepted"),
        Field("tls_handshake_timeout_s", float, 10.0, min=0.01,
              help="a client that has not completed the TLS handshake by then is closed"),
    ),
    "storage": (
        Field("path", Path, None,
              help="SQLite file; unset: $STATE_DIRECTORY/northstard.db, else "
                   "~/.local/state/northstard/northstard.db"),
        Field("synchronous", str, "full", choices=("normal", "full"),
              help="full survives power loss, normal a process crash"),
        Field("batch_max", int, 500, min=1, help="changes per write transaction at most"),
        Field("batch_deadline_ms", float, 2.0, min=0, help="longest a change waits for a batch"),
        Field("snapshot_every", int, 100, min=1,
              help="a full snapshot row every N changes (and at shutdown)"),
        Field("keep_deltas_days", float, 30.0, min=0,
              help="delta (and snapshot row) retention, deleted in bounded chunks; 0 keeps them forever"),
        Field("keep_buckets_days", float, 0.0, min=0, help="history bucket retention; 0 keeps them forever"),
    ),
    "engine": (
        Field("revenue_basis", str, "invoiced", choices=("invoiced", "collected"),
              help="revenue counted in net P&L: invoiced (accrual) or collected (cash)"),
        Field("currency", str, "USD", help="reporting currency label"),
        Field("max_batch", int, 256, min=1, help="readings merged into one change at most"),
    ),
    "hub": (
        Field("ring_size", int, 10000, min=1,
              help="recent deltas held for resume (the hub's one ring, shared by every edge)"),
        Field("ring_max_bytes", int, 8 * 1024 * 1024, min=4096,
              help="bytes the one ring of recent deltas may hold (every edge shares it); oldest go first"),
        Field("resume_rate_per_s", float, 5.0, min=0.01,
              help="resumes from an old position per connection per second (WS resume messages, "
              "/api/pnl/changes?since= more than 64 changes behind, gRPC Subscribe with resume); past "
              "the budget: WS error too_many_resumes and close 1008, REST 429 with Retry-After, "
              "gRPC RESOURCE_EXHAUSTED"),
        Field("resume_burst", int, 20, min=1, help="resumes a connection may make at once"),
        Field("max_rate_hz", float, 0.0, min=0,
              help="per-client message cap (changes in between merge); 0 is off"),
    ),
    "grpc": (
        Field("enabled", bool, True, help="serve northstar.v1.PnlStream over gRPC"),
        Field("host", str, "127.0.0.1", help="address to listen on"),
        Field("port", int, 8081, min=0, max=65535, help="0 picks a free port"),
        Field("tokens", list, [], check=_sha256_digests,
              help="more sha256 hex digests of bearer tokens, accepted by gRPC only (beside [auth] tokens)"),
        Field("tls_cert", Path, None, help="PEM certificate chain; with tls_key (both or neither): TLS"),
        Field("tls_key", Path, None, help="PEM private key of tls_cert"),
        Field("keepalive_time_s", float, 30.0, min=1, help="ping a quiet connection after this"),
        Field("keepalive_timeout_s", float, 10.0, min=0.1, help="drop it if the ping goes unanswered"),
        Field("min_client_ping_interval_s", float, 10.0, min=0,
              help="clients may ping this often (keepalive without calls allowed)"),
        Field("max_rate_hz", float, 0.0, min=0,
              help="per-stream event cap (a request may ask for less); 0 is off"),
        Field("shutdown_grace_s", float, 3.0, min=0, help="time given to open streams on shutdown"),
    ),
    "auth": (
        Field("tokens", list, [], check=tokens_problem,
              help='accepted API tokens: sha256 hex digests, or { name = "N", sha256 = "..." }; '
              "empty: no auth (loopback only)"),
        Field("open", list, ["health"], check=_open_choices,
              help="what is served without a token: any of health, metrics"),
        Field("session_lifetime_s", float, 604800.0, min=60,
              help="a browser session cookie lasts this long (7 days)"),
        Field("cookie_name", str, "northstard_session", check=_cookie_name, help="the session cookie's name"),
        Field("cookie_secure", str, "auto", choices=("auto", "always"),
              help="auto: Secure when the request came over TLS; always: every time"),
        Field("session_key_file", Path, None,
              help="cookie-signing key (32+ characters); unset: northstard.session-key beside the database, "
                   "made 0600"),
    ),
    "limits": (
        Field("rest_rate_per_s", float, 20.0, min=0, help="REST requests per second per client IP; 0 is off"),
        Field("rest_burst", int, 100, min=1, help="REST requests a client IP may make at once"),
        Field("connect_rate_per_s", float, 20.0, min=0, help="new connections per second per IP; 0 is off"),
        Field("connect_burst", int, 100, min=1, help="new connections an IP may open at once"),
        Field("max_streams", int, 20000, min=0,
              help="open WebSocket + SSE streams in total (and, separately, gRPC streams); 0 is off"),
        Field("max_streams_per_client", int, 100, min=0,
              help="open streams per token (else per IP); 0 is off"),
        Field("header_timeout_s", float, 10.0, min=0.01,
              help="a request head must be complete this long after its first byte "
                   "(and each read of a request body must come within it: 408)"),
        Field("idle_timeout_s", float, 30.0, min=0.01,
              help="an idle keep-alive connection is closed (so is one that takes nothing of a response)"),
        Field("exempt_loopback", bool, True,
              help="per-IP limits skip 127.0.0.1 and ::1 (a local reverse proxy, tests, benches)"),
        Field("max_tracked_clients", int, 10000, min=1,
              help="client IPs the rate limits remember (least recently seen forgotten)"),
        Field("max_connections", int, 0, min=0,
              help="open HTTP connections in total; 0 (and any larger value): the open-files limit less "
              "open_files_reserve (at least half the limit)"),
        Field("max_connections_per_client", int, 256, min=0,
              help="open HTTP connections per IP, loopback included; 0 is off"),
        Field("open_files_reserve", int, 256, min=0,
              help="descriptors kept free of HTTP connections (gRPC, SQLite, sources, logs)"),
        Field("stream_send_buffer_bytes", int, 65536, min=0,
              help="kernel send buffer of a WS/SSE socket (SO_SNDBUF): what a reader that stops "
              "reading can pin before it is closed; 0: the kernel's autotuning (up to 4 MiB)"),
    ),
    "cache": (
        Field("history_bytes", int, 8 * 1024 * 1024, min=0,
              help="bytes of closed history chunks kept for /api/pnl/history (least recently used go "
              "first); 0 is off. A chunk is kept once a later change closed it; a clock stepped back "
              "drops what it touches; chunks older than storage.keep_buckets_days are read from SQLite"),
    ),
    "log": (
        Field("level", str, "info", choices=("debug", "info", "warning", "error"),
              help="lowest level logged"),
        Field("format", str, "auto", choices=("auto", "json", "console"),
              help="auto: JSON lines unless stderr is a terminal"),
    ),
    "supervisor": (
        Field("max_core_restarts", int, 5, min=0,
              help="core actor crashes tolerated per window; one more ends the process (exit 70)"),
        Field("restart_window_s", float, 60.0, min=1, help="the window of max_core_restarts"),
        Field("backoff_initial_s", float, 0.5, min=0, help="first restart backoff of a crashed actor"),
        Field("backoff_max_s", float, 30.0, min=0, help="longest restart backoff (it doubles)"),
    ),
    "backplane": (
        Field("url", str, "", check=redis_url_problem,
              help="Redis for scale-out (docs/scaleout.md): the core publishes every committed change "
              "to a stream, `northstard edge` nodes follow it; redis:// or rediss://, no password in it "
              "(password_file or $CREDENTIALS_DIRECTORY/backplane.password); empty: off"),
        Field("password_file", Path, None, help="file holding the Redis password (AUTH)"),
        Field("ca_file", Path, None,
              help="rediss://: CA certificates that verify the Redis server's certificate (a private "
              "CA); unset: the system's"),
        Field("prefix", str, "northstard:", help="key prefix: <prefix>stream, <prefix>current, <prefix>core"),
        Field("stream_maxlen", int, 0, min=0,
              help="stream entries kept (XADD MAXLEN ~); 0: hub.ring_size. More missing after a Redis "
              "outage than this: the core publishes a snapshot instead of the changes"),
        Field("heartbeat_s", float, 1.0, min=0.05,
              help="the core's liveness key is rewritten this often and expires after 3; edges then "
              "mark the core unreachable"),
        Field("timeout_s", float, 5.0, min=0.1, help="Redis connect and command time limit"),
        Field("core_url", str, "", help="the core's URL, named by an edge's 503 for history"),
    ),
    "alerting": (
        Field("tick_s", float, 1.0, min=0.01,
              help="how often time-based alert conditions are checked (for_s, no_changes, store, backup)"),
        Field("max_window_points", int, 1024, min=2,
              help="points a sliding-window rule keeps (closer points merge: the window may start "
              "up to window/N early)"),
        Field("keep_history", int, 10000, min=10,
              help="alert transitions kept in SQLite (oldest deleted first)"),
    ),
    "backup": (
        Field("dir", Path, None, help="folder of the periodic backups; default: backups/ beside the DB"),
        Field("every_s", float, 0.0, min=0,
              help="a periodic online backup every N seconds (e.g. 86400); 0 is off"),
        Field("keep", int, 7, min=1, help="the newest N periodic backups are kept"),
        Field("keep_days", float, 0.0, min=0, help="older ones go too (the newest stays); 0: no limit"),
    ),
}

def default(section: str, key: str, kind: type[_T]) -> _T:
    """The schema's default of ``[section] key``: the one source for code-side defaults."""
    value = next(f.default for f in CORE[section] if f.name == key)
    if not isinstance(value, kind):
        raise TypeError(f"{section}.{key}: the default is not a {kind.__name__}")
    return value


def default_settings() -> Settings:
    """The typed settings of an empty config file: every core key at its schema default."""
    return build_settings({name: _section(name, fields, {}) for name, fields in CORE.items()})


def _notifier_names(value: list[object]) -> str | None:
    if all(isinstance(v, str) and v and _cookie_name(v) is None for v in value):
        return None
    return "expected a list of notifier names"


ALERT_RULE: tuple[Field, ...] = (
    Field("kind", str, "threshold", choices=KINDS, help="what the rule watches"),
    Field("metric", str, None, help='threshold: an amount path of the snapshot document, e.g. '
          '"costs.by_category.ai"'),
    Field("window", str, "value",
          help='threshold: value, day, week, month (growth since the UTC period start) or a '
          'duration such as "15m" (growth over a sliding window)'),
    Field("above", str, None, help='threshold: fire when the value is above this decimal string'),
    Field("below", str, None, help="threshold: fire when the value is below this (one of above/below)"),
    Field("hysteresis", str, None,
          help='threshold: a firing rule resolves only this far back past it, e.g. "10.00"'),
    Field("for_s", float, 0.0, min=0,
          help="the condition must hold this long before firing (no_changes: seconds without a change)"),
    Field("severity", str, "warning", choices=SEVERITIES, help="info, warning or critical"),
    Field("notify", list, [], check=_notifier_names, help="named notifiers told on firing and resolved"),
    Field("source", str, None, help="source_stale / source_failing: the source's name; unset: any"),
)


def _alert_rules(given: object) -> tuple[Rule, ...]:
    if not isinstance(given, dict):
        raise ConfigError("alerts", "expected a table of [alerts.NAME] sections")
    rules = []
    for name, section in given.items():
        if _cookie_name(name) is not None:
            raise ConfigError(f"alerts.{name}", "alert names: letters, digits, _ and - only")
        rules.append(rule_from_section(name, _section(f"alerts.{name}", ALERT_RULE, section)))
    return tuple(rules)


def _http_url(value: str) -> str | None:
    return None if value.startswith(("http://", "https://")) else "expected an http:// or https:// URL"


NOTIFIER: tuple[Field, ...] = (
    Field("type", str, "webhook", choices=("webhook", "email"),
          help="webhook: a JSON POST per alert event; email: a message over SMTP"),
    Field("url", str, None, check=_http_url, help="webhook: where it POSTs (required)"),
    Field("secret", str, None, secret=True,
          help="webhook: HMAC-SHA256 key of the X-Northstard-Signature header: environment "
          "(NORTHSTARD_NOTIFIERS__NAME__SECRET), secret_file, or $CREDENTIALS_DIRECTORY/NAME.secret"),
    Field("smtp_host", str, None, help="email: the SMTP server (required)"),
    Field("smtp_port", int, 587, min=1, max=65535, help="email: its port (587: submission)"),
    Field("from", str, None, help="email: the sender address (required)"),
    Field("to", list, [], help="email: the recipients (required)"),
    Field("starttls", bool, True, help="email: STARTTLS before anything else (a login needs it)"),
    Field("ca_file", Path, None, help="email: CA certificates that verify the server; unset: the system's"),
    Field("username", str, None, help="email: the SMTP login"),
    Field("password", str, None, secret=True,
          help="email: the SMTP password: environment (NORTHSTARD_NOTIFIERS__NAME__PASSWORD), "
          "password_file, or $CREDENTIALS_DIRECTORY/NAME.password"),
    Field("timeout_s", float, 10.0, min=0.01, help="one attempt's time limit"),
    Field("max_attempts", int, 8, min=1, help="attempts before the event becomes a dead letter"),
    Field("backoff_initial_s", float, 1.0, min=0,
          help="wait after the first failure (it doubles, with jitter)"),
    Field("backoff_max_s", float, 300.0, min=0, help="longest wait between attempts"),
)


def _notifiers(given: object, environ: Mapping[str, str]) -> dict[str, dict[str, object]]:
    if not isinstance(given, dict):
        raise ConfigError("notifiers", "expected a table of [notifiers.NAME] sections")
    out = {}
    for name, section in given.items():
        key = f"notifiers.{name}"
        if _cookie_name(name) is not None or not isinstance(section, dict):
            raise ConfigError(key, "expected a table named with letters, digits, _ and - only")
        section = dict(section)
        secrets = {}
        for spec in (f for f in NOTIFIER if f.secret):
            env_name = f"{ENV_PREFIX}NOTIFIERS__{name.upper()}__{spec.name.upper()}"
            env_given = {f"{key}.{spec.name}": environ[env_name]} if env_name in environ else {}
            secrets[spec.name] = _secret(key, spec, section, env_given)
        values = {**_section(key, tuple(f for f in NOTIFIER if not f.secret), section), **secrets}
        _notifier_complete(key, values)
        out[name] = values
    return out


def _notifier_complete(key: str, values: Mapping[str, object]) -> None:
    needed = ("url",) if values["type"] == "webhook" else ("smtp_host", "from", "to")
    for name in needed:
        if not values[name]:
            raise ConfigError(f"{key}.{name}", f"required for type = {values['type']!r}")
    if values["type"] == "email" and values["username"] and not values["starttls"]:
        raise ConfigError(f"{key}.starttls", "a login needs STARTTLS (the password would go in clear)")


SOURCE_COMMON: tuple[Field, ...] = (
    Field("plugin", str, None, help="plugin type; defaults to the section name"),
    Field("enabled", bool, True, help="a disabled source's stored records still count, marked stale"),
    Field("interval_s", float, None, min=0.001, help="poll interval; unset: the plugin's default"),
    Field("timeout_s", float, 30.0, min=0.001, help="one poll's time limit"),
    Field("stale_after_s", float, None, min=0.001,
          help="no success for this long: stale; unset: 3 × interval_s + timeout_s"),
    Field("failure_threshold", int, 3, min=1, help="consecutive failures that open the circuit"),
    Field("cooldown_s", float, 30.0, min=0, help="how long an open circuit waits before a probe"),
)


class Schema(Protocol):
    """What config needs of a source type: its keys and its default poll interval."""

    @property
    def fields(self) -> tuple[Field, ...]: ...

    @property
    def default_interval_s(self) -> float: ...


@dataclass(frozen=True)
class SourceSection:
    """One ``[sources.NAME]`` section, validated against common and plugin keys."""

    name: str
    plugin: str
    enabled: bool
    interval_s: float
    timeout_s: float
    stale_after_s: float
    failure_threshold: int
    cooldown_s: float
    options: Mapping[str, object] = field(repr=False)
    secrets: frozenset[str] = frozenset()

    def secret_values(self) -> list[str]:
        """The secrets this section holds (to scrub from logs and errors)."""
        return [str(self.options[k]) for k in self.secrets if self.options.get(k)]


@dataclass(frozen=True)
class Config:
    """The effective configuration."""

    sections: Mapping[str, Mapping[str, Any]]
    sources: tuple[SourceSection, ...]
    path: Path | None = None
    raw_sources: Mapping[str, Mapping[str, object]] = field(default_factory=dict, repr=False)
    alerts: tuple[Rule, ...] = ()
    notifiers: Mapping[str, Mapping[str, object]] = field(default_factory=dict, repr=False)

    def get(self, section: str, key: str) -> object:
        return self.sections[section][key]

    @cached_property
    def settings(self) -> Settings:
        """The core sections as frozen typed records (``settings.hub.ring_size``), built once."""
        return build_settings(self.sections)

    @property
    def db_path(self) -> Path:
        path: Path | None = self.sections["storage"]["path"]
        return path if path is not None else _default_db()


def _env_overrides(environ: Mapping[str, str]) -> dict[tuple[str, ...], tuple[str, object]]:
    found: dict[tuple[str, ...], tuple[str, object]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_RESERVED:
            continue
        parts = tuple(p.lower() for p in name[len(ENV_PREFIX) :].split("__"))
        if len(parts) < 2 or not all(parts):
            raise ConfigError(name, "expected NORTHSTARD_<SECTION>__<KEY>")
        found[parts] = (name, _env_value(raw))
    return found


def _env_value(raw: str) -> object:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _read_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(str(path), "config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None


def _section(name: str, fields: tuple[Field, ...], given: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(given, Mapping):
        raise ConfigError(name, "expected a table")
    known = {f.name: f for f in fields}
    for key in given:
        if key not in known:
            raise ConfigError(f"{name}.{key}", "unknown key")
    result: dict[str, object] = {}
    for spec in fields:
        key = f"{name}.{spec.name}"
        if spec.name in given:
            result[spec.name] = spec.validate(key, given[spec.name])
        elif spec.required:
            raise ConfigError(key, "required")
        else:
            result[spec.name] = copy.deepcopy(spec.default)
    return result


def _secret(section: str, spec: Field, given: dict[str, object], env_given: Mapping[str, str]) -> object:
    key = f"{section}.{spec.name}"
    if key in env_given:
        given.pop(spec.name, None)
        given.pop(f"{spec.name}_file", None)
        return env_given[key]  # the raw text: a secret is never parsed as a number
    if spec.name in given:
        raise ConfigError(key, "secrets are not read from the config file: use the "
                          f"environment or {spec.name}_file")
    file_key = f"{spec.name}_file"
    path = given.pop(file_key, None)
    if path is None:
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        candidate = Path(credentials) / f"{section.split('.')[-1]}.{spec.name}" if credentials else None
        path = str(candidate) if candidate and candidate.exists() else None
    if spec.name in given or path is None:
        return given.pop(spec.name, None)
    try:
        return Path(str(path)).expanduser().read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{section}.{file_key}", f"cannot read: {exc.strerror}") from None


def _source(
    name: str, given: dict[str, Any], schemas: Mapping[str, Schema], env_given: Mapping[str, str]
) -> SourceSection:
    section = f"sources.{name}"
    if not isinstance(given, dict):
        raise ConfigError(section, "expected a table")
    plugin = _plugin_of(section, given.get("plugin") or name, schemas)
    plugin_fields = schemas[plugin].fields
    values = _source_values(section, plugin_fields, dict(given), env_given)
    interval = values.pop("interval_s")
    timeout = values.pop("timeout_s")
    stale = values.pop("stale_after_s")
    interval = interval if interval is not None else schemas[plugin].default_interval_s
    return SourceSection(
        name=name,
        plugin=plugin,
        enabled=values.pop("enabled"),
        interval_s=interval,
        timeout_s=timeout,
        stale_after_s=stale if stale is not None else 3 * interval + timeout,
        failure_threshold=values.pop("failure_threshold"),
        cooldown_s=values.pop("cooldown_s"),
        options={k: v for k, v in values.items() if k != "plugin"},
        secrets=frozenset(f.name for f in plugin_fields if f.secret),
    )


def _plugin_of(section: str, plugin: str, schemas: Mapping[str, Schema]) -> str:
    if plugin not in schemas:
        known = ", ".join(sorted(schemas)) or "none"
        raise ConfigError(f"{section}.plugin", f"no source plugin {plugin!r} (installed: {known})")
    return plugin


def _source_values(section: str, plugin_fields: Sequence[Field], given: dict[str, Any],
                   env_given: Mapping[str, str]) -> dict[str, Any]:
    """The section's values: the common keys and the plugin's, its secrets read (``_secret``)
    before the rest is checked, so a ``*_file`` key is never an unknown key."""
    secrets = {f.name: _secret(section, f, given, env_given) for f in plugin_fields if f.secret}
    values = _section(section, SOURCE_COMMON + tuple(f for f in plugin_fields if not f.secret), given)
    for spec in plugin_fields:
        if spec.secret:
            if secrets[spec.name] is None and spec.required:
                raise ConfigError(f"{section}.{spec.name}", "required (environment or _file)")
            values[spec.name] = secrets[spec.name]
    return values


def _table(data: dict[str, object], key: str, name: str) -> dict[str, object]:
    table = data.setdefault(key, {})
    if not isinstance(table, dict):
        raise ConfigError(name, "overrides a key that is not a table")
    return table


def _merge_env(data: dict[str, object], environ: Mapping[str, str]) -> dict[str, str]:
    """Apply overrides in place; returns the raw text of each source key set from the environment."""
    raw_sources: dict[str, str] = {}
    for parts, (name, value) in _env_overrides(environ).items():
        if parts[0] == "notifiers" and len(parts) == 3 and parts[2] in ("secret", "password"):
            continue  # read by _notifiers, as a secret
        if parts[0] == "sources":
            if len(parts) != 3:
                raise ConfigError(name, "expected NORTHSTARD_SOURCES__<NAME>__<KEY>")
            _table(_table(data, "sources", name), parts[1], name)[parts[2]] = value
            raw_sources[f"sources.{parts[1]}.{parts[2]}"] = environ[name]
        elif len(parts) == 2:
            if parts[0] not in CORE:
                raise ConfigError(name, f"unknown section {parts[0]!r}")
            _table(data, parts[0], name)[parts[1]] = value
        else:
            raise ConfigError(name, "expected NORTHSTARD_<SECTION>__<KEY>")
    return raw_sources


def load_config(
    path: Path | None,
    schemas: Mapping[str, Schema],
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read, override and validate. ``schemas`` maps plugin names to their fields."""
    environ = os.environ if environ is None else environ
    data = _read_file(path)
    env_given = _merge_env(data, environ)
    for name in data:
        if name not in CORE and name not in ("sources", "alerts", "notifiers"):
            raise ConfigError(name, "unknown section")
    sections = {name: _section(name, fields, data.get(name, {})) for name, fields in CORE.items()}
    raw_sources = data.get("sources", {"demo": {}})
    if not isinstance(raw_sources, dict):
        raise ConfigError("sources", "expected a table of [sources.NAME] sections")
    sources = tuple(
        _source(name, given, schemas, env_given) for name, given in raw_sources.items()
    )
    alerts = _alert_rules(data.get("alerts", {}))
    notifiers = _notifiers(data.get("notifiers", {}), environ)
    for rule in alerts:
        for name in rule.notify:
            if name not in notifiers:
                raise ConfigError(f"alerts.{rule.name}.notify", f"no [notifiers.{name}] section")
    config = Config(sections=sections, sources=sources, path=path, raw_sources=raw_sources,
                    alerts=alerts, notifiers=notifiers)
    config.settings  # noqa: B018  # built now, once: a section that disagrees with its record fails here
    return config


def redacted(config: Config) -> dict[str, object]:
    """The effective config as plain data, secrets replaced by ``<redacted>``."""
    out: dict[str, Any] = {
        name: {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}
        for name, values in config.sections.items()
    }
    out["storage"]["path"] = str(config.db_path)
    out["sources"] = {}
    for source in config.sources:
        options = {
            k: (REDACTED if k in source.secrets and v is not None else v)
            for k, v in source.options.items()
        }
        out["sources"][source.name] = {
            "plugin": source.plugin,
            "enabled": source.enabled,
            "interval_s": source.interval_s,
            "timeout_s": source.timeout_s,
            "stale_after_s": source.stale_after_s,
            "failure_threshold": source.failure_threshold,
            "cooldown_s": source.cooldown_s,
            **options,
        }
    return out
