"""The rule index: evaluating only the rules a change's patch can move gives exactly the
transitions (and states) of evaluating every rule. Pure, hypothesis-driven."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from northstard.core.alertindex import RuleIndex
from northstard.core.alertrules import Observation, Rule, RuleState, Transition, evaluate
from northstard.core.mergepatch import apply_patch, diff

T0 = 1_796_000_000_000  # 2026-11-29, a Sunday: a day, a week and a month roll within days
PATHS = (("net_pnl",), ("costs", "total"), ("costs", "by_category", "ai"),
         ("trading", "total"), ("agents", "a1", "net"))
TIMED = frozenset({"source_stale", "source_failing", "no_changes", "store_degraded", "backup_failing"})

amounts = st.integers(-30, 30).map(lambda n: Decimal(n))


@st.composite
def rules(draw: st.DrawFn) -> list[Rule]:
    out = []
    for i in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(("threshold",) * 6 + ("source_stale", "no_changes", "store_degraded")))
        for_s = float(draw(st.sampled_from((0, 0, 5, 3600))))
        if kind != "threshold":
            source = draw(st.sampled_from(("", "demo"))) if kind == "source_stale" else ""
            out.append(Rule(f"r{i}", kind=kind, for_s=for_s, source=source))
            continue
        window, seconds = draw(st.sampled_from((("value", 0.0), ("day", 0.0), ("week", 0.0),
                                                ("month", 0.0), ("sliding", 60.0), ("sliding", 7200.0))))
        level = draw(amounts)
        side = {"above": level} if draw(st.booleans()) else {"below": level}
        out.append(Rule(f"r{i}", metric=draw(st.sampled_from(PATHS)), window=window, window_s=seconds,
                        hysteresis=draw(st.sampled_from((Decimal(0), Decimal(3)))), for_s=for_s,
                        **side))
    return out


def set_path(doc: dict[str, Any], path: tuple[str, ...], value: str | None) -> None:
    node = doc
    for part in path[:-1]:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value


step = st.tuples(
    st.sampled_from(("change", "change", "change", "tick", "gap")),
    st.sampled_from((0, 1_000, 4_000, 30_000, 3_600_000, 86_400_000, 9 * 86_400_000)),
    st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(st.none(), amounts.map(lambda d: f"{d}.00"))),
             max_size=3),
    st.sampled_from((None, "ok", "stale")),
    st.booleans(),  # store degraded (a tick's probe)
)


def snapshot(states: dict[str, RuleState]) -> dict[str, tuple[Any, ...]]:
    return {n: (s.status, s.since_ms, s.value, s.period_ms, s.baseline, s.shown, list(s.points))
            for n, s in states.items()}


def keys(transitions: list[Transition]) -> list[tuple[Any, ...]]:
    return [(t.rule.name, t.event, t.ts_ms, t.value, t.epoch, t.seq) for t in transitions]


@settings(max_examples=300, deadline=None)
@given(rules(), st.lists(step, min_size=1, max_size=40),
       st.lists(st.sampled_from(("ok", "pending", "firing")), min_size=25, max_size=25))
def test_indexed_evaluation_matches_evaluating_every_rule(
        rule_set: list[Rule], steps: list[tuple[Any, ...]], loaded: list[str]) -> None:
    index = RuleIndex(rule_set)
    # the states a restart loads from SQLite (the sliding points are not persisted)
    full = {r.name: RuleState(status=status, since_ms=T0 - 2000)
            for r, status in zip(rule_set, loaded, strict=False)}
    fast = copy.deepcopy(full)
    doc: dict[str, Any] = {"net_pnl": "0.00", "sources": {"demo": {"status": "ok"}}}
    now, epoch, seq, last_change = T0, "e1", 0, T0
    for kind, dt, sets, source, degraded in steps:
        now += dt
        if kind == "tick":
            obs = Observation(now, doc, last_change_ms=last_change, store_degraded=degraded,
                              epoch=epoch, seq=seq)
            expected = evaluate(rule_set, full, obs, 4, kinds=TIMED)
            got = index.evaluate_tick(fast, copy.copy(obs), 4)
        else:
            if kind == "gap":
                seq += 1  # a change the alerts actor never saw
            new = copy.deepcopy(doc)
            for path, value in sets:
                set_path(new, path, value)
            if source is not None:
                new["sources"]["demo"]["status"] = source
            patch, doc, seq, last_change = diff(doc, new), new, seq + 1, now
            assert apply_patch(copy.deepcopy(doc), patch) == doc
            obs = Observation(now, doc, last_change_ms=now, epoch=epoch, seq=seq)
            expected = evaluate(rule_set, full, obs, 4)
            got = index.evaluate_change(fast, Observation(now, doc, last_change_ms=now,
                                                          epoch=epoch, seq=seq), patch, 4)
        assert keys(got) == keys(expected)
        assert snapshot(fast) == snapshot(full)


def test_a_change_evaluates_only_the_rules_its_patch_touches() -> None:
    paths = [("costs", "by_model", f"m{i}") for i in range(100)]
    rule_set = [Rule(f"r{i}", metric=p, above=Decimal(10)) for i, p in enumerate(paths)]
    rule_set.append(Rule("quiet", kind="no_changes", for_s=60))
    index = RuleIndex(rule_set)
    states: dict[str, RuleState] = {}
    doc = {"costs": {"by_model": {f"m{i}": "0.00" for i in range(100)}}}
    index.evaluate_change(states, Observation(T0, doc, epoch="e", seq=1), None)
    obs = Observation(T0 + 1000, doc, epoch="e", seq=2)
    due = index.due(obs, {"costs": {"by_model": {"m7": "11.00"}}})
    assert [r.name for r in due] == ["r7", "quiet"]
    assert [r.name for r in index.due(obs, {"costs": None})] == [r.name for r in rule_set]
