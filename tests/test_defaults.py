"""One source of truth for defaults: settings built in code without a config equal the schema's."""

from __future__ import annotations

from pathlib import Path

import pytest

from northstard.actors.writer import WriterSettings
from northstard.config import Config, default, load_config
from northstard.edges.stream.fastws import WsSettings
from northstard.policy.limits import LimitSettings


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "c.toml"
    path.write_text("[sources]\n")
    return load_config(path, {}, environ={})


def test_writer_defaults_are_the_schemas(config: Config, tmp_path: Path) -> None:
    storage = config.sections["storage"]
    settings = WriterSettings(path=tmp_path / "x.db")
    assert settings.batch_deadline_s == storage["batch_deadline_ms"] / 1000 == 0.002
    assert (settings.synchronous, settings.batch_max, settings.snapshot_every) == (
        storage["synchronous"], storage["batch_max"], storage["snapshot_every"])
    assert (settings.keep_deltas_days, settings.keep_buckets_days) == (
        storage["keep_deltas_days"], storage["keep_buckets_days"])


def test_limit_defaults_are_the_schemas(config: Config) -> None:
    assert LimitSettings() == LimitSettings.from_section(config.settings.limits)
    assert LimitSettings().max_streams_per_client == 100  # not "unlimited" when built in code


def test_websocket_defaults_are_the_schemas(config: Config) -> None:
    assert WsSettings() == WsSettings.from_server(config.settings.server, config.settings.hub.max_rate_hz)


def test_default_names_a_wrong_type() -> None:
    with pytest.raises(TypeError, match=r"storage\.batch_max"):
        default("storage", "batch_max", str)
