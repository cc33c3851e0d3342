"""One UTC-millisecond formatter and parser, used by REST, gRPC and the parameter parser."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from northstard.core.times import iso_from_ms, iso_ms, ms_from_iso
from northstard.edges.grpc.convert import iso_from_timestamp, timestamp_from_iso, timestamp_from_ms
from northstard.policy.params import MAX_MS, parse_instant


def test_iso_ms_writes_utc_milliseconds_and_z() -> None:
    east = timezone(timedelta(hours=5, minutes=30))
    moment = datetime(2026, 12, 3, 20, 40, 54, 123456, tzinfo=east)
    assert iso_ms(moment) == "2026-12-03T15:10:54.123Z"
    assert iso_from_ms(0) == "1970-01-01T00:00:00.000Z"


def test_milliseconds_round_trip_exactly() -> None:
    """Integer arithmetic: no float rounds a millisecond away, up to year 9999."""
    rng = random.Random(13)
    for ms in [0, 1, 999, 139_751_028_864_291, MAX_MS, *(rng.randrange(MAX_MS) for _ in range(2000))]:
        text = iso_from_ms(ms)
        assert ms_from_iso(text) == ms, text
        assert parse_instant("from", text) == ms, text
        assert iso_from_timestamp(timestamp_from_ms(ms)) == text
        assert timestamp_from_iso(text) == timestamp_from_ms(ms)


def test_parsing_reads_zones_and_floors_sub_milliseconds() -> None:
    assert ms_from_iso("1970-01-01T00:00:01.2349") == 1234  # no zone: UTC
    assert ms_from_iso("1970-01-01T01:00:00+01:00") == 0
    assert ms_from_iso("1970-01-01T00:00:00Z") == 0
    with pytest.raises(ValueError):
        ms_from_iso("yesterday")


def test_the_formatter_agrees_with_the_datetime_it_came_from() -> None:
    moment = datetime(2031, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert iso_from_ms(ms_from_iso(iso_ms(moment))) == iso_ms(moment) == "2031-01-02T03:04:05.678Z"
