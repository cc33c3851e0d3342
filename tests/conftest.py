"""Fixtures: a real daemon in the test's nursery (port 0, SQLite under tmp_path)."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio
from structlog.testing import capture_logs

from northstard.config import Config, load_config
from northstard.daemon import Daemon, run_daemon
from northstard.plugins import Plugins, make_plugins

from scripted import FEEDS, ScriptedPlugin


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def toml_dumps(data: Mapping[str, Mapping[str, Any]]) -> str:
    lines = []
    for section, values in data.items():
        if section == "sources":
            for name, options in values.items():
                lines.append(f"[sources.{name}]")
                lines += [f"{k} = {toml_value(v)}" for k, v in options.items()]
            continue
        lines.append(f"[{section}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def write_config(tmp_path: Path, sources: Mapping[str, Any], **sections: Any) -> Path:
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace_s": 1.0},
        "storage": {"path": str(tmp_path / "northstard.db"), "synchronous": "normal",
                    "batch_deadline_ms": 2.0},
        "log": {"format": "json", "level": "warning"},
        "grpc": {"port": 0},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    data["sources"] = dict(sources)
    path = tmp_path / "northstard.toml"
    path.write_text(toml_dumps(data))
    return path


def plugins_for_tests() -> Plugins:
    return make_plugins(extra=[ScriptedPlugin()])


def build_config(tmp_path: Path, sources: Mapping[str, Any], **sections: Any) -> Config:
    plugins = plugins_for_tests()
    path = write_config(tmp_path, sources, **sections)
    return load_config(path, plugins.source_types(), environ={})


DEMO_FAST = {"demo": {"interval_s": 0.02, "seed": 7}}


@asynccontextmanager
async def running(tmp_path: Path, **sections: Any) -> AsyncIterator[Daemon]:
    """A daemon on this test's database and state directory, stopped (and awaited) at exit."""
    config = build_config(tmp_path, DEMO_FAST, **sections)
    async with trio.open_nursery() as nursery:
        run = functools.partial(run_daemon, config, plugins_for_tests(), handle_signals=False)
        daemon: Daemon = await nursery.start(run)
        try:
            yield daemon
        finally:
            daemon.stop()


@contextmanager
def debug_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Log entries, debug included (whatever level an earlier test configured)."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(**saved)


@pytest.fixture(autouse=True)
def _fresh_feeds() -> None:
    FEEDS.clear()


@pytest.fixture
def start_daemon(
    nursery: trio.Nursery, tmp_path: Path
) -> Callable[..., Any]:
    """``await start_daemon(sources, **sections)`` -> a running Daemon (stopped at teardown)."""

    async def start(sources: Mapping[str, Any] = DEMO_FAST, **sections: Any) -> Daemon:
        config = build_config(tmp_path, sources, **sections)
        daemon: Daemon = await nursery.start(
            lambda task_status: run_daemon(
                config, plugins_for_tests(), handle_signals=False, task_status=task_status
            )
        )
        return daemon

    return start


@pytest.fixture
async def daemon(start_daemon: Callable[..., Any]) -> AsyncIterator[Daemon]:
    running: Daemon = await start_daemon()
    yield running
    running.stop()
