"""The typed records a source produces, and the ``Reading`` that carries them.

Every record has a ``kind`` and a stable ``id`` (unique within its source and
kind): ingesting the same record twice changes nothing. Amounts are Decimal,
times are UTC datetimes. ``Retract`` removes a record a source no longer
stands by (an intraday cost estimate replaced by the reported cost).

Records are stored as JSON text (amounts as decimal strings) and rebuilt with
``record_from_json``; the round trip is exact.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal, NamedTuple, TypeAlias, get_type_hints

from northstard.core.money import check_bounds, format_money, parse_money, within_bounds
from northstard.errors import SchemaDriftError

__all__ = [
    "RECORD_KINDS",
    "Balance",
    "Cost",
    "Fill",
    "Invoice",
    "KeyChange",
    "Position",
    "Price",
    "Reading",
    "Record",
    "Refund",
    "Retract",
    "RevenueTotal",
    "Settlement",
    "Wire",
    "record_from_json",
    "record_to_json",
    "record_wire",
    "utc",
    "wire_index",
    "wire_to_json",
]

MarkRule: TypeAlias = Literal["bid", "mid", "last"]


def utc(value: datetime) -> datetime:
    """The same instant with tzinfo=UTC; a naive datetime is refused."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: northstard keeps every time in UTC")
    return value.astimezone(UTC)


@dataclass(frozen=True, kw_only=True)
class _Base:
    kind: ClassVar[str]
    id: str
    agent: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise SchemaDriftError(f"{self.kind}: empty id")
        values = self.__dict__  # a frozen dataclass without slots: its fields live here
        for name, label in _labels(type(self)):
            value = values[name]
            if isinstance(value, Decimal) and not (type(value) is Decimal and within_bounds(value)):
                check_bounds(value, label)  # bounds and finiteness: raises, naming the field
        amounts = tuple(values[name] for name in amount_fields(type(self)))
        if all(value is None or type(value) is Decimal for value in amounts):
            object.__setattr__(self, CHECKED, amounts)  # see ``checked``


_LABELS: dict[type, tuple[tuple[str, str], ...]] = {}  # per record class (a few classes)


def _labels(cls: type[_Base]) -> tuple[tuple[str, str], ...]:
    """Each field of record class ``cls`` with the name its errors give ("cost.amount")."""
    labels = _LABELS.get(cls)
    if labels is None:
        labels = _LABELS[cls] = tuple((f.name, f"{cls.kind}.{f.name}") for f in dataclasses.fields(cls))
    return labels


# An instance attribute, not a field: no effect on eq, hash, repr or JSON. Its cost: per
# record, one tuple of the record's amount references (at most 5; about 80 bytes), kept
# as long as the record is.
CHECKED = "_checked_amounts"
_AMOUNT_FIELDS: dict[type, tuple[str, ...]] = {}  # per record class (a few classes)


def amount_fields(cls: type) -> tuple[str, ...]:
    """The names of the fields of record class ``cls`` typed Decimal, in field order."""
    names = _AMOUNT_FIELDS.get(cls)
    if names is None:
        names = _AMOUNT_FIELDS[cls] = tuple(
            f.name for f in dataclasses.fields(cls) if "Decimal" in str(f.type)
        )
    return names


def checked(record: Record) -> bool:
    """Whether ``record``'s amounts are the ones its ``__post_init__`` checked (O(amount fields)).

    ``__post_init__`` keeps, once its checks pass, the amount values it saw
    (each a Decimal or None); a Decimal is immutable, so a record whose
    amount objects are still those very objects is within bounds. A record
    made without ``__init__`` has no such mark, and one with an amount set
    afterwards (``object.__setattr__``) no longer matches: both answer False.
    """
    values = record.__dict__  # a frozen dataclass without slots: its fields live here
    amounts = values.get(CHECKED)
    if amounts is None:
        return False
    return all(map(operator.is_, _amounts_of(type(record))(values), amounts))


_READERS: dict[type, Callable[[dict[str, object]], tuple[object, ...]]] = {}  # per record class


def _one_amount(name: str, values: dict[str, object]) -> tuple[object, ...]:
    return (values[name],)


def _no_amounts(values: dict[str, object]) -> tuple[object, ...]:
    return ()


def _amounts_of(cls: type) -> Callable[[dict[str, object]], tuple[object, ...]]:
    """A function from a record's ``__dict__`` to its amounts, in ``amount_fields`` order."""
    reader = _READERS.get(cls)
    if reader is None:
        names = amount_fields(cls)
        if len(names) > 1:
            reader = operator.itemgetter(*names)  # a tuple of the values
        elif names:
            reader = functools.partial(_one_amount, names[0])
        else:
            reader = _no_amounts
        _READERS[cls] = reader
    return reader


@dataclass(frozen=True, kw_only=True)
class Position(_Base):
    """A market position: + YES contracts, - NO contracts.

    ``realized_pnl`` is net of fees; ``fees`` is what those fees were
    (informational: it is shown in ``trading.fees`` and never subtracted again).
    ``cost_basis`` is what the open contracts cost; unrealized = marked value -
    cost basis.
    """

    kind: ClassVar[str] = "position"
    ticker: str
    count: Decimal
    cost_basis: Decimal
    realized_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    mark: MarkRule = "bid"


@dataclass(frozen=True, kw_only=True)
class Price(_Base):
    """Quotes of one market, in dollars per contract; ``id`` is the ticker."""

    kind: ClassVar[str] = "price"
    yes_bid: Decimal | None = None
    yes_ask: Decimal | None = None
    no_bid: Decimal | None = None
    no_ask: Decimal | None = None
    last: Decimal | None = None


@dataclass(frozen=True, kw_only=True)
class Fill(_Base):
    """One execution. Informational: its money is already in its position."""

    kind: ClassVar[str] = "fill"
    ticker: str
    side: Literal["yes", "no"]
    action: Literal["buy", "sell"]
    count: Decimal
    price: Decimal
    fee: Decimal
    ts: datetime


@dataclass(frozen=True, kw_only=True)
class Settlement(_Base):
    """A settled market: realized P&L = revenue - cost - fee (all dollars).

    The fee is subtracted here; a plugin must not count the same fee in a
    position's ``realized_pnl`` as well.
    """

    kind: ClassVar[str] = "settlement"
    ticker: str
    revenue: Decimal
    cost: Decimal
    fee: Decimal
    result: str
    ts: datetime


@dataclass(frozen=True, kw_only=True)
class Balance(_Base):
    """Cash balance of a trading account. A cash figure, never P&L."""

    kind: ClassVar[str] = "balance"
    cash: Decimal
    ts: datetime


@dataclass(frozen=True, kw_only=True)
class Invoice(_Base):
    """An invoice: ``total`` counts as invoiced when open or paid; ``paid`` as collected."""

    kind: ClassVar[str] = "invoice"
    total: Decimal
    paid: Decimal
    status: Literal["draft", "open", "paid", "uncollectible", "void"]
    ts: datetime


@dataclass(frozen=True, kw_only=True)
class Refund(_Base):
    """Money given back to a customer: subtracted from collected and invoiced."""

    kind: ClassVar[str] = "refund"
    amount: Decimal
    ts: datetime


@dataclass(frozen=True, kw_only=True)
class RevenueTotal(_Base):
    """Revenue totals to date from a source that only knows totals."""

    kind: ClassVar[str] = "revenue_total"
    invoiced: Decimal
    collected: Decimal
    ts: datetime


@dataclass(frozen=True, kw_only=True)
class Cost(_Base):
    """A cost: ``category`` (ai, infrastructure, ...), optionally a model; maybe an estimate."""

    kind: ClassVar[str] = "cost"
    amount: Decimal
    category: str
    ts: datetime
    model: str | None = None
    cost_type: str | None = None
    estimated: bool = False


@dataclass(frozen=True, kw_only=True)
class Retract(_Base):
    """Withdraws the record ``(target_kind, id)`` of the same source."""

    kind: ClassVar[str] = "retract"
    target_kind: str


Record: TypeAlias = (
    Position | Price | Fill | Settlement | Balance | Invoice | Refund | RevenueTotal | Cost | Retract
)

KINDS: dict[str, type[_Base]] = {
    cls.kind: cls
    for cls in (Position, Price, Fill, Settlement, Balance, Invoice, Refund, RevenueTotal, Cost, Retract)
}
RECORD_KINDS = tuple(k for k in KINDS if k != "retract")  # the kinds the store keeps (one table each)


class KeyChange(NamedTuple):
    """One record key and its version at the start and at the end of a change or range
    (None: absent). ``kind`` is the stored kind (a retraction's target kind)."""

    source: str
    kind: str
    id: str
    before: Record | None
    after: Record | None


@dataclass(frozen=True)
class Reading:
    """What one poll (or one stream message) of a source yields.

    ``complete_kinds`` names the kinds for which ``records`` is the source's
    whole current set (a full poll of positions, say): the engine withdraws
    that source's stored records of those kinds that the reading no longer
    has — positions closed while the daemon was down included. ``refused``
    says, one line per record, which records the plugin could not read and why ("cost_report 2026-12-01 row 3:
    amount: more than 12 decimal places: ..."): the engine marks the source
    degraded with them while the reading's other records count. It holds at
    most one line per row the plugin read, so the upstream body's size bounds it.
    """

    source: str
    records: tuple[Record, ...]
    as_of: datetime
    notes: dict[str, str] = field(default_factory=dict)
    complete_kinds: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()


def _encode(value: object) -> object:
    if isinstance(value, Decimal):
        return format_money(value)
    if isinstance(value, datetime):
        return _time_text(value)
    return value


_last_time: list[tuple[datetime, str]] = []  # one entry: the records of a reading share a time


def _time_text(value: datetime) -> str:
    """ISO 8601 in UTC with a Z; the last one is remembered (one entry)."""
    last = _last_time[-1] if _last_time else None  # one read: safe across threads
    if last is not None and last[0] is value:
        return last[1]
    text = utc(value).isoformat().replace("+00:00", "Z")
    _last_time[:] = [(value, text)]
    return text


_ENCODER = json.JSONEncoder(separators=(",", ":"))
_CONSTANTS: dict[object, str] = {None: "null", True: "true", False: "false"}


def _any(value: object) -> str:
    """The JSON text of a field value of any type: the general case of the encoders below."""
    if isinstance(value, (Decimal, datetime)):
        value = _encode(value)
    if value is None or type(value) is bool:
        return _CONSTANTS[value]
    return _ENCODER.encode(value)


# How each field is written, by its declared type, in a generated encoder (``x`` is the value).
# A str that needs no escape is quoted as it is: printable ASCII without '"' or '\' (JSON
# escapes only those, control characters and, with ensure_ascii, non-ASCII); the text of
# ``format_money`` and of ``_time_text`` is always such a str (digits, sign, '.', ':', 'T', 'Z').
_AS_STR = ("'\"' + x + '\"' if type(x) is str and x.isascii() and x.isprintable()"
           " and '\"' not in x and '\\\\' not in x else _any(x)")
_AS_MONEY = "'\"' + _money(x) + '\"' if type(x) is Decimal else _any(x)"
_AS_TIME = "'\"' + _time(x) + '\"' if type(x) is datetime else _any(x)"
_AS_BOOL = "'true' if x is True else 'false' if x is False else _any(x)"
_ENCODERS: dict[type, Callable[[object], str]] = {}  # per record class (a few classes)


def _write(hint: str) -> str:
    if "Decimal" in hint:
        return _AS_MONEY
    if "datetime" in hint:
        return _AS_TIME
    if hint == "bool":
        return _AS_BOOL
    return _AS_STR


def _json_code(cls: type[_Base], access: str, writers: Callable[[str], str]) -> str:
    """The code of a function ``encode(r)`` that joins the key texts and the field texts of
    a ``cls`` record, each field read as ``access`` formatted with its name and index."""
    names = [f.name for f in dataclasses.fields(cls)]
    hints = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    parts = []
    for i, name in enumerate(sorted([*names, "kind"])):
        key = ("{" if i == 0 else ",") + _ENCODER.encode(name) + ":"
        if name == "kind":
            parts.append(repr(key + _ENCODER.encode(cls.kind)))
        else:  # a field name is an identifier: safe inside the code
            field = access.format(name=name, index=names.index(name) + 1)
            parts.append(f"{key!r}, ('null' if (x := {field}) is None else {writers(hints[name])})")
    return f"def encode(r):\n    return ''.join(({', '.join(parts)}, '}}'))\n"


# ``str`` of a Decimal that ``format_money`` leaves as it is: plain, exactly two decimals, not -0
_CANONICAL = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9][0-9]").fullmatch


def _money_text(text: str) -> str:
    """``format_money`` of the Decimal whose ``str`` is ``text`` (most amounts are cents
    already: then they are their own text)."""
    if _CANONICAL(text) and text != "-0.00":
        return text
    return format_money(Decimal(text))


def _compile(source: str, name: str) -> Callable[[Any], Any]:
    scope: dict[str, Any] = {"_any": _any, "_money": format_money, "_time": _time_text,
                             "_money_text": _money_text, "Decimal": Decimal, "datetime": datetime}
    exec(source, scope)  # the code is built from a record class's own fields
    made: Callable[[Any], Any] = scope[name]
    return made


def _encoder(cls: type[_Base]) -> Callable[[object], str]:
    """The encoder of record class ``cls``, generated once from its fields (as ``dataclasses``
    generates ``__init__``): one expression joining the key texts and the field texts."""
    encoder = _ENCODERS.get(cls)
    if encoder is None:
        encoder = _ENCODERS[cls] = _compile(_json_code(cls, "r.{name}", _write), "encode")
    return encoder


def record_to_json(record: Record) -> str:
    """Stable JSON text of a record (sorted keys, amounts as strings).

    The text of ``json.dumps`` with ``sort_keys=True`` and compact separators,
    put together by an encoder generated once per record class (``_encoder``).
    """
    return _encoder(type(record))(record)


# The wire form of a record: builtin values only (``marshal`` carries it to the writer's
# process, which makes the JSON text there): the kind, then the fields in declaration order,
# each amount as ``str`` of its Decimal (exact), each time as its JSON text.
Wire = tuple[Any, ...]
_WIRERS: dict[type, Callable[[object], Wire]] = {}
_WIRE_ENCODERS: dict[str, Callable[[Wire], str]] = {}
_FROM_WIRE_MONEY = "'\"' + _money_text(x) + '\"' if type(x) is str else _any(x)"
_FROM_WIRE_TIME = "'\"' + x + '\"' if type(x) is str else _any(x)"


def _wire_write(hint: str) -> str:
    if "Decimal" in hint:
        return _FROM_WIRE_MONEY
    if "datetime" in hint:
        return _FROM_WIRE_TIME
    return _write(hint)


def record_wire(record: Record) -> Wire:
    """``record`` in its wire form (several times cheaper than its JSON text)."""
    wirer = _WIRERS.get(type(record))
    if wirer is None:
        cls = type(record)
        values = []
        for f in dataclasses.fields(cls):
            hint = str(f.type)
            if "Decimal" in hint:
                values.append(f"(str(x) if type(x := r.{f.name}) is Decimal else x)")
            elif "datetime" in hint:
                values.append(f"(_time(x) if type(x := r.{f.name}) is datetime else x)")
            else:
                values.append(f"r.{f.name}")
        source = f"def wire(r):\n    return ({cls.kind!r}, {', '.join(values)})\n"
        wirer = _WIRERS[cls] = _compile(source, "wire")
    return wirer(record)


def wire_to_json(wire: Wire) -> str:
    """The JSON text of a record in its wire form: exactly ``record_to_json``'s."""
    encoder = _WIRE_ENCODERS.get(wire[0])
    if encoder is None:
        code = _json_code(KINDS[wire[0]], "r[{index}]", _wire_write)
        encoder = _WIRE_ENCODERS[wire[0]] = _compile(code, "encode")
    return encoder(wire)


def wire_index(kind: str, name: str) -> int | None:
    """Where field ``name`` of a ``kind`` record is in its wire form (None: it has none)."""
    names = [f.name for f in dataclasses.fields(KINDS[kind])]
    return names.index(name) + 1 if name in names else None


def _decode(hint: str, value: Any, name: str) -> Any:
    if value is None:
        return None
    if "Decimal" in hint:
        return parse_money(value, field=name)
    if "datetime" in hint:
        return utc(datetime.fromisoformat(value))
    return value


_HINTS: dict[type, dict[str, str]] = {}  # per record class (get_type_hints is slow)


def _hints(cls: type) -> dict[str, str]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = {k: str(v) for k, v in get_type_hints(cls).items()}
    return hints


def record_from_json(text: str) -> Record:
    """Rebuild a record from ``record_to_json`` output."""
    body = json.loads(text)
    cls = KINDS[body.pop("kind")]
    hints = _hints(cls)
    kwargs = {k: _decode(hints[k], v, k) for k, v in body.items()}
    record: Record = cls(**kwargs)  # type: ignore[assignment]
    return record
