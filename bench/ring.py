"""The hub's replay ring in process: publish cost, merged catch-up cost, memory of a full ring.

    python bench/ring.py [--changes 10000] [--sources 40] [--seed 1]

Builds documents shaped like the daemon's (a net figure, a map of per-source
sections whose amounts move), publishes ``--changes`` changes into a ``Hub``
with the default bounds, then times ``catch_up`` from 200 distinct held
positions (each one merges: nothing cached) and reports the traced memory the
full ring holds. Prints JSON. Runs against whatever ``northstard`` is importable.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import tracemalloc
from typing import Any

from northstard.actors.hub import Hub, Position
from northstard.core.change import Change
from northstard.core.mergepatch import Doc, diff


def documents(count: int, sources: int, seed: int) -> list[Doc]:
    rng = random.Random(seed)
    doc: Doc = {"net_pnl": "0.00", "sources": {}}
    docs = [doc]
    for seq in range(1, count + 1):
        changed = {f"s{rng.randrange(sources)}" for _ in range(rng.randrange(1, 4))}
        by_source = dict(doc["sources"])
        for name in changed:
            by_source[name] = {"amount": f"{rng.randrange(10**6)}.{rng.randrange(100):02d}",
                               "as_of": f"2026-12-03T14:{seq % 60:02d}:00.000Z"}
        doc = {"net_pnl": f"{seq}.{rng.randrange(100):02d}", "sources": by_source}
        docs.append(doc)
    return docs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10000)
    parser.add_argument("--sources", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    docs = documents(args.changes, args.sources, args.seed)
    changes = [Change("e", seq, seq, docs[seq], diff(docs[seq - 1], docs[seq]))
               for seq in range(1, len(docs))]
    hub = Hub()
    hub.reset("e", 0, docs[0], 0)
    started = time.perf_counter()
    for change in changes:
        hub.publish(change)
    publish_s = time.perf_counter() - started
    patch_bytes = statistics.mean(len(json.dumps(c.patch)) for c in changes)
    del changes, hub
    tracemalloc.start()  # memory: a fresh hub fed changes made (and dropped) as the engine does
    hub = Hub()
    hub.reset("e", 0, docs[0], 0)
    before = tracemalloc.get_traced_memory()[0]
    for seq in range(1, len(docs)):
        hub.publish(Change("e", seq, seq, docs[seq], diff(docs[seq - 1], docs[seq])))
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    ring = getattr(hub, "ring", None)  # the ring before issue 11 had no public name
    oldest = ring.first_prev if ring is not None else hub.seq - min(hub.ring_size, args.changes)
    positions = sorted(random.Random(args.seed).sample(range(oldest, hub.seq - 1), 200))
    times = []
    for seq in positions:
        started = time.perf_counter()
        message = hub.catch_up(Position("e", seq))
        times.append(time.perf_counter() - started)
        assert message is not None and message.kind == "delta"
    result: dict[str, Any] = {
        "changes": args.changes,
        "mean_patch_bytes": round(patch_bytes, 1),
        "doc_bytes": len(json.dumps(docs[-1])),
        "publish_us_per_change": round(publish_s / args.changes * 1e6, 2),
        "merged_catch_up_ms": {"median": round(statistics.median(times) * 1000, 3),
                               "max": round(max(times) * 1000, 3)},
        "ring_traced_mb": round(held / 2**20, 2),
    }
    if ring is not None:
        result["ring_accounted_mb"] = round(ring.nbytes / 2**20, 2)
        result["ring_entries"] = len(ring)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
