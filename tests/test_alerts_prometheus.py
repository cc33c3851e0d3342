"""deploy/prometheus/northstard-alerts.yml: promtool check rules when promtool is installed; always,
its shape and that every northstard_* metric it names is one /metrics really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from northstard.status.metrics import Metrics

RULES = Path(__file__).parent.parent / "deploy" / "prometheus" / "northstard-alerts.yml"
WANTED = {"NorthstardDown", "NorthstardNoChanges", "NorthstardSourceDown", "NorthstardStoreDegraded",
          "NorthstardBackupFailing", "NorthstardBackupTooOld"}


def exported() -> set[str]:
    text = Metrics().render().decode()
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M)) | {
        f"{name}_{suffix}" for name in re.findall(r"^# TYPE (\S+) histogram", text, re.M)
        for suffix in ("bucket", "sum", "count")}


def test_the_rules_name_only_exported_metrics() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} >= WANTED
    known = exported()
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
        assert rule["labels"]["severity"]
        named = set(re.findall(r"\bnorthstard_[a-z_]+", rule["expr"]))
        assert named <= known, (rule["alert"], named - known)
        assert re.fullmatch(r"[0-9]+[smh]", rule.get("for", "0s"))


def test_promtool_accepts_the_rules_when_installed() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:  # Debian's prometheus package (96 MB, a server) is not installed by CI
        pytest.skip("promtool not installed (apt-get install prometheus)")
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
