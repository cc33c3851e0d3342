"""The ``northstard`` command.

    northstard [run] [--config F] [--host H] [--port P] [--db PATH]
    northstard check-config [--config F]     (run's pre-flight, without binding)
    northstard sources check [--config F]
    northstard backup PATH | restore PATH [--config F]
    northstard tail [--grpc|--ws|--sse] [--url URL] [--token T] [--count N] [--cacert PEM]
    northstard token new [--name N]
    northstard edge --backplane redis://HOST:PORT [--config F] [--host H] [--port P]

Exit codes: 0 clean stop, 2 bad config or plugin or a port that cannot be bound (one line
on stderr naming the key), 70 a core actor kept crashing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
import trio

from northstard import __version__
from northstard.actors.backplane.client import read_password
from northstard.actors.supervisor import SupervisorGaveUp
from northstard.config import Config, load_config, redacted
from northstard.daemon import Daemon, run_daemon
from northstard.errors import ConfigError, ListenError, PluginError, StoreError, leaf
from northstard.ops.export import add_export_arguments, run_export
from northstard.ops.logs import configure_logging
from northstard.ops.tail import add_arguments as add_tail_arguments
from northstard.plugins import Plugins, make_plugins
from northstard.policy.auth import new_token_text, valid_name
from northstard.preflight import close_sources, preflight
from northstard.store.backup import backup, restore
from northstard.store.gctune import tune_gc

if TYPE_CHECKING:
    from northstard.edge_node import EdgeNode

__all__ = ["main"]

EXIT_CONFIG = 2
EXIT_SOFTWARE = 70


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="northstard", description="Real-time P&L daemon")
    parser.add_argument("--version", action="version", version=f"northstard {__version__}")
    parser.add_argument("--config", type=Path, help="TOML config (default: $NORTHSTARD_CONFIG)")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="run the daemon (the default)")
    _config_argument(run)
    for target, default in ((parser, None), (run, argparse.SUPPRESS)):
        target.add_argument("--host", default=default, help="listen address (server.host)")
        target.add_argument(
            "--port", type=int, default=default, help="listen port (server.port; 0 = any free)"
        )
        target.add_argument("--db", type=Path, default=default, help="SQLite file (storage.path)")
        target.add_argument("--insecure-no-auth", action="store_true", default=default,
                            help="serve a non-loopback address without [auth] tokens "
                            "(server.insecure_no_auth)")
    _config_argument(commands.add_parser(
        "check-config", help="run's pre-flight checks without binding (exit 2 on what run refuses); "
        "print the effective config, secrets redacted"))
    sources = commands.add_parser("sources", help="inspect the configured sources")
    sources_commands = sources.add_subparsers(dest="sources_command", required=True)
    _config_argument(sources_commands.add_parser(
        "check", help="poll each enabled source once and show what it gives"))
    alerts = commands.add_parser("alerts", help="alert rules and notifiers")
    alert_commands = alerts.add_subparsers(dest="alerts_command", required=True)
    alert_test = alert_commands.add_parser("test", help="send a test notification now")
    alert_test.add_argument("name", help="a [notifiers.NAME], or an [alerts.NAME] (its notifiers)")
    _config_argument(alert_test)
    backup = commands.add_parser("backup", help="copy the live database (SQLite backup API)")
    backup.add_argument("path", type=Path, help="the copy's file, or a folder for a dated name")
    restore = commands.add_parser("restore", help="replace the database with a backup (daemon stopped)")
    restore.add_argument("path", type=Path, help="the backup file")
    for command in (backup, restore):
        _config_argument(command)
    export = commands.add_parser("export", help="write records or a statement from the database "
                                 "(read-only: runs beside the daemon)")
    add_export_arguments(export)
    _config_argument(export)
    tail = commands.add_parser("tail", help="print the live net P&L and each change (a client)")
    add_tail_arguments(tail)
    edge = commands.add_parser("edge", help="serve the core's stream from Redis (docs/scaleout.md)")
    _config_argument(edge)
    edge.add_argument("--backplane", help="Redis URL the core publishes to (backplane.url)")
    edge.add_argument("--host", help="listen address (server.host)")
    edge.add_argument("--port", type=int, help="listen port (server.port; 0 = any free)")
    token = commands.add_parser("token", help="API tokens for [auth]")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    new_token = token_commands.add_parser("new", help="make a token: printed once, with its config entry")
    new_token.add_argument("--name", help="a label for it (letters, digits, _ . @ -)")
    return parser


def _config_argument(command: argparse.ArgumentParser) -> None:
    """``--config`` after the command too (``northstard check-config --config F``)."""
    command.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                         help="TOML config (default: $NORTHSTARD_CONFIG)")


def _config_path(args: argparse.Namespace) -> Path | None:
    if args.config is not None:
        return Path(args.config)
    env = os.environ.get("NORTHSTARD_CONFIG")
    return Path(env) if env else None


def _load(args: argparse.Namespace) -> tuple[Config, Plugins]:
    plugins = make_plugins()
    environ = dict(os.environ)
    for flag, key in (("host", "SERVER__HOST"), ("port", "SERVER__PORT"), ("db", "STORAGE__PATH"),
                      ("backplane", "BACKPLANE__URL")):
        value = getattr(args, flag, None)
        if value is not None:
            environ[f"NORTHSTARD_{key}"] = json.dumps(str(value)) if flag != "port" else str(value)
    if getattr(args, "insecure_no_auth", False):
        environ["NORTHSTARD_SERVER__INSECURE_NO_AUTH"] = "true"
    config = load_config(_config_path(args), plugins.source_types(), environ)
    return config, plugins


def _secrets(config: Config) -> list[str]:
    password = read_password(config.settings.backplane.password_file)
    notifiers = [str(n[k]) for n in config.notifiers.values() for k in ("secret", "url", "password")
                 if n.get(k)]
    return [secret for section in config.sources for secret in section.secret_values()] + notifiers + (
        [password] if password else [])


async def _run(config: Config, plugins: Plugins, edge: Callable[..., Awaitable[None]] | None = None) -> None:
    async with trio.open_nursery() as nursery:
        if edge is not None:
            daemon: Daemon | EdgeNode = await nursery.start(edge, config)
        else:
            daemon = await nursery.start(run_daemon, config, plugins)
        if daemon.grpc_address:
            print(f"northstard grpc: {daemon.grpc_address}", flush=True)
        print(f"northstard dashboard: {daemon.url}/", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "tail":  # a client: no config, no plugins
        from northstard.ops.tail import main as tail

        return tail(args)
    if args.command == "token":
        return _new_token(args.name)
    if args.command == "export" and args.db is not None:  # no config needed
        return run_export(args, args.db)
    try:
        config, plugins = _load(args)
    except (ConfigError, PluginError) as exc:
        print(f"northstard: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "export":
        return run_export(args, config.db_path)
    if args.command in ("backup", "restore"):
        return _backup_or_restore(args.command, args.path, config.db_path)
    log_section = config.settings.log
    configure_logging(log_section.level, log_section.format, _secrets(config))
    if args.command == "check-config":
        return _check_config(config, plugins)
    if args.command == "edge":
        from northstard.edge_node import run_edge

        return _run_daemon(config, plugins, run_edge)
    if args.command == "alerts":
        from northstard.ops.alertcheck import main as test_alert

        return test_alert(config, args.name)
    if args.command == "sources":
        from northstard.ops.sources_check import main as check_sources

        return check_sources(config, plugins)
    return _run_daemon(config, plugins)


async def _preflight(config: Config, plugins: Plugins) -> None:
    """The pre-flight as ``run`` makes it (inside trio), then the sources it built are closed."""
    await close_sources(preflight(config, plugins))


def _check_config(config: Config, plugins: Plugins) -> int:
    """``run``'s pre-flight without binding: exit 2 on what run refuses; its warnings logged alike."""
    try:
        trio.run(_preflight, config, plugins)
    except (ConfigError, PluginError) as exc:
        print(f"northstard: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(json.dumps(redacted(config), indent=2, default=str))
    return 0


def _new_token(name: str | None) -> int:
    if name is not None and not valid_name(name):
        print("northstard: --name: letters, digits and _ . @ - only (at most 64)", file=sys.stderr)
        return EXIT_CONFIG
    token, entry = new_token_text(name)
    print(f"{token}\n[auth]\ntokens = [{entry}]")
    print("northstard: the token is shown only now; the config keeps only its sha256 digest "
          "(add the entry to [auth] tokens if it lists others)", file=sys.stderr)
    return 0


def _backup_or_restore(command: str, path: Path, db_path: Path) -> int:
    try:
        if command == "backup":
            print(f"northstard: backed up {db_path} to {backup(db_path, path)}")
        else:
            restore(path, db_path)
            print(f"northstard: restored {db_path} from {path}")
    except StoreError as exc:
        print(f"northstard: {exc}", file=sys.stderr)
        return 1
    return 0


def _raise_open_files_limit() -> int:
    """One descriptor per streaming client: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _run_daemon(config: Config, plugins: Plugins, edge: Callable[..., Awaitable[None]] | None = None) -> int:
    log = structlog.get_logger("northstard")
    tune_gc()
    limit = _raise_open_files_limit()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    log.info("open-files limit", soft=limit, hard=hard)
    if limit < 4096:
        log.warning("low open-files limit: [limits] max_connections is derived from it", limit=limit)
    try:
        trio.run(_run, config, plugins, edge)
    except BaseException as raised:
        exc = leaf(raised)
        if isinstance(exc, KeyboardInterrupt):
            return 0
        if isinstance(exc, SupervisorGaveUp):
            log.critical("giving up", error=str(exc))
            return EXIT_SOFTWARE
        if isinstance(exc, PluginError | ConfigError | ListenError):
            print(f"northstard: {exc}", file=sys.stderr)  # one line, as for a bad config
            return EXIT_CONFIG
        if isinstance(exc, StoreError):
            log.critical("cannot run", error=str(exc))
            return EXIT_CONFIG
        raise
    return 0
