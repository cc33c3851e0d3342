"""Recent merge patches, bounded in bytes, merged from any held position in O(log n) compositions.

Pure, no I/O: the hub and the gRPC edge's copy of the stream both keep one.

    level 0   p0   p1   p2   p3   p4   p5   p6   p7   p8 ...   the held patches (entry i)
    level 1   p0..1     p2..3     p4..5     p6..7     ...       pre-composed aligned pairs
    level 2   p0..3               p4..7               ...       ... and so on (binary counter)

Block ``(k, j)`` is the composition of entries ``j*2^k .. (j+1)*2^k - 1``; it is
built when its last entry arrives, from its two halves (one composition per
entry on average). The merged patch from entry ``s`` to the newest is the
composition of the aligned blocks that tile ``s .. n-1``: at most two per level,
so O(log n) compositions whatever ``s`` is, instead of ``n - s``.

Everything is held as compact JSON text (an entry's patch, each block), not
as dicts: a parsed patch costs several times its text. The exception, outside
the accounted bytes: the newest block of each level while it waits for its
right half stays parsed (at most one per level, each no larger than a held
block), so that building a block composes without parsing. The accounted bytes
(``nbytes``) are each text's ``sys.getsizeof`` plus a fixed overhead per entry
and per block; the ring keeps ``nbytes <= max_bytes`` and ``len <= max_entries``
by dropping the oldest entries first (with every block that starts before the
oldest kept entry). An entry larger than ``max_bytes`` empties the ring: a
client before it then gets a snapshot, never a gap.

An entry may cover several changes (``prev`` < ``seq - 1``): the gRPC edge is
sometimes handed a merged delta; a client anywhere inside ``prev .. seq``
applies it (merge patches are idempotent).
"""

from __future__ import annotations

import json
import sys
from bisect import bisect_right
from collections import OrderedDict, deque
from collections.abc import Sized
from typing import Generic, TypeVar

from northstard.core.mergepatch import Doc, compose

__all__ = ["BLOCK_OVERHEAD", "ENTRY_OVERHEAD", "MergedCache", "PatchRing"]

T = TypeVar("T", bound=Sized)

ENTRY_OVERHEAD = 128  # bytes per entry besides its text: two ints, three deque slots, a block slot
BLOCK_OVERHEAD = 8  # bytes per pre-composed block besides its text (its deque slot)
MAX_LEVEL = 24  # blocks of up to 2^24 entries: far above any ring held in memory


def _dumps(patch: Doc) -> str:
    return json.dumps(patch, separators=(",", ":"), ensure_ascii=False)


def _text_bytes(text: str) -> int:
    return sys.getsizeof(text)


class _Level:
    """The held blocks of one level: block numbers ``first .. first + len(texts) - 1``."""

    __slots__ = ("first", "texts")

    def __init__(self) -> None:
        self.first = 0
        self.texts: deque[str] = deque()

    def get(self, number: int) -> str | None:
        offset = number - self.first
        if 0 <= offset < len(self.texts):
            return self.texts[offset]
        return None


class PatchRing:
    """At most ``max_entries`` patches and ``max_bytes`` accounted bytes, oldest dropped first."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.dropped = 0  # entries dropped to stay within the bounds (not by clear)
        self._first = 0  # the index of the oldest held entry
        self._next = 0  # the index the next entry gets
        self._prevs: deque[int] = deque()
        self._seqs: deque[int] = deque()
        self._levels: list[_Level] = [_Level()]
        self._halves: list[Doc | None] = []  # per level: the newest block parsed, if a left half

    def __repr__(self) -> str:
        held = f"{self._prevs[0]}..{self._seqs[-1]}" if self._seqs else "nothing"
        return (f"<PatchRing holds {held} entries={len(self)}/{self.max_entries} "
                f"bytes={self.nbytes}/{self.max_bytes} levels={len(self._levels)}>")

    def __len__(self) -> int:
        return len(self._seqs)

    @property
    def first_prev(self) -> int | None:
        """The oldest position the ring can merge from (None when empty)."""
        return self._prevs[0] if self._prevs else None

    def clear(self) -> None:
        self._prevs.clear()
        self._seqs.clear()
        self._levels = [_Level()]
        self._halves = []
        self._first = self._next = 0
        self.nbytes = 0

    def holds(self, after: int) -> bool:
        """Whether every change after ``after`` up to the newest entry is held."""
        return bool(self._seqs) and self._prevs[0] <= after < self._seqs[-1]

    def append(self, prev: int, seq: int, patch_text: str, patch: Doc | None = None) -> None:
        """Hold the patch from ``prev`` to ``seq`` (its compact JSON); ``prev`` is the newest seq.

        ``patch`` is the same patch parsed, when the caller has it (saves parsing it again).
        """
        if self._seqs and prev != self._seqs[-1]:
            raise ValueError(f"entry {prev}..{seq} does not follow {self._seqs[-1]}")
        index = self._next
        self._next += 1
        self._prevs.append(prev)
        self._seqs.append(seq)
        self._levels[0].texts.append(patch_text)
        self.nbytes += _text_bytes(patch_text) + ENTRY_OVERHEAD
        self._build_blocks(index, json.loads(patch_text) if patch is None else patch)
        self._evict()

    def _build_blocks(self, index: int, patch: Doc) -> None:
        """Blocks whose last entry is ``index``: each from its two halves one level down.

        A block that is a left half stays parsed in ``_halves`` until its right
        half arrives (at most one per level, none larger than a held block), so
        building never parses: one composition and one encoding per block.
        """
        level, number, block = 0, index, patch
        while level < MAX_LEVEL:
            if level == len(self._halves):
                self._halves.append(None)
            if number % 2 == 0:
                self._halves[level] = block  # a left half: its parent waits for the right one
                return
            left, self._halves[level] = self._halves[level], None
            if left is None or self._levels[level].get(number - 1) is None:
                return  # the left half was dropped: the parent would start before the oldest entry
            level, number, block = level + 1, number // 2, compose(left, block)
            self._store(level, number, _dumps(block))

    def _store(self, level: int, number: int, text: str) -> None:
        if level == len(self._levels):
            self._levels.append(_Level())
        blocks = self._levels[level]
        if not blocks.texts:
            blocks.first = number
        blocks.texts.append(text)
        self.nbytes += _text_bytes(text) + BLOCK_OVERHEAD

    def _evict(self) -> None:
        while self._seqs and (len(self._seqs) > self.max_entries or self.nbytes > self.max_bytes):
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        self._prevs.popleft()
        self._seqs.popleft()
        entries = self._levels[0]
        self.nbytes -= _text_bytes(entries.texts.popleft()) + ENTRY_OVERHEAD
        entries.first += 1
        self._first += 1
        self.dropped += 1
        for level, blocks in enumerate(self._levels[1:], start=1):
            while blocks.texts and blocks.first << level < self._first:
                self.nbytes -= _text_bytes(blocks.texts.popleft()) + BLOCK_OVERHEAD
                blocks.first += 1

    def start_of(self, after: int) -> int:
        """The ``prev`` of the first entry past ``after`` (held): where a merge from it starts."""
        if not self.holds(after):
            raise ValueError(f"position {after} is not held")
        return self._prevs[bisect_right(self._seqs, after)]

    def pieces(self, after: int) -> tuple[int, list[str]]:
        """The ``prev`` of the first entry past ``after``, and the block texts that tile the rest.

        ``after`` must be held (``holds``). At most two blocks per level.
        """
        if not self.holds(after):
            raise ValueError(f"position {after} is not held")
        offset = bisect_right(self._seqs, after)
        start, end = self._first + offset, self._next
        texts: list[str] = []
        while start < end:
            level, text = self._largest_block(start, end)
            texts.append(text)
            start += 1 << level
        return self._prevs[offset], texts

    def _largest_block(self, start: int, end: int) -> tuple[int, str]:
        """The highest held block that starts at ``start`` and ends by ``end`` (entry at worst)."""
        for level in range(len(self._levels) - 1, 0, -1):
            size = 1 << level
            if start % size == 0 and start + size <= end:
                text = self._levels[level].get(start >> level)
                if text is not None:
                    return level, text
        text = self._levels[0].get(start)
        assert text is not None  # start is a held entry
        return 0, text

    def merged(self, after: int) -> tuple[int, Doc]:
        """The ``prev`` it starts from, and one patch from there to the newest entry."""
        prev, texts = self.pieces(after)
        patch: Doc = {}
        for text in texts:
            patch = compose(patch, json.loads(text))
        return prev, patch


class MergedCache(Generic[T]):
    """Encoded merged deltas by starting position, for the clients at the same place.

    At most ``max_entries`` encodings and ``max_bytes`` of them (``len`` of each);
    at either limit the oldest goes first. One larger than ``max_bytes`` is not
    kept. The owner clears it whenever the stream moves (every publish).
    """

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._items: OrderedDict[int, T] = OrderedDict()

    def __repr__(self) -> str:
        return f"<MergedCache entries={len(self._items)}/{self.max_entries} bytes={self.nbytes}>"

    def __len__(self) -> int:
        return len(self._items)

    def get(self, start: int) -> T | None:
        return self._items.get(start)

    def put(self, start: int, encoded: T) -> None:
        if len(encoded) > self.max_bytes or start in self._items:
            return
        self._items[start] = encoded
        self.nbytes += len(encoded)
        while len(self._items) > self.max_entries or self.nbytes > self.max_bytes:
            self.nbytes -= len(self._items.popitem(last=False)[1])

    def clear(self) -> None:
        self._items.clear()
        self.nbytes = 0
