"""Summarise a py-spy raw (collapsed stacks) file: the hottest frames, as JSON.

    python bench/pyspy_top.py FILE [--top 25] [--grep northstard]

``self``: samples where the frame was on top of the stack; ``inclusive``: samples
where it was anywhere on the stack (each frame counted once per sample).
Percentages are of all samples in the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path


def summarise(path: Path, top: int, grep: str | None) -> dict[str, object]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with path.open() as handle:
        for line in handle:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            samples = int(count)
            total += samples
            frames = stack.split(";")
            own[frames[-1]] += samples
            for frame in set(frames):
                inclusive[frame] += samples

    def rows(counter: Counter[str]) -> list[dict[str, object]]:
        picked = [(f, n) for f, n in counter.most_common() if grep is None or grep in f][:top]
        return [{"pct": round(100 * n / total, 1), "samples": n, "frame": f} for f, n in picked]

    return {"file": str(path), "samples": total, "self": rows(own), "inclusive": rows(inclusive)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="top frames of a py-spy raw profile")
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--grep", help="only frames containing this text")
    args = parser.parse_args(argv)
    print(json.dumps(summarise(args.file, args.top, args.grep), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
