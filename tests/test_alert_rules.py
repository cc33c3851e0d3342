"""Alert rules: config parsing (bad keys named), windows, above/below, for_s, hysteresis. Pure."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from northstard.actors.source import SourceType
from northstard.config import load_config
from northstard.core.alertrules import Observation, Rule, RuleState, evaluate, period_start_ms
from northstard.errors import ConfigError

SCHEMAS = {"demo": SourceType("demo", "simulated", fields=(), default_interval_s=1.0)}
DAY_MS = 86_400_000
T0 = int(datetime(2026, 12, 3, 10, tzinfo=UTC).timestamp() * 1000)


def rules_of(tmp_path: Path, text: str) -> tuple[Rule, ...]:
    path = tmp_path / "n.toml"
    path.write_text(text)
    return load_config(path, SCHEMAS, environ={}).alerts


def doc(costs_ai: str | None = None, net: str = "0.00", **sources: str) -> dict[str, Any]:
    d: dict[str, Any] = {"net_pnl": net, "costs": {"by_category": {}},
                         "sources": {n: {"status": s} for n, s in sources.items()}}
    if costs_ai is not None:
        d["costs"]["by_category"]["ai"] = costs_ai
    return d


def run(
    rules: tuple[Rule, ...], steps: list[tuple[int, dict[str, Any]]], **kw: Any
) -> list[tuple[str, str, int]]:
    states: dict[str, RuleState] = {}
    out = []
    for seq, (ts, d) in enumerate(steps, start=1):
        for t in evaluate(rules, states, Observation(ts, d, last_change_ms=ts, epoch="e", seq=seq), **kw):
            out.append((t.rule.name, t.event, t.seq))
    return out


def test_a_budget_rule_parses(tmp_path: Path) -> None:
    (rule,) = rules_of(tmp_path, """
[alerts.ai_budget]
metric = "costs.by_category.ai"
window = "day"
above = "500.00"
severity = "critical"
notify = ["ops"]
[notifiers.ops]
url = "https://hooks.example.com/T0/B0"
""")
    assert rule.metric == ("costs", "by_category", "ai")
    assert (rule.window, rule.above, rule.below, rule.severity, rule.notify) == (
        "day", Decimal("500.00"), None, "critical", ("ops",))


def test_a_sliding_window_parses_its_duration(tmp_path: Path) -> None:
    (rule,) = rules_of(tmp_path, '[alerts.dd]\nmetric = "net_pnl"\nwindow = "15m"\nbelow = "-100"\n')
    assert (rule.window, rule.window_s) == ("sliding", 900.0)


@pytest.mark.parametrize(("body", "key"), [
    ('metric = "net_pnl"\nabove = "1"\nbelow = "2"', "alerts.x.above"),
    ('metric = "net_pnl"', "alerts.x.above"),
    ('above = "1"', "alerts.x.metric"),
    ('metric = "nowhere.x"\nabove = "1"', "alerts.x.metric"),
    ('metric = "net_pnl"\nabove = 500', "alerts.x.above"),
    ('metric = "net_pnl"\nabove = "lots"', "alerts.x.above"),
    ('metric = "net_pnl"\nabove = "NaN"', "alerts.x.above"),
    ('metric = "net_pnl"\nabove = "1"\nwindow = "fortnight"', "alerts.x.window"),
    ('metric = "net_pnl"\nabove = "1"\nwindow = "0m"', "alerts.x.window"),
    ('metric = "net_pnl"\nabove = "1"\nseverity = "dire"', "alerts.x.severity"),
    ('metric = "net_pnl"\nabove = "1"\nfor_s = -1', "alerts.x.for_s"),
    ('metric = "net_pnl"\nabove = "1"\nhysteresis = "-1"', "alerts.x.hysteresis"),
    ('metric = "net_pnl"\nabove = "1"\ncolour = "red"', "alerts.x.colour"),
    ('kind = "no_changes"\nmetric = "net_pnl"', "alerts.x.metric"),
    ('kind = "store_degraded"\nsource = "demo"', "alerts.x.source"),
    ('kind = "volcano"', "alerts.x.kind"),
    ('metric = "net_pnl"\nabove = "1"\nnotify = "ops"', "alerts.x.notify"),
])
def test_a_bad_rule_names_its_key(tmp_path: Path, body: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        rules_of(tmp_path, f"[alerts.x]\n{body}\n")
    assert caught.value.key == key


@pytest.mark.parametrize(("text", "key"), [
    ('[alerts.x]\nmetric = "net_pnl"\nabove = "1"\nnotify = ["ops"]\n', "alerts.x.notify"),
    ('[notifiers.ops]\nurl = "ftp://x"\n', "notifiers.ops.url"),
    ("[notifiers.ops]\ntimeout_s = 1\n", "notifiers.ops.url"),
    ('[notifiers.ops]\nurl = "https://x"\nsecret = "in-the-file"\n', "notifiers.ops.secret"),
])
def test_a_bad_notifier_names_its_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "n.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, SCHEMAS, environ={})
    assert caught.value.key == key


def test_a_notifier_secret_comes_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text('[notifiers.ops]\nurl = "https://x"\n')
    config = load_config(path, SCHEMAS, environ={"NORTHSTARD_NOTIFIERS__OPS__SECRET": "s3cr3t"})
    assert config.notifiers["ops"]["secret"] == "s3cr3t"
    assert "s3cr3t" not in repr(config)


def test_check_config_reports_a_bad_rule_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text('[storage]\npath = "db.sqlite"\n[alerts.x]\nmetric = "net_pnl"\n')
    done = subprocess.run([sys.executable, "-m", "northstard", "check-config", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert "alerts.x.above" in done.stderr


def test_above_fires_and_resolves_once() -> None:
    rule = Rule("hot", metric=("net_pnl",), above=Decimal("10"))
    steps = [(T0 + i, doc(net=n)) for i, n in enumerate(["5", "11", "12", "9", "8", "11"])]
    assert run((rule,), steps) == [("hot", "firing", 2), ("hot", "resolved", 4), ("hot", "firing", 6)]


def test_below_with_hysteresis_resolves_only_past_the_margin() -> None:
    rule = Rule("dd", metric=("net_pnl",), below=Decimal("-100"), hysteresis=Decimal("10"))
    nets = ["0", "-101", "-95", "-91", "-89"]
    steps = [(T0 + i, doc(net=n)) for i, n in enumerate(nets)]
    assert run((rule,), steps) == [("dd", "firing", 2), ("dd", "resolved", 5)]


def test_for_s_holds_then_fires_on_a_later_change_or_a_tick() -> None:
    rule = Rule("hot", metric=("net_pnl",), above=Decimal("10"), for_s=60)
    steps = [(T0, doc(net="11")), (T0 + 30_000, doc(net="12")), (T0 + 60_000, doc(net="13"))]
    assert run((rule,), steps) == [("hot", "pending", 1), ("hot", "firing", 3)]
    states: dict[str, RuleState] = {}
    evaluate((rule,), states, Observation(T0, doc(net="11")))
    tick = Observation(T0 + 60_000, None, epoch="e", seq=1)
    (fired,) = evaluate((rule,), states, tick, kinds=frozenset())
    assert (fired.event, fired.value) == ("firing", Decimal("11"))


def test_pending_that_clears_before_for_s_never_fires() -> None:
    rule = Rule("hot", metric=("net_pnl",), above=Decimal("10"), for_s=60)
    steps = [(T0, doc(net="11")), (T0 + 30_000, doc(net="9")), (T0 + 90_000, doc(net="9"))]
    assert run((rule,), steps) == [("hot", "pending", 1), ("hot", "cleared", 2)]


def test_a_day_budget_counts_from_the_utc_midnight() -> None:
    rule = Rule("ai", metric=("costs", "by_category", "ai"), window="day", above=Decimal("500"))
    midnight = period_start_ms("day", T0) + DAY_MS
    steps = [(T0, doc("1000")), (T0 + 1, doc("1400")), (T0 + 2, doc("1501")),
             (midnight + 5, doc("1600")), (midnight + 6, doc("2000")), (midnight + 7, doc("2002"))]
    # 1000 → 1501 is +501 today: fires; the next day starts from 1501: +99 resolves, +501 fires
    assert run((rule,), steps) == [("ai", "firing", 3), ("ai", "resolved", 4), ("ai", "firing", 6)]


def test_period_starts() -> None:
    thursday = int(datetime(2026, 12, 3, 15, 30, tzinfo=UTC).timestamp() * 1000)
    def at(*a: int) -> int:
        return int(datetime(*a, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]
    assert period_start_ms("day", thursday) == at(2026, 12, 3)
    assert period_start_ms("week", thursday) == at(2026, 11, 30)
    assert period_start_ms("month", thursday) == at(2026, 12, 1)


def test_a_sliding_window_measures_the_change_over_it() -> None:
    rule = Rule("dd", metric=("net_pnl",), window="sliding", window_s=900, below=Decimal("-100"))
    minute = 60_000
    steps = [(T0, doc(net="0")), (T0 + 5 * minute, doc(net="-60")), (T0 + 10 * minute, doc(net="-101")),
             (T0 + 26 * minute, doc(net="-150"))]
    # -101 is 101 down in 10 minutes: fires; 16 minutes on, the window starts at -101: -49, resolved
    assert run((rule,), steps) == [("dd", "firing", 3), ("dd", "resolved", 4)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=30_000), min_size=1, max_size=400),
       st.integers(min_value=2, max_value=16))
def test_the_sliding_window_keeps_at_most_max_points(gaps: list[int], max_points: int) -> None:
    rule = Rule("s", metric=("net_pnl",), window="sliding", window_s=600, above=Decimal("1e9"))
    states: dict[str, RuleState] = {}
    ts = T0
    for i, gap in enumerate(gaps):
        ts += gap
        evaluate((rule,), states, Observation(ts, doc(net=str(i))), max_points)
        points = states["s"].points
        assert len(points) <= max_points + 1
        assert points[-1] == (ts, Decimal(i))
        assert len(points) == 1 or points[1][0] > ts - 600_000  # only one point before the window


def test_builtin_kinds() -> None:
    stale = Rule("stale", kind="source_stale", source="demo", for_s=0)
    failing = Rule("failing", kind="source_failing")
    quiet = Rule("quiet", kind="no_changes", for_s=120)
    store = Rule("store", kind="store_degraded")
    backup = Rule("backup", kind="backup_failing", severity="critical")
    rules = (stale, failing, quiet, store, backup)
    states: dict[str, RuleState] = {}
    first = evaluate(rules, states, Observation(T0, doc(demo="stale", shop="failing"), last_change_ms=T0))
    assert {(t.rule.name, t.event) for t in first} == {("stale", "firing"), ("failing", "firing")}
    later = evaluate(rules, states, Observation(T0 + 120_000, doc(demo="ok", shop="ok"), last_change_ms=T0,
                                                store_degraded=True, backup_failing=True))
    assert {(t.rule.name, t.event) for t in later} == {
        ("stale", "resolved"), ("failing", "resolved"), ("quiet", "firing"), ("store", "firing"),
        ("backup", "firing")}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=-50, max_value=50), max_size=60))
def test_transitions_alternate_and_notify_once_per_crossing(nets: list[int]) -> None:
    rule = Rule("x", metric=("net_pnl",), above=Decimal("10"), hysteresis=Decimal("5"))
    events = [e for _, e, _ in run((rule,), [(T0 + i, doc(net=str(n))) for i, n in enumerate(nets)])]
    assert events == ["firing", "resolved"] * (len(events) // 2) + ["firing"] * (len(events) % 2)
    firing = False
    for n in nets:
        firing = n > 10 if not firing else n > 5
    assert firing == (len(events) % 2 == 1)
