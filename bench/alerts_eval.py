"""Alert rules evaluated per committed change: µs per change for N rules (issue 15: 1,000 rules < 1 ms).

    python bench/alerts_eval.py [--rules 1000] [--changes 2000]

The rules mix the windows (value, day, week, month, sliding 15m) and built-in kinds over the demo
document's amount paths; each change moves net_pnl and costs. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from decimal import Decimal

from northstard.core.alertrules import Observation, Rule, RuleState, evaluate

T0 = 1_796_000_000_000
PATHS = (("net_pnl",), ("costs", "total"), ("costs", "by_category", "ai"), ("trading", "total"))
WINDOWS = (("value", 0.0), ("day", 0.0), ("week", 0.0), ("month", 0.0), ("sliding", 900.0))


def rules(count: int) -> list[Rule]:
    out = []
    for i in range(count):
        if i % 10 == 9:
            out.append(Rule(f"r{i}", kind="source_stale"))
            continue
        window, seconds = WINDOWS[i % len(WINDOWS)]
        out.append(Rule(f"r{i}", metric=PATHS[i % len(PATHS)], window=window, window_s=seconds,
                        above=Decimal(1000 + i), hysteresis=Decimal(5), for_s=float(i % 3)))
    return out


def doc(i: int) -> dict[str, object]:
    return {"net_pnl": f"{i * 0.37 % 2000:.2f}", "trading": {"total": f"{i % 700}.10"},
            "costs": {"total": f"{i * 1.1:.2f}", "by_category": {"ai": f"{i * 0.9:.2f}"}},
            "sources": {"demo": {"status": "ok" if i % 50 else "stale"}}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=2000)
    args = parser.parse_args()
    rule_set = rules(args.rules)
    states: dict[str, RuleState] = {}
    docs = [doc(i) for i in range(args.changes)]
    times = []
    transitions = 0
    for i, d in enumerate(docs):
        obs = Observation(T0 + i * 1000, d, last_change_ms=T0 + i * 1000, epoch="e", seq=i + 1)
        started = time.perf_counter()
        transitions += len(evaluate(rule_set, states, obs))
        times.append(time.perf_counter() - started)
    times.sort()
    print(json.dumps({
        "rules": args.rules, "changes": args.changes, "transitions": transitions,
        "us_per_change_p50": round(statistics.median(times) * 1e6, 1),
        "us_per_change_p99": round(times[int(len(times) * 0.99)] * 1e6, 1),
        "us_per_rule_p50": round(statistics.median(times) * 1e6 / args.rules, 3),
        "max_points_held": max(len(s.points) for s in states.values()),
    }))


if __name__ == "__main__":
    main()
