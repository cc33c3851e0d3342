"""Pre-flight: every check ``run`` makes before it binds a port, shared with ``check-config``.

``preflight`` refuses (raises) what ``run`` would refuse, with the one line
naming the key that ``check-config`` prints too (exit 2):

* a listener other machines can reach while no token is set (``auth.check_exposure``);
* ``server.tls_cert`` / ``tls_key`` and ``grpc.tls_cert`` / ``tls_key`` that are
  missing, unreadable or not a pair;
* a ``auth.session_key_file`` that cannot be read or is too short;
* a source its plugin cannot build (``PluginError`` / ``ConfigError``).

It logs, as warnings, what ``run`` only warns about: a listener served without
auth under ``insecure_no_auth``, and whatever a plugin says while it builds its
source (a Kalshi source without keys is off, say). It binds nothing and writes
nothing (the session key is made at ``run``, not here). The sources it builds
are returned: ``run`` serves those same instances, ``check-config`` closes them.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
import trio

from northstard.actors.backplane.client import read_password, read_tls
from northstard.actors.source import Source
from northstard.config import Config, SourceSection
from northstard.edges.activation import passed_hosts
from northstard.edges.grpc.server import GrpcSettings
from northstard.edges.tls import check_pair, load_server_context
from northstard.plugins import Plugins
from northstard.policy.auth import check_exposure, exposed_listeners, load_session_key

__all__ = ["Instances", "close_sources", "preflight"]

log = structlog.get_logger("northstard.daemon")

Instances = list[tuple[SourceSection, Source]]


def preflight(config: Config, plugins: Plugins) -> Instances:
    """Refuse (ConfigError, PluginError) what ``run`` refuses; warn as it warns; the enabled sources."""
    _check_exposure(config)
    load_server_context(config.settings.server)
    _check_grpc(config)
    _check_session_key(config)
    _check_backplane(config)
    return [(section, plugins.create_source(section)) for section in config.sources if section.enabled]


async def close_sources(instances: Iterable[tuple[SourceSection, Source]]) -> None:
    """Close every source (each within 2 s), even while the caller is being cancelled."""
    with trio.CancelScope(shield=True):
        for _, source in instances:
            with trio.move_on_after(2):
                await source.aclose()


def _check_exposure(config: Config) -> None:
    """ConfigError for a non-loopback listener without tokens; a loud warning under the override."""
    passed = passed_hosts()  # socket activation: what is really served
    exposed = exposed_listeners(config.settings, passed)
    for key in check_exposure(config.settings, passed):
        log.warning("INSECURE: serving without authentication on a non-loopback address "
                    "(server.insecure_no_auth / --insecure-no-auth); anyone who can reach it reads the P&L",
                    key=key, address=exposed[key])


def _check_backplane(config: Config) -> None:
    """The Redis password and CA files read as ``run`` reads them (ConfigError naming the key)."""
    section = config.settings.backplane
    read_password(section.password_file)
    read_tls(section.url, section.ca_file)


def _check_grpc(config: Config) -> None:
    section = config.settings.grpc
    if not section.enabled:
        return
    settings = GrpcSettings.from_config(section)
    if settings.tls_cert is not None and settings.tls_key is not None:
        check_pair("grpc", settings.tls_cert, settings.tls_key)


def _check_session_key(config: Config) -> None:
    """A configured key file must be readable and long enough (the default one is made at run)."""
    section = config.settings.auth
    if section.tokens and section.session_key_file is not None:
        load_session_key(section.session_key_file, config.db_path.parent)
