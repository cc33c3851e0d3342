"""Configuration: the TOML file, environment overrides, secrets, and the CLI's check-config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from northstard.actors.source import SourceType
from northstard.config import CORE, Config, Field, load_config, redacted
from northstard.errors import ConfigError

DEMO = SourceType("demo", "simulated business",
                  fields=(Field("seed", int, 42), Field("agents", int, 3, min=1)),
                  default_interval_s=1.0)
SHOP = SourceType("shop", "a shop with an API key",
                  fields=(Field("plan", str, "9.99"), Field("api_key", str, secret=True, required=True)),
                  default_interval_s=30.0)
TOKENED = SourceType("tokened", "an optional secret",
                     fields=(Field("token", str, secret=True),), default_interval_s=5.0)
SCHEMAS = {"demo": DEMO, "shop": SHOP, "tokened": TOKENED}
SECRET = "sk-live-7f3a9c1e5b"


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """The config reads CREDENTIALS_DIRECTORY and the state dirs from os.environ."""
    for name in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str, name: str = "northstard.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str | None = None, environ: dict[str, str] | None = None) -> Config:
    path = None if text is None else write(tmp_path, text)
    return load_config(path, SCHEMAS, environ or {})


def config_error(tmp_path: Path, text: str | None, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, environ)
    return caught.value


def source(config: Config, name: str) -> Any:
    found = [s for s in config.sources if s.name == name]
    assert len(found) == 1, config.sources
    return found[0]


# -- defaults ------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "# nothing but a comment\n"])
def test_defaults_without_a_file(tmp_path: Path, text: str | None) -> None:
    config = load(tmp_path, text)
    for section, fields in CORE.items():
        assert config.sections[section] == {f.name: f.default for f in fields}, section
    assert config.get("server", "port") == 8080
    assert config.get("server", "host") == "127.0.0.1"
    assert config.get("storage", "batch_max") == 500
    assert config.get("engine", "revenue_basis") == "invoiced"
    # no [sources] table: [sources.demo] is implied, with the plugin's defaults
    (demo,) = config.sources
    assert demo.name == demo.plugin == "demo"
    assert demo.enabled is True
    assert demo.interval_s == 1.0
    assert demo.timeout_s == 30.0
    assert demo.stale_after_s == 3 * 1.0 + 30.0
    assert (demo.failure_threshold, demo.cooldown_s) == (3, 30.0)
    assert dict(demo.options) == {"seed": 42, "agents": 3}
    assert demo.secrets == frozenset()


def test_an_empty_sources_table_means_no_source(tmp_path: Path) -> None:
    assert load(tmp_path, "[sources]\n").sources == ()


def test_values_from_the_file(tmp_path: Path) -> None:
    config = load(tmp_path, """
[server]
port = 0
sse_keepalive_s = 5          # an integer is fine for a float key
[storage]
path = "~/pnl/northstard.db"
synchronous = "normal"
[engine]
revenue_basis = "collected"
[sources.demo]
seed = 7
interval_s = 0.5
stale_after_s = 12
enabled = false
[sources.myshop]
plugin = "shop"
plan = "19.00"
""", {"NORTHSTARD_SOURCES__MYSHOP__API_KEY": SECRET})
    assert config.get("server", "port") == 0
    assert config.get("server", "sse_keepalive_s") == 5.0
    assert isinstance(config.get("server", "sse_keepalive_s"), float)
    assert config.db_path == Path("~/pnl/northstard.db").expanduser()
    assert config.get("engine", "revenue_basis") == "collected"
    demo = source(config, "demo")
    assert (demo.enabled, demo.interval_s, demo.stale_after_s) == (False, 0.5, 12.0)
    assert demo.options["seed"] == 7
    shop = source(config, "myshop")
    assert shop.plugin == "shop"
    assert shop.interval_s == 30.0 and shop.stale_after_s == 120.0
    assert dict(shop.options) == {"plan": "19.00", "api_key": SECRET}


def test_default_db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config.db_path == tmp_path / "home" / ".local" / "state" / "northstard" / "northstard.db"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert config.db_path == tmp_path / "xdg" / "northstard" / "northstard.db"
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path / 'state'}:{tmp_path / 'other'}")
    assert config.db_path == tmp_path / "state" / "northstard.db"


# -- refused files ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[bogus]\nx = 1\n", "bogus", "unknown section"),
        ("[server]\nprot = 8080\n", "server.prot", "unknown key"),
        ("[sources.demo]\nsede = 7\n", "sources.demo.sede", "unknown key"),
        ('[server]\nport = "x"\n', "server.port", "expected int, got str"),
        ("[server]\nport = true\n", "server.port", "expected an integer, got a boolean"),
        ("[server]\nport = 80.5\n", "server.port", "expected int, got float"),
        ('[server]\nsse_keepalive_s = "fast"\n', "server.sse_keepalive_s", "expected float"),
        ("[log]\nlevel = 3\n", "log.level", "expected str, got int"),
        ('[sources.demo]\nenabled = "yes"\n', "sources.demo.enabled", "expected bool"),
        ('[sources.demo]\nseed = "7"\n', "sources.demo.seed", "expected int, got str"),
        ("[server]\nport = 70000\n", "server.port", "must be at most 65535"),
        ("[server]\nport = -1\n", "server.port", "must be at least 0"),
        ("[sources.demo]\ninterval_s = -1\n", "sources.demo.interval_s", "must be at least"),
        ("[sources.demo]\ninterval_s = 0\n", "sources.demo.interval_s", "must be at least"),
        ("[sources.demo]\nagents = 0\n", "sources.demo.agents", "must be at least 1"),
        ("[storage]\nbatch_max = 0\n", "storage.batch_max", "must be at least 1"),
        ('[storage]\nsynchronous = "off"\n', "storage.synchronous", "must be one of normal, full"),
        ('[log]\nlevel = "verbose"\n', "log.level", "must be one of"),
        ('[engine]\nrevenue_basis = "booked"\n', "engine.revenue_basis", "must be one of"),
        ("server = 5\n", "server", "expected a table"),
        ("sources = 5\n", "sources", "expected a table"),
        ("[sources]\ndemo = 5\n", "sources.demo", "expected a table"),
        ("[sources.nope]\n", "sources.nope.plugin", "no source plugin 'nope'"),
        ('[sources.x]\nplugin = "nope"\n', "sources.x.plugin", "no source plugin 'nope'"),
    ],
)
def test_refused_values_name_the_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    error = config_error(tmp_path, text)
    assert error.key == key
    assert problem in error.problem
    assert str(error) == f"config error: {key}: {error.problem}"
    assert "\n" not in str(error)


def test_unknown_key_message(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[server]\nprot = 8080\n")
    assert str(error) == "config error: server.prot: unknown key"


def test_bad_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[server\nport = \n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, SCHEMAS, {})
    assert caught.value.key == str(path)
    assert "not valid TOML" in caught.value.problem


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, SCHEMAS, {})
    assert caught.value.key == str(path)
    assert caught.value.problem == "config file not found"


# -- environment overrides -------------------------------------------------------


def test_env_overrides_parse_as_toml(tmp_path: Path) -> None:
    config = load(tmp_path, "[server]\nport = 8181\n[sources.demo]\nseed = 1\n", {
        "NORTHSTARD_SERVER__PORT": "9000",
        "NORTHSTARD_SOURCES__DEMO__SEED": "7",
        "NORTHSTARD_SERVER__HOST": "0.0.0.0",  # not TOML: taken as the string
        "NORTHSTARD_SERVER__SSE_KEEPALIVE_S": "2.5",
        "NORTHSTARD_STORAGE__PATH": '"/var/lib/northstard/pnl.db"',
        "NORTHSTARD_SOURCES__DEMO__ENABLED": "false",
        "NORTHSTARD_CONFIG": "/elsewhere.toml",  # reserved names are not overrides
        "NORTHSTARD_DISABLE_PLUGINS": "foo,bar",
        "OTHER_SERVER__PORT": "1",
    })
    assert config.get("server", "port") == 9000
    assert config.get("server", "host") == "0.0.0.0"
    assert config.get("server", "sse_keepalive_s") == 2.5
    assert config.db_path == Path("/var/lib/northstard/pnl.db")
    demo = source(config, "demo")
    assert demo.options["seed"] == 7
    assert demo.enabled is False


def test_env_overrides_without_a_file(tmp_path: Path) -> None:
    config = load(tmp_path, None, {"NORTHSTARD_SERVER__PORT": "9000",
                                   "NORTHSTARD_SOURCES__DEMO__SEED": "7"})
    assert config.get("server", "port") == 9000
    assert source(config, "demo").options["seed"] == 7


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("NORTHSTARD_SERVER", "1", "NORTHSTARD_SERVER"),
        ("NORTHSTARD_SERVER__", "1", "NORTHSTARD_SERVER__"),
        ("NORTHSTARD___PORT", "1", "NORTHSTARD___PORT"),
        ("NORTHSTARD_SERVER__PORT__X", "1", "NORTHSTARD_SERVER__PORT__X"),
        ("NORTHSTARD_SOURCES__DEMO", "1", "NORTHSTARD_SOURCES__DEMO"),
        ("NORTHSTARD_BOGUS__X", "1", "NORTHSTARD_BOGUS__X"),
        ("NORTHSTARD_SERVER__PORT", "abc", "server.port"),
        ("NORTHSTARD_SERVER__PORT", "70000", "server.port"),
        ("NORTHSTARD_SERVER__PROT", "1", "server.prot"),
        ("NORTHSTARD_SOURCES__DEMO__SEED", "x", "sources.demo.seed"),
    ],
)
def test_bad_env_overrides_name_the_variable_or_key(tmp_path: Path, name: str, value: str,
                                                    key: str) -> None:
    error = config_error(tmp_path, None, {name: value})
    assert error.key == key


@pytest.mark.parametrize(
    ("text", "name", "key"),
    [
        ("server = 5\n", "NORTHSTARD_SERVER__PORT", "server"),
        ("sources = 5\n", "NORTHSTARD_SOURCES__DEMO__SEED", "sources"),
        ("[sources]\ndemo = 5\n", "NORTHSTARD_SOURCES__DEMO__SEED", "sources.demo"),
    ],
)
def test_an_override_into_a_section_that_is_not_a_table(tmp_path: Path, text: str, name: str,
                                                         key: str) -> None:
    error = config_error(tmp_path, text, {name: "7"})
    assert error.key in (key, name)


# -- secrets ----------------------------------------------------------------------


def test_a_secret_in_the_file_is_refused(tmp_path: Path) -> None:
    error = config_error(tmp_path, f'[sources.shop]\napi_key = "{SECRET}"\n')
    assert error.key == "sources.shop.api_key"
    assert SECRET not in str(error)
    assert "environment" in error.problem


def test_a_required_secret_must_be_given(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[sources.shop]\n")
    assert error.key == "sources.shop.api_key"
    assert "required" in error.problem


def test_secret_from_the_environment(tmp_path: Path) -> None:
    config = load(tmp_path, "[sources.shop]\n", {"NORTHSTARD_SOURCES__SHOP__API_KEY": SECRET})
    shop = source(config, "shop")
    assert shop.options["api_key"] == SECRET
    assert shop.secrets == frozenset({"api_key"})


def test_secret_from_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "key.txt"
    secret_file.write_text(f"{SECRET}\n")
    config = load(tmp_path, f'[sources.shop]\napi_key_file = "{secret_file}"\n')
    assert source(config, "shop").options["api_key"] == SECRET
    assert "api_key_file" not in source(config, "shop").options
    # the file can be named from the environment too
    config = load(tmp_path, "[sources.shop]\n",
                  {"NORTHSTARD_SOURCES__SHOP__API_KEY_FILE": str(secret_file)})
    assert source(config, "shop").options["api_key"] == SECRET


def test_an_unreadable_secret_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    error = config_error(tmp_path, f'[sources.shop]\napi_key_file = "{missing}"\n')
    assert error.key == "sources.shop.api_key_file"
    assert "cannot read" in error.problem


def test_secret_from_systemd_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "myshop.api_key").write_text(SECRET)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config = load(tmp_path, '[sources.myshop]\nplugin = "shop"\n')
    assert source(config, "myshop").options["api_key"] == SECRET
    # the environment wins over the credentials directory
    config = load(tmp_path, '[sources.myshop]\nplugin = "shop"\n',
                  {"NORTHSTARD_SOURCES__MYSHOP__API_KEY": "sk-from-env"})
    assert source(config, "myshop").options["api_key"] == "sk-from-env"
    # a credential named for another source does not count
    error = config_error(tmp_path, "[sources.shop]\n")
    assert error.key == "sources.shop.api_key"


def test_a_numeric_looking_secret_stays_a_string_or_is_refused(tmp_path: Path) -> None:
    try:
        config = load(tmp_path, "[sources.shop]\n", {"NORTHSTARD_SOURCES__SHOP__API_KEY": "123456"})
    except ConfigError as error:  # refusing it, naming the key, would be a fix too
        assert error.key == "sources.shop.api_key"
        return
    assert source(config, "shop").options["api_key"] == "123456"


def test_redacted_hides_secrets(tmp_path: Path) -> None:
    config = load(tmp_path, "[sources.shop]\n[sources.tokened]\n[sources.demo]\n",
                  {"NORTHSTARD_SOURCES__SHOP__API_KEY": SECRET})
    out = redacted(config)
    text = json.dumps(out)
    assert SECRET not in text
    assert out["sources"]["shop"]["api_key"] == "<redacted>"
    assert out["sources"]["shop"]["plan"] == "9.99"
    assert out["sources"]["tokened"]["token"] is None  # not given: nothing to hide
    assert out["sources"]["demo"] == {
        "plugin": "demo", "enabled": True, "interval_s": 1.0, "timeout_s": 30.0,
        "stale_after_s": 33.0, "failure_threshold": 3, "cooldown_s": 30.0, "seed": 42, "agents": 3,
    }
    assert out["server"]["port"] == 8080
    assert out["storage"]["path"] == str(config.db_path)
    assert json.loads(text) == out  # plain JSON data


# -- the CLI ----------------------------------------------------------------------


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NORTHSTARD_") and k != "CREDENTIALS_DIRECTORY"}
    env["HOME"] = str(tmp_path / "home")
    return subprocess.run([sys.executable, "-m", "northstard", *args], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=120, check=False)


def test_cli_check_config_refuses_a_bad_file(tmp_path: Path) -> None:
    bad = write(tmp_path, "[server]\nprot = 8080\n", "bad.toml")
    result = run_cli(tmp_path, "--config", str(bad), "check-config")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["northstard: config error: server.prot: unknown key"]
    assert result.stdout == ""


def test_cli_check_config_prints_json(tmp_path: Path) -> None:
    good = write(tmp_path, f'[server]\nport = 9123\n[storage]\npath = "{tmp_path / "x.db"}"\n'
                 "[sources]\n", "good.toml")
    result = run_cli(tmp_path, "--config", str(good), "check-config")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["server"]["port"] == 9123
    assert out["storage"]["path"] == str(tmp_path / "x.db")
    assert out["sources"] == {}
    assert set(out) == {*CORE, "sources"}
