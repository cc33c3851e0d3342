"""A contract check for source plugin authors, as ``trio.testing`` ships ``check_*_stream``.

    from northstard.testing import check_source_contract

    async def test_my_source_keeps_the_contract():
        await check_source_contract(lambda: MySource("shop", settings))

``check_source_contract`` builds the source, polls it ``polls`` times and
checks what the daemon relies on:

- ``poll()`` returns a ``Reading`` with a source name, a UTC ``as_of``,
  string notes, ``complete_kinds`` naming record kinds and ``refused`` as
  one non-empty line per refused record;
- every record is a northstard record with a non-empty id; every amount is a
  finite ``Decimal`` within ``northstard.core.money``'s bounds (no float
  anywhere); every time is tz-aware UTC;
- ``(kind, id)`` is unique within a reading, and a reading does not retract
  a record it also sends;
- each record survives the store's JSON round trip exactly, and a ``Book``
  accepts the reading;
- a record sent again under the same id is equal, or a legitimate update
  (fills, settlements and refunds never change; an invoice keeps its time,
  a cost its category and time, a position its ticker);
- ``stream()``, if there is one, returns an async iterator;
- ``aclose()`` works, twice.

A broken rule raises ``AssertionError`` saying which poll, which record and
what is wrong. The readings are returned for further assertions.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from northstard.actors.source import Source
from northstard.core.money import parse_money
from northstard.core.pnl import Book
from northstard.core.records import KINDS, Reading, Record, Retract, record_from_json, record_to_json
from northstard.errors import SchemaDriftError

__all__ = ["check_source_contract"]

SourceFactory = Callable[[], Source | Awaitable[Source]]

IMMUTABLE: dict[str, tuple[str, ...] | None] = {
    "fill": None,  # None: every field
    "settlement": None,
    "refund": None,
    "invoice": ("ts",),
    "cost": ("category", "ts"),
    "position": ("ticker",),
}


def _fail(where: str, problem: str) -> None:
    raise AssertionError(f"{where}: {problem}")


def _check_value(where: str, name: str, value: object) -> None:
    if isinstance(value, float):
        _fail(where, f"{name} is the float {value!r}; amounts must be Decimal (no float anywhere)")
    if isinstance(value, Decimal):
        if not value.is_finite():
            _fail(where, f"{name} is {value}, not a finite amount")
        try:
            parse_money(value, field=name)
        except SchemaDriftError as exc:
            _fail(where, f"{exc} (amounts stay under $10^14 with at most 12 decimal places)")
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            _fail(where, f"{name} is a naive datetime; times must be tz-aware UTC")
        elif value.utcoffset() != timedelta(0):
            _fail(where, f"{name} is {value.isoformat()}; times must be UTC")


def _check_record(where: str, record: Any) -> None:
    if type(record) not in KINDS.values():
        _fail(where, f"{record!r} is not a northstard record ({', '.join(sorted(KINDS))})")
    if not isinstance(record.id, str) or not record.id:
        _fail(where, f"id {record.id!r} must be a non-empty string")
    if record.agent is not None and (not isinstance(record.agent, str) or not record.agent):
        _fail(where, f"agent {record.agent!r} must be None or a non-empty string")
    for item in dataclasses.fields(record):
        _check_value(where, item.name, getattr(record, item.name))
    if isinstance(record, Retract) and record.target_kind not in set(KINDS) - {"retract"}:
        _fail(where, f"retracts an unknown kind {record.target_kind!r}")
    try:
        again = record_from_json(record_to_json(record))
    except Exception as exc:
        _fail(where, f"does not survive the store's JSON round trip: {type(exc).__name__}: {exc}")
    if again != record:
        _fail(where, f"changes in the store's JSON round trip: {record!r} came back as {again!r}")


def _check_reading(number: int, reading: Any) -> dict[tuple[str, str], Record]:
    where = f"poll {number}"
    if not isinstance(reading, Reading):
        _fail(where, f"poll() returned {type(reading).__name__}, not a Reading")
    _check_reading_fields(where, reading)
    seen = _check_records(where, reading.records)
    try:
        Book().ingest(reading.source, reading.records, reading.complete_kinds)
    except Exception as exc:
        _fail(where, f"a Book refuses the reading: {type(exc).__name__}: {exc}")
    return seen


def _check_reading_fields(where: str, reading: Reading) -> None:
    if not isinstance(reading.source, str) or not reading.source:
        _fail(where, f"Reading.source {reading.source!r} must be the source's name")
    if not isinstance(reading.records, tuple):
        _fail(where, f"Reading.records must be a tuple, got {type(reading.records).__name__}")
    _check_value(where, "Reading.as_of", reading.as_of)
    if not isinstance(reading.as_of, datetime):
        _fail(where, "Reading.as_of must be a datetime")
    _check_reading_lists(where, reading)


def _check_reading_lists(where: str, reading: Reading) -> None:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in reading.notes.items()):
        _fail(where, "Reading.notes must map strings to strings")
    refused = reading.refused
    if not isinstance(refused, tuple) or not all(isinstance(r, str) and r for r in refused):
        _fail(where, f"Reading.refused must be a tuple of non-empty strings, got {refused!r}")
    kinds = reading.complete_kinds
    if not isinstance(kinds, tuple) or set(kinds) - (set(KINDS) - {"retract"}):
        _fail(where, f"Reading.complete_kinds must be a tuple of record kinds, got {kinds!r}")


def _check_records(where: str, records: tuple[Record, ...]) -> dict[tuple[str, str], Record]:
    """Each record checked, (kind, id) unique, nothing both sent and retracted."""
    seen: dict[tuple[str, str], Record] = {}
    for record in records:
        label = f"{where}, record {getattr(record, 'kind', '?')} {getattr(record, 'id', '?')!r}"
        _check_record(label, record)
        key = (record.kind, record.id)
        if key in seen:
            _fail(label, "sent twice in one reading: (kind, id) must be unique within a reading")
        seen[key] = record
    for record in records:
        if isinstance(record, Retract) and (record.target_kind, record.id) in seen:
            _fail(where, f"retracts {record.target_kind} {record.id!r} and sends it in the same reading")
    return seen


def _check_update(where: str, old: Record, new: Record) -> None:
    if old == new or old.kind not in IMMUTABLE:
        return
    fixed = IMMUTABLE[old.kind]
    names = fixed if fixed is not None else tuple(f.name for f in dataclasses.fields(old))
    for name in names:
        if getattr(old, name) != getattr(new, name):
            _fail(where, f"{name} changed from {getattr(old, name)!r} to {getattr(new, name)!r}; "
                  f"a {old.kind} record does not change {'that field' if fixed else 'once sent'}")


async def _check_stream(source: Source) -> None:
    stream = getattr(source, "stream", None)
    if stream is None:
        return
    if not callable(stream):
        _fail("stream", "stream must be a method returning an async iterator")
    iterator = stream()
    if not isinstance(iterator, AsyncIterator):
        _fail("stream", f"stream() returned {type(iterator).__name__}, not an async iterator")
    closer = getattr(iterator, "aclose", None)
    if closer is not None:
        await closer()


async def _build(factory: SourceFactory) -> Source:
    made = factory()
    source = await made if inspect.isawaitable(made) else made
    if not isinstance(source, Source):
        _fail("factory", f"built {source!r}, which has no async poll() and aclose()")
    return source


async def check_source_contract(factory: SourceFactory, *, polls: int = 2) -> list[Reading]:
    """Build a source with ``factory`` (sync or async), poll it, check the contract; the readings."""
    if polls < 1:
        raise ValueError("polls must be at least 1")
    source = await _build(factory)
    closed = False
    try:
        readings: list[Reading] = []
        latest: dict[tuple[str, str], Record] = {}
        for number in range(1, polls + 1):
            reading = await source.poll()
            sent = _check_reading(number, reading)
            if readings and reading.source != readings[0].source:
                _fail(f"poll {number}", f"source name changed from {readings[0].source!r}")
            for key, record in sent.items():
                if key in latest:
                    _check_update(f"poll {number}, record {key[0]} {key[1]!r}", latest[key], record)
                latest[key] = record
            readings.append(reading)
        await _check_stream(source)
        closed = True
        for attempt in ("aclose()", "a second aclose() (it must be idempotent)"):
            try:
                await source.aclose()
            except Exception as exc:
                _fail("aclose", f"{attempt} raised {type(exc).__name__}: {exc}")
        return readings
    finally:
        if not closed:
            await source.aclose()
