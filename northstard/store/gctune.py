"""The garbage collector's settings of northstard's processes: the daemon's and its writer's.

Fewer full collections: with thousands of client tasks alive the default thresholds spend a
third of the daemon's CPU rescanning them, and a writer batch of tens of thousands of rows
would be scanned again and again while it is written (bench/README.md). What is alive at
start (modules, settings) is frozen out of every collection. Here, in the store's room, because
both processes reach it: the daemon's command line (``ops/cli.py``) and the writer's
(``writer_child.py``), which may not import the rooms above it (docs/architecture.md).
"""

from __future__ import annotations

import gc

__all__ = ["tune_gc"]


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
