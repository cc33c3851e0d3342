"""History buckets: open/close/min/max per UTC-aligned resolution."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from northstard.core.buckets import (
    DEFAULT_SPAN_MS,
    MAX_BUCKETS,
    RESOLUTIONS,
    Bucket,
    BucketSet,
    Ohlc,
    bucket_start,
    components,
    history_range,
)
from northstard.core.pnl import Book
from northstard.core.records import Cost, Invoice, Settlement

from unit_helpers import MONEY, T0

D = Decimal
DAY = datetime(2026, 11, 21, tzinfo=UTC)
DAY_MS = int(DAY.timestamp() * 1000)
MIN = 60_000


def values(net: str, trading: str = "0", revenue: str = "0", costs: str = "0") -> dict[str, Decimal]:
    return {"net": D(net), "trading": D(trading), "revenue": D(revenue), "costs": D(costs)}


def by_resolution(touched: list[Bucket]) -> dict[str, Bucket]:
    out = {b.resolution: b for b in touched}
    assert len(out) == len(touched)
    return out


@pytest.mark.parametrize(
    ("offset_ms", "resolution", "start_offset"),
    [
        (0, "1m", 0),
        (59_999, "1m", 0),
        (60_000, "1m", 60_000),
        (299_999, "5m", 0),
        (300_000, "5m", 300_000),
        (3_599_999, "1h", 0),
        (3_600_000 * 5 + 17, "1h", 3_600_000 * 5),
        (86_399_999, "1d", 0),
        (86_400_000, "1d", 86_400_000),
    ],
)
def test_bucket_start(offset_ms: int, resolution: str, start_offset: int) -> None:
    assert bucket_start(DAY_MS + offset_ms, resolution) == DAY_MS + start_offset


def test_resolutions_are_utc_aligned() -> None:
    # 2026-11-21 19:25:02.437Z: the hour starts at 19:00, the day at 00:00 UTC
    ts = int(T0.timestamp() * 1000)
    assert bucket_start(ts, "1h") == int(datetime(2026, 11, 21, 19, tzinfo=UTC).timestamp() * 1000)
    assert bucket_start(ts, "5m") == int(datetime(2026, 11, 21, 19, 25, tzinfo=UTC).timestamp() * 1000)
    assert bucket_start(ts, "1d") == DAY_MS


def test_open_close_min_max() -> None:
    buckets = BucketSet()
    for offset, net in ((1_000, "10.00"), (2_000, "12.50"), (3_000, "-3.10"), (4_000, "11")):
        touched = buckets.add(DAY_MS + offset, values(net, costs=net))
        assert sorted(b.resolution for b in touched) == sorted(RESOLUTIONS)
    for resolution in RESOLUTIONS:
        bucket = buckets.open[resolution]
        assert bucket.start_ms == DAY_MS
        assert bucket.series["net"] == Ohlc(D("10.00"), D("11"), D("-3.10"), D("12.50"))
        assert bucket.series["net"].document() == {"open": "10.00", "close": "11.00",
                                                   "min": "-3.10", "max": "12.50"}
        assert bucket.series["trading"] == Ohlc(D(0), D(0), D(0), D(0))
        assert bucket.series["costs"] == bucket.series["net"]


def test_a_new_bucket_at_each_boundary() -> None:
    buckets = BucketSet()
    buckets.add(DAY_MS + 59_000, values("1"))
    # next minute: a new 1m bucket, the 5m/1h/1d buckets go on
    touched = by_resolution(buckets.add(DAY_MS + MIN, values("2")))
    assert touched["1m"].start_ms == DAY_MS + MIN
    assert touched["1m"].series["net"] == Ohlc(D(2), D(2), D(2), D(2))
    for resolution in ("5m", "1h", "1d"):
        assert touched[resolution].start_ms == DAY_MS
        assert touched[resolution].series["net"] == Ohlc(D(1), D(2), D(1), D(2))
    # 5 minutes: new 1m and 5m
    touched = by_resolution(buckets.add(DAY_MS + 5 * MIN, values("3")))
    assert {r: b.start_ms - DAY_MS for r, b in touched.items()} == {
        "1m": 5 * MIN, "5m": 5 * MIN, "1h": 0, "1d": 0}
    assert touched["5m"].series["net"].open == D(3)
    # an hour: new 1m, 5m, 1h
    touched = by_resolution(buckets.add(DAY_MS + 60 * MIN, values("4")))
    assert {r: b.start_ms - DAY_MS for r, b in touched.items()} == {
        "1m": 60 * MIN, "5m": 60 * MIN, "1h": 60 * MIN, "1d": 0}
    assert touched["1d"].series["net"] == Ohlc(D(1), D(4), D(1), D(4))
    # the next UTC day: every resolution starts over
    touched = by_resolution(buckets.add(DAY_MS + 86_400_000, values("5")))
    assert {b.start_ms for b in touched.values()} == {DAY_MS + 86_400_000}
    assert all(b.series["net"] == Ohlc(D(5), D(5), D(5), D(5)) for b in touched.values())


def test_a_late_observation_never_reopens_a_closed_bucket() -> None:
    buckets = BucketSet()
    buckets.add(DAY_MS + 30_000, values("1"))
    buckets.add(DAY_MS + 90_000, values("2"))  # the 0:00 minute is closed now
    before = dict(buckets.open)
    touched = by_resolution(buckets.add(DAY_MS + 45_000, values("-100")))
    assert "1m" not in touched
    assert buckets.open["1m"] == before["1m"]
    assert buckets.open["1m"].start_ms == DAY_MS + MIN
    assert buckets.open["1m"].series["net"] == Ohlc(D(2), D(2), D(2), D(2))
    # the wider buckets it belongs to are still open: the value counts there
    assert set(touched) == {"5m", "1h", "1d"}
    assert buckets.open["5m"].series["net"].min == D(-100)
    # far too late for everything: nothing is touched
    assert buckets.add(DAY_MS - 1, values("-999")) == []
    assert buckets.open["1d"].start_ms == DAY_MS


def test_a_new_series_joins_an_open_bucket() -> None:
    bucket = Bucket.first("1m", DAY_MS, {"net": D(1)})
    bucket = bucket.add({"net": D(2), "extra": D(7)})
    assert bucket.series["extra"] == Ohlc(D(7), D(7), D(7), D(7))
    assert bucket.series["net"] == Ohlc(D(1), D(2), D(1), D(2))


def test_body_round_trip() -> None:
    bucket = Bucket("5m", DAY_MS, {"net": Ohlc(D("1.5"), D("-2"), D("-3.1234"), D("4")),
                                   "costs": Ohlc(D(0), D(0), D(0), D(0))})
    body = bucket.body()
    assert body == ('{"costs": {"close": "0.00", "max": "0.00", "min": "0.00", "open": "0.00"}, '
                    '"net": {"close": "-2.00", "max": "4.00", "min": "-3.1234", "open": "1.50"}}')
    assert Bucket.from_body("5m", DAY_MS, body) == bucket


@settings(deadline=None, max_examples=100)
@given(st.dictionaries(st.sampled_from(["net", "trading", "revenue", "costs"]),
                       st.tuples(MONEY, MONEY, MONEY, MONEY), min_size=1),
       st.sampled_from(sorted(RESOLUTIONS)), st.integers(0, 2**41))
def test_body_round_trip_property(series: dict[str, tuple[Decimal, ...]], resolution: str,
                                  start: int) -> None:
    bucket = Bucket(resolution, start, {k: Ohlc(*v) for k, v in series.items()})
    back = Bucket.from_body(resolution, start, bucket.body())
    assert back == bucket
    assert back.body() == bucket.body()


@settings(deadline=None, max_examples=100)
@given(st.lists(st.tuples(st.integers(0, 3 * 86_400_000), MONEY), min_size=1, max_size=30))
def test_buckets_match_a_model(observations: list[tuple[int, Decimal]]) -> None:
    """In time order, each open bucket holds the first/last/min/max of its observations."""
    observations.sort(key=lambda o: o[0])
    buckets = BucketSet()
    for offset, net in observations:
        buckets.add(DAY_MS + offset, {"net": net})
    last_ts = DAY_MS + observations[-1][0]
    for resolution in RESOLUTIONS:
        start = bucket_start(last_ts, resolution)
        inside = [net for offset, net in observations if bucket_start(DAY_MS + offset, resolution) == start]
        bucket = buckets.open[resolution]
        assert bucket.start_ms == start
        assert bucket.series["net"] == Ohlc(inside[0], inside[-1], min(inside), max(inside))


@settings(deadline=None, max_examples=100)
@given(st.lists(st.integers(0, 3 * 86_400_000), min_size=1, max_size=30))
def test_touched_buckets_never_go_back_in_time(offsets: list[int]) -> None:
    buckets = BucketSet()
    latest: dict[str, int] = {}
    for index, offset in enumerate(offsets):
        for bucket in buckets.add(DAY_MS + offset, {"net": D(index)}):
            assert bucket.start_ms >= latest.get(bucket.resolution, 0)
            latest[bucket.resolution] = bucket.start_ms
            assert bucket.start_ms == bucket_start(DAY_MS + offset, bucket.resolution)
    assert {r: b.start_ms for r, b in buckets.open.items()} == latest


def test_components_of_a_document() -> None:
    records = [
        Settlement(id="s", ticker="T", revenue=D("15.00"), cost=D("11.10"), fee=D("0.2021"),
                   result="yes", ts=T0),
        Invoice(id="i", total=D("100"), paid=D("40"), status="open", ts=T0),
        Cost(id="c", amount=D("7.5"), category="ai", ts=T0),
    ]
    for basis, revenue in (("invoiced", "100"), ("collected", "40")):
        book = Book(basis=basis)  # type: ignore[arg-type]
        book.ingest("src", records)
        assert components(book.document(T0)) == {
            "net": D("3.6979") + D(revenue) - D("7.5"),
            "trading": D("3.6979"),
            "revenue": D(revenue),
            "costs": D("7.5"),
        }


def test_history_range_defaults_to_the_last_hour_at_one_minute() -> None:
    now = 1_700_000_123_456
    assert history_range(None, None, None, now) == ("1m", bucket_start(now + 1 - DEFAULT_SPAN_MS, "1m"),
                                                   now + 1)
    assert history_range("1h", 7_200_000 + 5, 9_000_000, now) == ("1h", 7_200_000, 9_000_000)  # aligned down


def test_history_range_refusals_name_the_field_in_the_edge_words() -> None:
    with pytest.raises(ValueError, match=r"^resolution: one of 1m, 5m, 1h, 1d$"):
        history_range("2m", None, None, 0)
    with pytest.raises(ValueError, match=r"^from: must be before to$"):
        history_range("1m", 2000, 2000, 0)
    with pytest.raises(ValueError, match=r"^from_time: must be before to_time$"):
        history_range("1m", 2000, 1000, 0, names=("from_time", "to_time"))
    width = RESOLUTIONS["5m"]
    widest = MAX_BUCKETS * width + width - 1
    assert history_range("5m", 0, widest, 0)[1:] == (0, widest)
    with pytest.raises(ValueError, match="range too long: at most 5000 buckets of 5m"):
        history_range("5m", 0, (MAX_BUCKETS + 1) * width, 0)
