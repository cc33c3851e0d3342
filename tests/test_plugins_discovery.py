"""Plugins: a third-party package installed in the test run is discovered and streams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from trio_websocket import open_websocket_url

from northstard.errors import PluginError
from northstard.plugins import make_plugins

from clients import Follower, ws_url
from conftest import write_config
from proc import DaemonProcess
from scripted import ScriptedPlugin

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent


def install(package: str, target: Path) -> dict[str, str]:
    """pip-install a plugin folder into ``target``; the environment that sees it."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(HERE / "thirdparty" / package)],
        check=True,
    )
    return {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


async def test_an_installed_third_party_plugin_is_discovered_and_streams(tmp_path: Path) -> None:
    env = install("northstard-example", tmp_path / "site")
    config = write_config(tmp_path, {"shop": {"plugin": "example", "plan": "12.50"}})
    daemon = DaemonProcess(config, tmp_path / "daemon.log", env)
    url = await daemon.start()
    follower = Follower()
    try:
        async with open_websocket_url(ws_url(url)) as ws:
            while follower.doc.get("revenue", {}).get("invoiced", "0.00") in ("0.00", "12.50"):
                follower.apply(json.loads(await ws.get_message()))
    finally:
        await daemon.kill()
    assert follower.doc["sources"]["shop"]["plugin"] == "example"
    assert follower.doc["agents"]["example-agent"]["revenue"] == follower.doc["revenue"]["invoiced"]
    assert int(follower.doc["revenue"]["invoiced"].split(".")[0]) % 25 in (0, 12)


def test_two_plugins_with_one_name_fail_at_start(tmp_path: Path) -> None:
    env = {**os.environ, **install("northstard-dupe", tmp_path / "site")}
    result = subprocess.run(
        [sys.executable, "-m", "northstard", "check-config"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert ("'demo'" in result.stderr and "northstard_dupe" in result.stderr) or "dupe" in result.stderr


def test_blocked_plugins_are_not_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NORTHSTARD_DISABLE_PLUGINS", "demo")
    assert "demo" not in make_plugins().source_types()


def test_a_fresh_plugin_manager_per_test_sees_only_what_it_registered() -> None:
    plugins = make_plugins(entry_points=False, extra=[ScriptedPlugin()])
    assert set(plugins.source_types()) == {"scripted"}
    with pytest.raises(PluginError):
        make_plugins(entry_points=False, extra=[ScriptedPlugin(), ScriptedPlugin()]).source_types()
