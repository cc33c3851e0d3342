"""Alert rules evaluated per committed change: µs per change for N rules (issue 15: 1,000 rules < 1 ms).

    python bench/alerts_eval.py [--rules 1000] [--changes 2000] [--paths 104]

The rules mix the windows (value, day, week, month, sliding 15m) and built-in kinds over ``--paths``
amount paths of the document (net_pnl, costs, trading, then per-model costs and per-agent nets, as the
demo's); each change moves net_pnl, costs.total, one model's cost and one agent's net, as a record
does. Two passes over the same changes: ``all`` evaluates every rule (``evaluate``), ``indexed`` only
those the change's patch can move (``RuleIndex``); the transitions must be equal. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from decimal import Decimal
from typing import Any

from northstard.core.alertindex import RuleIndex
from northstard.core.alertrules import Observation, Rule, RuleState, evaluate
from northstard.core.mergepatch import diff

T0 = 1_796_000_000_000
BASE = (("net_pnl",), ("costs", "total"), ("costs", "by_category", "ai"), ("trading", "total"))
SPREAD = 50  # models, and agents


def paths(count: int) -> list[tuple[str, ...]]:
    extra = [p for k in range(SPREAD) for p in (("costs", "by_model", f"m{k}"), ("agents", f"a{k}", "net"))]
    return (list(BASE) + extra)[:count]
WINDOWS = (("value", 0.0), ("day", 0.0), ("week", 0.0), ("month", 0.0), ("sliding", 900.0))


def rules(count: int, metric_paths: list[tuple[str, ...]]) -> list[Rule]:
    out = []
    for i in range(count):
        if i % 10 == 9:
            out.append(Rule(f"r{i}", kind="source_stale"))
            continue
        window, seconds = WINDOWS[i % len(WINDOWS)]
        out.append(Rule(f"r{i}", metric=metric_paths[i % len(metric_paths)], window=window,
                        window_s=seconds, above=Decimal(1000 + i), hysteresis=Decimal(5),
                        for_s=float(i % 3)))
    return out


def doc(i: int) -> dict[str, Any]:
    k = i % SPREAD
    models = {f"m{j}": f"{(i - (i - j) % SPREAD) * 0.3:.2f}" for j in range(SPREAD)}
    agents = {f"a{j}": {"net": f"{(i - (i - j) % SPREAD) * 0.7 % 900:.2f}"} for j in range(SPREAD)}
    models[f"m{k}"], agents[f"a{k}"]["net"] = f"{i * 0.3:.2f}", f"{i * 0.7 % 900:.2f}"
    return {"net_pnl": f"{i * 0.37 % 2000:.2f}", "trading": {"total": f"{i // 20 % 700}.10"},
            "costs": {"total": f"{i * 1.1:.2f}", "by_category": {"ai": f"{i // 10 * 9:.2f}"},
                      "by_model": models},
            "agents": agents, "sources": {"demo": {"status": "ok" if i % 50 else "stale"}}}


def run(rule_set: list[Rule], docs: list[dict[str, Any]],
        index: RuleIndex | None) -> tuple[list[float], list[Any], dict[str, RuleState]]:
    states: dict[str, RuleState] = {}
    times, out = [], []
    previous: dict[str, Any] = {}
    for i, d in enumerate(docs):
        patch = diff(previous, d)
        previous = d
        obs = Observation(T0 + i * 1000, d, last_change_ms=T0 + i * 1000, epoch="e", seq=i + 1)
        started = time.perf_counter()
        if index is None:
            fresh = evaluate(rule_set, states, obs)
        else:
            fresh = index.evaluate_change(states, obs, patch)
        times.append(time.perf_counter() - started)
        out.extend((t.rule.name, t.event, t.seq) for t in fresh)
    times.sort()
    return times, out, states


def figures(times: list[float], count: int) -> dict[str, float]:
    return {"us_per_change_p50": round(statistics.median(times) * 1e6, 1),
            "us_per_change_p99": round(times[int(len(times) * 0.99)] * 1e6, 1),
            "us_per_rule_p50": round(statistics.median(times) * 1e6 / count, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--paths", type=int, default=len(BASE) + 2 * SPREAD)
    args = parser.parse_args()
    rule_set = rules(args.rules, paths(args.paths))
    docs = [doc(i) for i in range(args.changes)]
    all_times, all_out, _ = run(rule_set, docs, None)
    index = RuleIndex(rule_set)
    fast_times, fast_out, states = run(rule_set, docs, index)
    if fast_out != all_out:
        raise SystemExit("indexed evaluation differs from evaluating every rule")
    print(json.dumps({
        "rules": args.rules, "changes": args.changes, "paths": args.paths,
        "transitions": len(fast_out), "always_evaluated": len(index.always),
        "all": figures(all_times, args.rules), "indexed": figures(fast_times, args.rules),
        "max_points_held": max(len(s.points) for s in states.values()),
    }))


if __name__ == "__main__":
    main()
