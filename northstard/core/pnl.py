"""The P&L core: records in, snapshot document out. Pure: no I/O, no clock.

A ``Book`` holds the totals and the records whose contribution can still
change. Upserting a record subtracts its old contribution and adds its new
one, so every total is exact (Decimal) and the same record ingested twice
changes nothing. A price change re-marks the positions of that market.

Hot and cold. Only an open position (count != 0) changes its contribution
without being ingested again (its market's price re-marks it): open
positions and the prices of their markets are *hot* and stay in memory.
Every other record is *cold*: its contribution is a function of the record
alone, so the Book keeps only their sum per path (``cold_totals``, persisted
by the writer with the records, in the same transaction). With a ``store``
(the records SQLite holds, read-only), a cold record leaves memory once the
change that carried it is committed (``saved``); re-ingesting it later looks
its stored version up by key, so idempotence and exactness hold without
keeping history in memory. Without a store every record stays in memory.

``Book.document(now)`` renders the snapshot document described in docs/protocol.md
("The snapshot document"). Object-valued keys, once present, stay (they go
to zero), so merge patches of consecutive documents compose exactly.

Every computation runs in ``money.EXACT`` (90 digits, rounding trapped), so
no total is ever rounded: under the record bounds every contribution is
exact (``money``'s docstring counts the digits) and ``screen`` refuses, before
it touches the totals, a record that would carry a total to ``TOTAL_LIMIT``.
The gross margin is the one rounding: half-even to 0.01 from the exact quotient.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal, DecimalException, getcontext, setcontext
from typing import Literal, ParamSpec, Protocol, TypeAlias, TypeVar

from northstard.core.mergepatch import Doc
from northstard.core.money import EXACT, ZERO, check_bounds, format_money, within_bounds
from northstard.core.records import (
    KINDS,
    Balance,
    Cost,
    Fill,
    Invoice,
    KeyChange,
    Position,
    Price,
    Record,
    Refund,
    Retract,
    RevenueTotal,
    Settlement,
    checked,
)
from northstard.core.times import iso_ms
from northstard.errors import SchemaDriftError

__all__ = [
    "TOTAL_LIMIT",
    "Book",
    "ChangeFacts",
    "Market",
    "RevenueBasis",
    "SourceStatus",
    "StoredRecords",
    "contribution",
    "contribution_in_context",
    "exact",
    "is_hot",
    "margin_pct",
    "mark_value",
    "screen",
]

RevenueBasis: TypeAlias = Literal["invoiced", "collected"]
Path: TypeAlias = tuple[str, ...]
Key: TypeAlias = tuple[str, str, str]  # (source, kind, id)

UNATTRIBUTED = "unattributed"
AGENTS: Path = ("agents",)  # the groups of named totals the document lists
BY_CATEGORY: Path = ("costs", "by_category")
BY_MODEL: Path = ("costs", "by_model")
TOTAL_LIMIT = Decimal(10) ** 50  # no total reaches it: 50 + 25 places < money.PRECISION
STEP = Decimal(2) * Decimal(10) ** 28  # one in-bounds record moves any one total by less

COLD_CACHE_RECORDS = 10_000  # ~600 bytes each with its key: about 6 MB at most

_P = ParamSpec("_P")
_R = TypeVar("_R")


def exact(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``fn`` in ``money.EXACT``: an operation that would round raises instead.

    Nested calls cost one identity check: ``EXACT`` itself is installed (never
    a copy; only its sticky flags change, and nothing reads them).
    """

    @functools.wraps(fn)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        previous = getcontext()
        if previous is EXACT:
            return fn(*args, **kwargs)
        setcontext(EXACT)
        try:
            return fn(*args, **kwargs)
        finally:
            setcontext(previous)

    return run


Market: TypeAlias = tuple[str, str]  # (source, ticker)


@dataclass(frozen=True)
class ChangeFacts:
    """What one change did, as explain needs it (``explain.change_groups``): every key it
    changed, with its versions before and after; per market whose price it moved, the open
    positions in it after; per market involved, its price before and after; per key other
    than a position, the internal amounts its change moved (the Book computed them already)."""

    keys: list[KeyChange]
    positions: dict[Market, list[Position]]
    prices: dict[Market, tuple[Price | None, Price | None]]
    moved: dict[Key, dict[Path, Decimal]]  # per key, not a position: its contribution after - before


@dataclass(frozen=True)
class SourceStatus:
    """What the snapshot says about one source."""

    plugin: str
    stale_after: float
    last_ok: datetime | None = None
    as_of: datetime | None = None
    last_error: str | None = None
    failing: bool = False
    refused: str | None = None  # what the last reading refused, if it refused anything

    def state(self, now: datetime) -> str:
        if self.failing:
            return "failing"
        if self.last_ok is None or (now - self.last_ok).total_seconds() > self.stale_after:
            return "stale"
        if self.refused is not None:
            return "degraded"
        return "ok"

    def document(self, now: datetime) -> Doc:
        state = self.state(now)
        doc: Doc = {"plugin": self.plugin, "status": state, "stale": state != "ok"}
        if self.as_of is not None:
            doc["as_of"] = iso_ms(self.as_of)
        if self.last_error is not None:
            doc["last_error"] = self.last_error
        return doc


@exact
def mark_value(position: Position, price: Price | None) -> Decimal | None:
    """What an open position is worth under its mark rule, or None if unpriced."""
    return _mark_value(position, price)


def _mark_value(position: Position, price: Price | None) -> Decimal | None:
    """``mark_value`` in the caller's context (the Book's methods run in ``EXACT`` already)."""
    if position.count == 0:
        return ZERO
    if price is None:
        return None
    yes = position.count > 0
    if position.mark == "last":
        if price.last is None:
            return None
        per = price.last if yes else 1 - price.last
    else:
        bid, ask = (price.yes_bid, price.yes_ask) if yes else (price.no_bid, price.no_ask)
        if bid is None:
            return None
        per = bid if position.mark == "bid" or ask is None else (bid + ask) / 2
    return abs(position.count) * per


class StoredRecords(Protocol):
    """Read access to the records the store holds (the Book's view of SQLite)."""

    def get(self, source: str, kind: str, ids: Sequence[str]) -> dict[str, Record]:
        """The stored records of ``source`` and ``kind`` among ``ids``, by id."""

    def get_many(
        self, source: str, wanted: Mapping[str, Sequence[str]]
    ) -> dict[tuple[str, str], Record]:
        """The stored records of ``source`` among ``wanted`` (ids per kind), by (kind, id)."""

    def ids(self, source: str, kind: str) -> set[str]:
        """The ids of every stored record of ``source`` and ``kind``."""


def _shift(into: dict[Path, Decimal], old: Mapping[Path, Decimal], new: Mapping[Path, Decimal]) -> None:
    """``into += new - old``, path by path (in the caller's ``EXACT``)."""
    for path, amount in old.items():
        into[path] = into.get(path, ZERO) - amount
    for path, amount in new.items():
        into[path] = into.get(path, ZERO) + amount


def _price_or_none(record: Record | None) -> Price | None:
    return record if isinstance(record, Price) else None


def is_hot(record: Record) -> bool:
    """Whether the record's contribution can change without it being ingested again."""
    return isinstance(record, Position) and record.count != 0


def _agent(record: Record) -> str:
    return record.agent or UNATTRIBUTED


def _position_contribution(position: Position, price: Price | None) -> dict[Path, Decimal]:
    value = _mark_value(position, price)
    unrealized = ZERO if value is None else value - position.cost_basis
    agent = _agent(position)
    return {
        ("trading", "realized"): position.realized_pnl,
        ("trading", "unrealized"): unrealized,
        ("trading", "fees"): position.fees,
        ("agents", agent, "trading"): position.realized_pnl + unrealized,
    }


@exact
def contribution(record: Record, price: Price | None = None) -> dict[Path, Decimal]:
    """What one record adds to the totals (a position also needs its market's price)."""
    return _contribution(record, price)


def _contribution(record: Record, price: Price | None = None) -> dict[Path, Decimal]:
    """``contribution`` in the caller's context (the Book's methods run in ``EXACT`` already)."""
    agent = _agent(record)
    match record:  # the record classes are disjoint: the common kinds come first
        case Cost():
            paths: dict[Path, Decimal] = {
                ("costs", "total"): record.amount,
                ("costs", "by_category", record.category): record.amount,
                ("agents", agent, "costs"): record.amount,
            }
            if record.model:
                paths["costs", "by_model", record.model] = record.amount
            if record.estimated:
                paths["costs", "estimated"] = record.amount
            return paths
        case Position():
            return _position_contribution(record, price)
        case Fill() | Price() | Retract():
            return {}
        case Settlement():
            pnl = record.revenue - record.cost - record.fee
            return {
                ("trading", "realized"): pnl,
                ("trading", "fees"): record.fee,
                ("agents", agent, "trading"): pnl,
            }
        case Balance():
            return {("trading", "balance"): record.cash}
        case Invoice():
            counted = record.status in ("open", "paid")
            invoiced = record.total if counted else ZERO
            collected = record.paid if record.status != "void" else ZERO
            return _revenue(agent, invoiced, collected)
        case Refund():
            return _revenue(agent, -record.amount, -record.amount)
        case RevenueTotal():
            return _revenue(agent, record.invoiced, record.collected)
        case _:
            return {}


contribution_in_context = _contribution  # for callers elsewhere that run in ``EXACT`` already


def _revenue(agent: str, invoiced: Decimal, collected: Decimal) -> dict[Path, Decimal]:
    return {
        ("revenue", "invoiced"): invoiced,
        ("revenue", "collected"): collected,
        ("agents", agent, "invoiced"): invoiced,
        ("agents", agent, "collected"): collected,
    }


def _round_half_even(numerator: int, denominator: int) -> int:
    """The integer nearest to numerator / denominator, ties to even (as ``round`` of a Fraction)."""
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, rest = divmod(numerator, denominator)  # rest in [0, denominator)
    if 2 * rest > denominator or (2 * rest == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def margin_pct(revenue: Decimal, costs: Decimal) -> Decimal:
    """(revenue - costs) / revenue in percent: one rounding, half-even, to 0.01, of the exact quotient."""
    # (R - C) / R = (r/a - c/b) / (r/a) = (r*b - c*a) / (b*r), in integers (exact, no context)
    r, a = revenue.as_integer_ratio()
    c, b = costs.as_integer_ratio()
    hundredths = _round_half_even((r * b - c * a) * 10000, b * r)
    sign, digits, _ = Decimal(hundredths).as_tuple()
    return Decimal((sign, digits, -2))


def _describe(record: Record) -> str:
    return f"{record.kind} {record.id[:60]!r}"


@exact
def screen(book: Book, source: str, records: Sequence[Record]) -> tuple[list[Record], list[str]]:
    """The records of ``source`` that ``book`` can take exactly, and why each other one is refused.

    A record is refused when an amount in it is out of bounds (one built
    around the records' own checks), when its contribution cannot be
    computed exactly, or when it would carry a total (with the records before
    it in the same reading) to ``book.limit`` or past it. A record within
    bounds moves any total by under ``STEP`` (by under 2 × ``STEP`` when it
    replaces another): while the largest total plus (records coming) × 2 ×
    ``STEP`` stays under the limit no total can reach it, and the per-total
    check is skipped. That holds whatever the number of stored records, most
    of which are not in memory. Otherwise contributions are counted without a
    price (a price moves a position's value by under 1e28): the check is off
    by at most that, far inside the room between ``TOTAL_LIMIT`` and
    ``money.PRECISION``.
    """
    room = book.largest_total() + len(records) * 2 * STEP < book.limit
    pending: dict[Path, Decimal] = defaultdict(lambda: ZERO)
    kept: list[Record] = []
    refused: list[str] = []
    for record in records:
        problem = _out_of_bounds(record)
        if problem is None and not room:
            kind = record.target_kind if isinstance(record, Retract) else record.kind
            problem = _problem(book, book.current((source, kind, record.id)), record, pending)
        if problem is None:
            kept.append(record)
        else:
            refused.append(problem)
    return kept, refused


_AMOUNTS = {  # the amount fields of each record kind
    kind: tuple(f.name for f in dataclasses.fields(cls) if "Decimal" in str(f.type))
    for kind, cls in KINDS.items()
}


def _out_of_bounds(record: Record) -> str | None:
    if checked(record):  # the usual case: checked when built, amounts untouched since
        return None
    for name in _AMOUNTS[record.kind]:
        value = getattr(record, name)
        if not isinstance(value, Decimal) and value is not None:
            return f"{_describe(record)}: {name}: not a Decimal"
        if value is None or within_bounds(value):
            continue
        try:
            check_bounds(value, name)
        except SchemaDriftError as exc:
            return f"{_describe(record)}: {exc}"
    return None


def _problem(
    book: Book, old: Record | None, record: Record, pending: dict[Path, Decimal]
) -> str | None:
    if old == record:
        return None  # changes nothing
    try:
        change = dict(_contribution(record))
        for path, amount in (_contribution(old) if old is not None else {}).items():
            change[path] = change.get(path, ZERO) - amount
        reached = {path: book.total(*path) + pending[path] + amount for path, amount in change.items()}
    except DecimalException as exc:
        return f"{_describe(record)}: cannot be computed exactly ({type(exc).__name__})"
    for path, total in reached.items():
        if abs(total) >= book.limit:
            return (f"{_describe(record)}: would carry {'.'.join(path)} to {format_money(total)}, "
                    f"beyond the limit of {format_money(book.limit)}")
    for path, amount in change.items():
        pending[path] += amount
    return None


class Book:
    """Hot records, the totals (hot contributions + cold aggregates) and the per-source status.

    ``records`` holds the open positions, the prices of their markets and the
    records changed but not yet saved (all records when there is no store).
    ``cache_size`` bounds the cold records kept after use (least recently used
    go first), so a source that re-sends the same rows each poll is answered
    from memory; past the bound they are looked up in the store again.
    """

    limit: Decimal = TOTAL_LIMIT  # what ``screen`` keeps every total under

    def __init__(
        self,
        basis: RevenueBasis = "invoiced",
        currency: str = "USD",
        store: StoredRecords | None = None,
        cache_size: int = COLD_CACHE_RECORDS,
    ) -> None:
        self.basis: RevenueBasis = basis
        self.currency = currency
        self.store = store
        self.cache_size = cache_size
        self.records: dict[Key, Record] = {}
        self._contrib: dict[Key, dict[Path, Decimal]] = {}  # open positions only
        self._totals: dict[Path, Decimal] = defaultdict(lambda: ZERO)
        self._cold: dict[Path, Decimal] = {}
        self._dirty: set[Path] = set()  # cold paths changed since ``take_cold_totals``
        self._cold_delta: dict[Path, Decimal] = {}  # what ``ingest`` adds, summed per path
        self._by_market: dict[tuple[str, str], set[Key]] = defaultdict(set)  # open positions
        self._by_kind: dict[tuple[str, str], set[Key]] = defaultdict(set)  # keys in ``records``
        self._gone: set[Key] = set()  # removed, not yet saved (the store still has them)
        self._fresh: set[Key] = set()  # changed since the last ``stamp``
        # the keys each change carried, oldest first, until saved (one entry per record of a
        # change not yet committed: the writer's pending changes hold those records already),
        # and the last change that carried each key
        self._pins: deque[tuple[int, list[Key]]] = deque()
        self._pin_of: dict[Key, int] = {}
        self._cache: OrderedDict[Key, Record] = OrderedDict()
        self._fetched: dict[Key, Record] = {}  # the records the store answered, for one ingest
        self._to_mark: set[Key] = set()  # open positions to re-mark at the end of one ingest
        # the change being built (``take_change`` hands it on and starts the next): each key it
        # changed with its version at the start (bounded by the records of one change)
        self._before: dict[Key, Record | None] = {}
        self._moved: dict[Key, dict[Path, Decimal]] = {}  # what each of them moved (not positions)
        self.sources: dict[str, SourceStatus] = {}
        self.prev_net: Decimal | None = None
        self.day: date | None = None
        self.day_open: Decimal = ZERO

    def __repr__(self) -> str:
        return (
            f"<Book records={len(self.records)} cached={len(self._cache)} "
            f"net={format_money(self.net())} sources={sorted(self.sources)}>"
        )

    # -- records ---------------------------------------------------------

    @exact
    def ingest(
        self, source: str, records: Iterable[Record], complete_kinds: Iterable[str] = ()
    ) -> list[Record]:
        """Upsert records of one source; returns those that changed anything.

        For each kind in ``complete_kinds`` the records given are the whole
        set: stored ones of that kind that are missing are withdrawn (and a
        ``Retract`` for each is among the returned changes). With a store,
        that asks it for every stored id of the kind (one query per kind).
        """
        records = list(records)
        kinds = sorted(set(complete_kinds))
        present = {(source, record.kind, record.id) for record in records} if kinds else set()
        # every store read happens first: a failing read leaves the Book as it was
        gone = [key for kind in kinds for key in self._missing(source, kind, present)]
        try:
            self._prefetch(source, records, gone)
            changed: list[Record] = []
            for record in records:
                if self._upsert(source, record):
                    changed.append(record)
            for key in gone:  # a key this reading retracted already is not removed twice
                if self._remove(key):
                    changed.append(Retract(id=key[2], target_kind=key[1]))
            self._mark_positions()
            return changed
        finally:
            self._apply_cold()
            self._end_fetch()

    def _missing(self, source: str, kind: str, present: set[Key]) -> list[Key]:
        held = set(self._by_kind.get((source, kind), ()))
        if self.store is not None:
            held.update((source, kind, i) for i in self.store.ids(source, kind))
        return sorted(key for key in held if key not in present and key not in self._gone)

    def _prefetch(self, source: str, records: Sequence[Record], gone: Sequence[Key]) -> None:
        """One store query for the keys this reading needs and memory lacks (every kind at once)."""
        if self.store is None:
            return
        held, lost, cache = self.records, self._gone, self._cache
        wanted: dict[str, set[str]] = defaultdict(set)
        keys = list(gone)
        for record in records:
            if isinstance(record, Retract):
                keys.append((source, record.target_kind, record.id))
                continue
            keys.append((source, record.kind, record.id))
            if isinstance(record, Position):
                keys.append((source, "price", record.ticker))
        for key in keys:
            if key not in held and key not in cache and key not in lost:
                wanted[key[1]].add(key[2])
        if not wanted:
            return
        missing = {kind: list(ids) for kind, ids in wanted.items()}
        fetched = self._fetched
        for (kind, record_id), record in self.store.get_many(source, missing).items():
            fetched[source, kind, record_id] = record

    def _end_fetch(self) -> None:
        for key, record in self._fetched.items():
            if key not in self.records and key not in self._gone:
                self._remember(key, record)
        self._fetched.clear()

    def _remember(self, key: Key, record: Record) -> None:
        self._cache.pop(key, None)
        self._cache[key] = record  # the newest, at the end
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _get(self, key: Key) -> Record | None:
        """The current record of ``key``: memory, then what the store answered."""
        found = self.records.get(key)
        if found is not None or key in self._gone:
            return found
        fetched = self._fetched.get(key)
        if fetched is not None:
            return fetched
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
        return cached

    def current(self, key: Key) -> Record | None:
        """The current record of ``key``, from memory or (one query) the store."""
        found = self._get(key)
        if found is not None or key in self._gone or self.store is None:
            return found
        if key in self.records or key in self._fetched:
            return None
        return self.store.get(key[0], key[1], [key[2]]).get(key[2])

    def largest_total(self) -> Decimal:
        """The largest absolute value of any total (O(paths): the working set)."""
        return max((abs(amount) for amount in self._totals.values()), default=ZERO)

    def _upsert(self, source: str, record: Record) -> bool:
        if isinstance(record, Retract):
            return self._remove((source, record.target_kind, record.id))
        key = (source, record.kind, record.id)
        old = self._get(key)
        if old is not None and old == record:
            return False
        self._note(key, old)
        if old is not None:
            self._unset(key, old)
        self._hold(key, record)
        if isinstance(record, Price):
            self._remark(source, record.id)
        elif isinstance(record, Position) and is_hot(record):
            self._by_market[source, record.ticker].add(key)
            self._warm((source, "price", record.ticker))
            self._to_mark.add(key)
        else:
            self._add_cold(key, {}, _contribution(record))
        return True

    def _remove(self, key: Key) -> bool:
        record = self._get(key)
        if record is None:
            return False
        self._note(key, record)
        self._unset(key, record)
        self.records.pop(key, None)
        self._cache.pop(key, None)
        self._by_kind[key[0], key[1]].discard(key)
        if self.store is not None:
            self._gone.add(key)
            self._fresh.add(key)
        if isinstance(record, Price):
            self._remark(key[0], record.id)
        return True

    def _note(self, key: Key, old: Record | None) -> None:
        """Remember ``key``'s version at the start of the change being built."""
        if key not in self._before:
            self._before[key] = old

    def take_change(self) -> ChangeFacts:
        """What the change being built did, and start the next one (before ``stamp``)."""
        before, self._before = self._before, {}
        moved, self._moved = self._moved, {}
        records = self.records
        keys = [KeyChange(*key, old, records.get(key)) for key, old in before.items()]
        prices: dict[Market, tuple[Price | None, Price | None]] = {}
        positions: dict[Market, list[Position]] = {}
        for change in keys:
            if change.kind == "price":  # a moved market: its price at both ends, its open positions
                market = (change.source, change.id)
                prices[market] = (_price_or_none(change.before), _price_or_none(change.after))
                positions[market] = self._open_positions(market)
        for change in keys:
            self._held_prices(change, prices)
        return ChangeFacts(keys, positions, prices, moved)

    def _open_positions(self, market: Market) -> list[Position]:
        held = (self.records[key] for key in self._by_market.get(market, ()))
        return [position for position in held if isinstance(position, Position)]

    def _held_prices(self, change: KeyChange,
                     prices: dict[Market, tuple[Price | None, Price | None]]) -> None:
        """The price of each market an open position of ``change`` is in, when it did not move."""
        for record in (change.before, change.after):
            if isinstance(record, Position) and is_hot(record):
                market = (change.source, record.ticker)
                if market not in prices:
                    price = _price_or_none(self.current((change.source, "price", record.ticker)))
                    prices[market] = (price, price)

    def _unset(self, key: Key, old: Record | None) -> None:
        """Take out the contribution of the record ``key`` held so far."""
        if old is None:
            return
        if key in self._contrib or key in self._to_mark:  # an open position
            self._to_mark.discard(key)
            self._set_contribution(key, {})
        elif not isinstance(old, Price):
            self._add_cold(key, _contribution(old), {})
        if isinstance(old, Position):
            market = self._by_market.get((key[0], old.ticker))
            if market is not None:
                market.discard(key)
                if not market and self.store is not None:  # its price may go cold once saved
                    self._fresh.add((key[0], "price", old.ticker))

    def _hold(self, key: Key, record: Record) -> None:
        self.records[key] = record
        self._by_kind[key[0], key[1]].add(key)
        self._gone.discard(key)
        self._cache.pop(key, None)
        if self.store is not None:
            self._fresh.add(key)

    def _warm(self, price_key: Key) -> None:
        """Bring the price of a market with an open position into memory."""
        if price_key not in self.records:
            price = self._get(price_key)
            if price is not None:
                self.records[price_key] = price
                self._by_kind[price_key[0], price_key[1]].add(price_key)
                self._cache.pop(price_key, None)

    def _add_cold(self, key: Key, old: Mapping[Path, Decimal], new: Mapping[Path, Decimal]) -> None:
        """Replace a cold record's contribution ``old`` with ``new``: summed per path until
        ``_apply_cold`` (at the end of ``ingest``) adds the sums to the totals. Every sum is
        exact (``EXACT``), so the totals are the same as when added one record at a time.
        Kept per key too for the change being built (not positions: explain marks them at the
        change's start price), so ``take_change`` hands on what each key moved."""
        _shift(self._cold_delta, old, new)
        if key[1] != "position":
            _shift(self._moved.setdefault(key, {}), old, new)

    def _apply_cold(self) -> None:
        for path, amount in self._cold_delta.items():
            self._totals[path] += amount
            self._cold[path] = self._cold.get(path, ZERO) + amount
            self._dirty.add(path)
        self._cold_delta.clear()

    def _remark(self, source: str, ticker: str) -> None:
        self._to_mark.update(self._by_market.get((source, ticker), ()))

    def _mark_positions(self) -> None:
        """Re-mark each open position a reading changed, or whose price it changed, once."""
        for key in self._to_mark:
            self._recontribute(key)
        self._to_mark.clear()

    def _recontribute(self, key: Key) -> None:
        record = self.records[key]
        price = None
        if isinstance(record, Position):
            found = self._get((key[0], "price", record.ticker))
            price = found if isinstance(found, Price) else None
        self._set_contribution(key, _contribution(record, price))

    def _set_contribution(self, key: Key, new: Mapping[Path, Decimal]) -> None:
        old = self._contrib.pop(key, {})
        for path, amount in old.items():
            self._totals[path] -= amount
        for path, amount in new.items():
            self._totals[path] += amount
        if new:
            self._contrib[key] = dict(new)

    # -- persistence -----------------------------------------------------

    def take_cold_totals(self) -> dict[Path, Decimal]:
        """The cold aggregates changed since the last call (absolute values, to persist)."""
        changed = {path: self._cold[path] for path in self._dirty}
        self._dirty.clear()
        return changed

    def stamp(self, seq: int) -> None:
        """The records changed since the last stamp travel in the change ``seq``."""
        keys = list(self._fresh)
        for key in keys:
            self._pin_of[key] = seq
        self._pins.append((seq, keys))
        self._fresh.clear()

    def saved(self, seq: int) -> None:
        """Changes up to ``seq`` are committed: their cold records may leave memory."""
        pins, pin_of = self._pins, self._pin_of
        while pins and pins[0][0] <= seq:
            stamp, keys = pins.popleft()
            for key in keys:
                if pin_of.get(key) != stamp:
                    continue  # a later change carries it too: that one lets it go
                del pin_of[key]
                if key not in self._fresh:  # changed again since: the next stamp pins it
                    self._settle(key)

    def _settle(self, key: Key) -> None:
        self._gone.discard(key)
        record = self.records.get(key)
        if record is None or self._needed(key, record):
            return
        del self.records[key]
        self._by_kind[key[0], key[1]].discard(key)
        self._remember(key, record)

    def _needed(self, key: Key, record: Record) -> bool:
        if isinstance(record, Price):
            return bool(self._by_market.get((key[0], record.id)))
        return is_hot(record)

    @exact
    def resume(self, cold_totals: Mapping[Path, Decimal], hot: Iterable[tuple[str, Record]]) -> None:
        """Continue from the store: the cold aggregates and the hot records (prices first)."""
        for path, amount in cold_totals.items():
            self._cold[path] = amount
            self._totals[path] += amount
        ordered = sorted(hot, key=lambda item: not isinstance(item[1], Price))
        for source, record in ordered:
            key = (source, record.kind, record.id)
            self.records[key] = record
            self._by_kind[source, record.kind].add(key)
            if isinstance(record, Position) and is_hot(record):
                self._by_market[source, record.ticker].add(key)
                self._recontribute(key)

    # -- sources ---------------------------------------------------------

    def add_source(self, name: str, plugin: str, stale_after: float) -> None:
        old = self.sources.get(name)
        if old is None:
            self.sources[name] = SourceStatus(plugin=plugin, stale_after=stale_after)
        else:
            self.sources[name] = replace(old, plugin=plugin, stale_after=stale_after)

    def source_ok(
        self, name: str, as_of: datetime, now: datetime, refused: str | None = None
    ) -> None:
        """A reading of ``name`` arrived; ``refused`` says what it refused (degraded), if anything."""
        status = replace(self.sources[name], last_ok=now, as_of=as_of, failing=False, refused=refused)
        if refused is not None:
            status = replace(status, last_error=refused)
        self.sources[name] = status

    def source_failed(self, name: str, error: str) -> None:
        self.sources[name] = replace(self.sources[name], last_error=error, failing=True)

    def source_states(self, now: datetime) -> dict[str, str]:
        return {name: status.state(now) for name, status in self.sources.items()}

    # -- totals and the document ----------------------------------------

    def total(self, *path: str) -> Decimal:
        return self._totals.get(path, ZERO)

    def revenue(self) -> Decimal:
        return self.total("revenue", self.basis)

    @exact
    def trading(self) -> Decimal:
        return self.total("trading", "realized") + self.total("trading", "unrealized")

    @exact
    def net(self) -> Decimal:
        return self.trading() + self.revenue() - self.total("costs", "total")

    def _names(self) -> dict[Path, list[str]]:
        """The names under each named group (agents, cost categories, models), sorted: one pass
        over the paths (the working set)."""
        names: dict[Path, set[str]] = {AGENTS: set(), BY_CATEGORY: set(), BY_MODEL: set()}
        for path in self._totals:
            if len(path) == 3 and (group := names.get(path[:2])) is not None:
                group.add(path[2])
            elif len(path) > 1 and path[0] == "agents":
                names[AGENTS].add(path[1])
        return {prefix: sorted(group) for prefix, group in names.items()}

    def _agents(self, names: list[str]) -> Doc:
        agents: Doc = {}
        for name in names:
            trading = self.total("agents", name, "trading")
            revenue = self.total("agents", name, self.basis)
            costs = self.total("agents", name, "costs")
            agents[name] = {
                "trading": format_money(trading),
                "revenue": format_money(revenue),
                "costs": format_money(costs),
                "net": format_money(trading + revenue - costs),
            }
        return agents

    def _group(self, prefix: Path, names: list[str]) -> Doc:
        totals = self._totals
        return {name: format_money(totals.get((*prefix, name), ZERO)) for name in names}

    def roll_day(self, now: datetime) -> None:
        """At the first document of a UTC day, the day opens at the last published net."""
        today = now.astimezone(UTC).date()
        if self.day != today:
            self.day = today
            self.day_open = self.prev_net if self.prev_net is not None else self.net()

    @exact
    def document(self, now: datetime) -> Doc:
        """The snapshot document at ``now`` (see docs/protocol.md, "The snapshot document")."""
        self.roll_day(now)
        net = self.net()
        revenue = self.revenue()
        costs = self.total("costs", "total")
        previous = self.prev_net if self.prev_net is not None else net
        names = self._names()
        doc: Doc = {
            "as_of": iso_ms(now),
            "currency": self.currency,
            "net_pnl": format_money(net),
            "trading": {
                "realized": format_money(self.total("trading", "realized")),
                "unrealized": format_money(self.total("trading", "unrealized")),
                "fees": format_money(self.total("trading", "fees")),
                "total": format_money(self.trading()),
                "balance": format_money(self.total("trading", "balance")),
            },
            "revenue": {
                "invoiced": format_money(self.total("revenue", "invoiced")),
                "collected": format_money(self.total("revenue", "collected")),
                "basis": self.basis,
            },
            "costs": {
                "total": format_money(costs),
                "estimated": format_money(self.total("costs", "estimated")),
                "by_category": self._group(BY_CATEGORY, names[BY_CATEGORY]),
                "by_model": self._group(BY_MODEL, names[BY_MODEL]),
            },
            "change": {
                "day": self.day.isoformat() if self.day else "",
                "since_midnight": format_money(net - self.day_open),
                "since_previous": format_money(net - previous),
            },
            "agents": self._agents(names[AGENTS]),
            "sources": {name: s.document(now) for name, s in sorted(self.sources.items())},
        }
        if revenue > 0:
            doc["gross_margin_pct"] = format_money(margin_pct(revenue, costs))
        return doc

    def published(self, doc: Doc) -> None:
        """Record that ``doc`` went out: the next "since previous" counts from it."""
        self.prev_net = Decimal(doc["net_pnl"])

    @exact
    def restore(self, doc: Doc, now: datetime) -> None:
        """Continue from a persisted document: its day mark, its net, its source states."""
        self.prev_net = Decimal(doc["net_pnl"])
        change = doc.get("change", {})
        if change.get("day"):
            self.day = date.fromisoformat(change["day"])
            self.day_open = self.prev_net - Decimal(change["since_midnight"])
        for agent in doc.get("agents", {}):
            self._totals["agents", agent, "trading"] += ZERO  # keys, once present, stay
        for group in ("by_category", "by_model"):
            for name in doc.get("costs", {}).get(group, {}):
                self._totals["costs", group, name] += ZERO
        for name, entry in doc.get("sources", {}).items():
            if name in self.sources:
                as_of = entry.get("as_of")
                self.sources[name] = replace(
                    self.sources[name],
                    as_of=datetime.fromisoformat(as_of) if as_of else None,
                    last_error=entry.get("last_error"),
                    failing=entry.get("status") == "failing",
                    refused=entry.get("last_error") if entry.get("status") == "degraded" else None,
                )
