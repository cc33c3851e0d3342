"""The command line: sources check, bad flags, the example config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from northstard.config import load_config
from northstard.plugins import make_plugins

from conftest import write_config

ROOT = Path(__file__).parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "northstard", *args], capture_output=True, text=True, timeout=60
    )


def test_sources_check_polls_each_source_once_and_says_what_it_gives(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"demo": {"seed": 3}})
    result = run("--config", str(config), "sources", "check")
    assert result.returncode == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("demo"))
    assert "yes" in line and "net_pnl" in line and "position" in line


def test_sources_check_fails_for_a_source_that_is_not_reachable(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {"sales": {"plugin": "revenue_http", "base_url": "http://127.0.0.1:9", "timeout_s": 5}},
    )
    result = run("--config", str(config), "sources", "check")
    assert result.returncode == 1
    assert "sales" in result.stdout


def test_a_bad_flag_value_names_the_key() -> None:
    result = run("--port", "70000", "check-config")
    assert result.returncode == 2
    assert result.stderr.strip() == "northstard: config error: server.port: must be at most 65535"


def test_check_config_reads_the_backplane_ca_file_as_run_does(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"demo": {}}, backplane={
        "url": "rediss://127.0.0.1:6390", "ca_file": str(tmp_path / "missing.pem")})
    result = run("--config", str(config), "check-config")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "northstard: config error: backplane.ca_file: cannot read CA certificates:"
        " No such file or directory")


def test_the_shipped_example_config_is_valid() -> None:
    plugins = make_plugins()
    config = load_config(ROOT / "northstard.example.toml", plugins.source_types(), environ={})
    assert config.get("server", "port") == 8080
    assert [s.name for s in config.sources] == ["demo"]
