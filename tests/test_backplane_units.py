"""The backplane's pure parts: the wire fields, what an edge does with each entry, the URL rule."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from northstard.actors.backplane.client import read_password
from northstard.actors.backplane.publisher import Outbox
from northstard.core.backplane.follow import MARK, Followed, Reset, marked
from northstard.core.backplane.settings import BackplaneSettings, redis_url_problem
from northstard.core.backplane.wire import (
    Head,
    current_fields,
    delta_fields,
    parse_current,
    parse_entry,
    parse_heartbeat,
    snapshot_fields,
)
from northstard.core.change import Change
from northstard.core.records import Cost
from northstard.errors import ConfigError

from conftest import build_config
from unit_helpers import T0

DOC = {"net_pnl": "10.00", "sources": {"demo": {"status": "ok"}}}


def delta(seq: int, patch: dict[str, object], epoch: str = "e1", prev: int | None = None) -> dict[str, str]:
    return delta_fields(epoch, seq, seq - 1 if prev is None else prev, 1000 + seq, json.dumps(patch), 5)


def test_entries_round_trip_as_strings() -> None:
    fields = delta(4, {"net_pnl": "1.5"})
    assert all(isinstance(v, str) for v in fields.values())
    entry = parse_entry(fields)
    assert (entry.kind, entry.epoch, entry.seq, entry.prev, entry.ts_ms, entry.at_ms) == (
        "delta", "e1", 4, 3, 1004, 5)
    head = Head("e:1", 7, 99, json.dumps(DOC))
    assert parse_entry(snapshot_fields(head, 1)).body == head.doc_json
    assert parse_current(current_fields(head)) == head
    assert parse_current({}) is None
    with pytest.raises(ValueError, match="unknown entry kind"):
        parse_entry({**fields, "kind": "other"})


def test_heartbeat_keeps_colons_in_the_epoch() -> None:
    assert parse_heartbeat("a:b:12:345") == ("a:b", 12, 345)
    assert parse_heartbeat(None) is None
    assert parse_heartbeat("nonsense") is None


def test_the_next_delta_applies_and_older_ones_are_skipped() -> None:
    followed = Followed.of(Head("e1", 3, 0, json.dumps(DOC)))
    assert followed.take(parse_entry(delta(3, {"net_pnl": "9"}))) is None  # already held
    change = followed.take(parse_entry(delta(4, {"net_pnl": "11.00"})))
    assert isinstance(change, Change)
    assert (change.seq, change.prev, change.doc["net_pnl"]) == (4, 3, "11.00")
    assert change.patch == {"net_pnl": "11.00"}
    assert not followed.gap


def test_a_hole_or_another_epoch_is_a_gap_not_a_change() -> None:
    followed = Followed.of(Head("e1", 3, 0, json.dumps(DOC)))
    assert followed.take(parse_entry(delta(6, {"x": "1"}))) is None
    assert followed.gap and followed.seq == 3
    other = Followed.of(Head("e1", 3, 0, json.dumps(DOC)))
    assert other.take(parse_entry(delta(4, {"x": "1"}, epoch="e2"))) is None
    assert other.gap


def test_a_snapshot_elsewhere_resets_and_one_here_changes_nothing() -> None:
    followed = Followed.of(Head("e1", 3, 0, json.dumps(DOC)))
    assert followed.take(parse_entry(snapshot_fields(Head("e1", 3, 0, "{}"), 1))) is None
    reset = followed.take(parse_entry(snapshot_fields(Head("e2", 1, 7, json.dumps({"a": "1"})), 1)))
    assert reset == Reset("e2", 1, 7, {"a": "1"})
    assert (followed.epoch, followed.seq, followed.doc) == ("e2", 1, {"a": "1"})


def test_the_mark_is_the_same_document_under_another_epoch() -> None:
    reset = Reset("e1", 5, 10, DOC)
    shown = marked(reset)
    assert (shown.epoch, shown.seq) == ("e1" + MARK, 5)
    assert shown.doc["sources"]["core"]["status"] == "unreachable"
    assert shown.doc["sources"]["demo"] == DOC["sources"]["demo"]
    assert "core" not in DOC["sources"]  # the real document is untouched
    assert marked(reset) == shown  # every edge builds the same one: positions stay global


@pytest.mark.parametrize(("url", "problem"), [
    ("", None),
    ("redis://127.0.0.1:6379", None),
    ("rediss://cache.example:6380/2", None),
    ("http://127.0.0.1", "expected redis://"),
    ("redis://:secret@127.0.0.1", "no password in the URL"),
    ("redis://127.0.0.1:99999", "not a valid URL"),
])
def test_redis_url_rule(url: str, problem: str | None) -> None:
    found = redis_url_problem(url)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_password_in_the_url_names_the_key_and_not_the_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        build_config(tmp_path, {}, backplane={"url": "redis://:hunter2@127.0.0.1:6379"})
    assert "backplane.url" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_password_from_the_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "backplane.password").write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = build_config(tmp_path, {}, backplane={"url": "redis://127.0.0.1:6379"})
    section = config.settings.backplane
    settings = BackplaneSettings.from_config(section, 500, read_password(section.password_file))
    assert settings.password == "s3cret"
    assert settings.maxlen == 500  # stream_maxlen 0: the ring's size
    assert "s3cret" not in repr(settings)


def test_the_outbox_holds_at_most_maxlen_changes_and_the_head() -> None:
    outbox = Outbox(Head("e1", 0, 0, "{}"), maxlen=3)
    records = tuple(("s", Cost(id=f"c{i}", amount=Decimal(1), category="ai", ts=T0)) for i in range(1000))
    for seq in range(1, 11):
        outbox.add(Change("e1", seq, seq, {"n": str(seq)}, {"n": str(seq)}, records=records))
    assert [c.seq for c in outbox.pending] == [8, 9, 10]  # the rest is read back from SQLite
    # what is held of each is its position and its patch's text, not its 1,000 records
    assert outbox.pending[-1] == ("e1", 10, 9, 10, '{"n":"10"}')
    assert (outbox.head.seq, json.loads(outbox.head.doc_json)) == (10, {"n": "10"})
    assert [c.seq for c in outbox.take()] == [8, 9, 10] and not outbox.pending
