"""The typed settings agree with the schema: same sections, same keys in the same order, same types."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import pytest

from northstard.config import CORE, Field, load_config
from northstard.errors import ConfigError
from northstard.settings import Settings


def _expected(spec: Field) -> tuple[object, ...]:
    kind: object = spec.type
    if spec.type is list:
        kind = tuple
    if spec.default is None and not spec.required:
        return (kind, type(None))
    return (kind,)


def _actual(hint: object) -> tuple[object, ...]:
    if typing.get_origin(hint) is typing.Literal:  # a key with choices may be typed by them
        return tuple({type(a) for a in typing.get_args(hint)})
    if isinstance(hint, types.UnionType):
        return tuple(typing.get_origin(a) or a for a in typing.get_args(hint))
    return (typing.get_origin(hint) or hint,)


def test_every_schema_section_has_a_record() -> None:
    assert [f.name for f in dataclasses.fields(Settings)] == list(CORE)


@pytest.mark.parametrize("section", list(CORE))
def test_record_keys_and_types_are_the_schemas(section: str) -> None:
    record = typing.get_type_hints(Settings)[section]
    hints = typing.get_type_hints(record)
    assert list(hints) == [f.name for f in CORE[section]], section
    for spec in CORE[section]:
        assert _actual(hints[spec.name]) == _expected(spec), f"{section}.{spec.name}"
        if typing.get_origin(hints[spec.name]) is typing.Literal:
            assert typing.get_args(hints[spec.name]) == spec.choices, f"{section}.{spec.name}"


def test_settings_hold_the_loaded_values_frozen(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[hub]\nring_size = 77\n[server]\nws_allowed_origins = ["https://a.example"]\n'
                    "[storage]\nbatch_deadline_ms = 5\n[sources]\n")
    config = load_config(path, {}, environ={"NORTHSTARD_GRPC__PORT": "9001"})
    settings = config.settings
    assert settings is config.settings  # built once
    assert settings.hub.ring_size == 77 and settings.grpc.port == 9001
    assert settings.server.ws_allowed_origins == ("https://a.example",)
    assert settings.storage.batch_deadline_ms == 5.0 and isinstance(settings.storage.batch_deadline_ms, float)
    assert settings.storage.path is None and settings.auth.open == ("health",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.hub.ring_size = 1  # type: ignore[misc]


def test_a_bad_value_still_names_its_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[hub]\nring_size = \"many\"\n[sources]\n")
    with pytest.raises(ConfigError, match=r"hub\.ring_size"):
        load_config(path, {}, environ={})
