"""revenue_http against a fake in-house revenue endpoint on 127.0.0.1."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

import northstard_plugins.revenue_http as revenue_http
from northstard.config import load_config
from northstard.core.records import RevenueTotal
from northstard.errors import ConfigError, HttpStatusError, SchemaDriftError, Unreachable
from northstard.plugins import make_plugins
from northstard_plugins.revenue_http import RevenueHttpSource, Settings

from fakes import (
    MALFORMED,
    TIMEOUT,
    TRUNCATED,
    FakeRevenue,
    closed_port_url,
    secret_file,
    server_error,
    wait_for_doc,
)

TOKEN = "rev-token-0123456789"


async def serve(nursery: trio.Nursery, body: str, **options: Any) -> FakeRevenue:
    fake = FakeRevenue(body, **options)
    await fake.start(nursery)
    return fake


async def poll_once(fake: FakeRevenue, **options: Any) -> RevenueTotal:
    source = RevenueHttpSource("sales", Settings(base_url=fake.url, **options))
    try:
        reading = await source.poll()
    finally:
        await source.aclose()
    assert reading.source == "sales" and reading.complete
    (record,) = reading.records
    assert isinstance(record, RevenueTotal)
    return record


@pytest.mark.parametrize(
    ("body", "invoiced", "collected"),
    [
        ('{"invoiced": 1234.56, "collected": "1234.56"}', "1234.56", "1234.56"),
        ('{"invoiced": 99999999999999.99, "collected": "99999999999999.99"}',
         "99999999999999.99", "99999999999999.99"),  # a float gives 99999999999999.98
        ('{"invoiced": 1234567.123456789012, "collected": 12345678901234.567}',
         "1234567.123456789012", "12345678901234.567"),  # floats: ...789 and ...566
        ('{"invoiced": 0.1, "collected": 0.3}', "0.1", "0.3"),
        ('{"invoiced": 1500, "collected": "-20.5"}', "1500", "-20.5"),
        ('{"invoiced": 1.5e3, "collected": "42.00"}', "1.5E+3", "42.00"),
    ],
    ids=["number-and-string", "beyond-float", "beyond-float-places", "float-traps", "int-and-negative",
         "exponent"],
)
async def test_numbers_and_strings_are_parsed_exactly_from_the_json_text(
    nursery: trio.Nursery, body: str, invoiced: str, collected: str
) -> None:
    fake = await serve(nursery, body)
    record = await poll_once(fake)
    assert (record.invoiced, record.collected) == (Decimal(invoiced), Decimal(collected))
    assert str(record.invoiced) == invoiced  # the digits as written, not a float's
    assert record.id == "sales" and record.agent is None


async def test_configurable_path_fields_token_and_agent(nursery: trio.Nursery) -> None:
    body = '{"totals": {"billed": "250000.10", "received": 199999.99}, "invoiced": 1}'
    fake = await serve(nursery, body, token=TOKEN, path="/v2/money")
    record = await poll_once(fake, path="/v2/money", invoiced_field="totals.billed",
                             collected_field="totals.received", token=TOKEN, agent="atlas")
    assert (record.invoiced, record.collected) == (Decimal("250000.10"), Decimal("199999.99"))
    assert record.agent == "atlas"
    request = fake.requests[0]
    assert (request.method, request.path) == ("GET", "/v2/money")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_no_token_sends_no_authorization(nursery: trio.Nursery) -> None:
    fake = await serve(nursery, '{"invoiced": 1, "collected": 1}')
    await poll_once(fake)
    assert "authorization" not in fake.requests[0].headers


async def test_unchanged_totals_resend_an_equal_record(nursery: trio.Nursery) -> None:
    fake = await serve(nursery, '{"invoiced": "10.00", "collected": "5.00"}')
    source = RevenueHttpSource("sales", Settings(base_url=fake.url))
    first, second = (await source.poll()).records, (await source.poll()).records
    fake.body = '{"invoiced": "12.00", "collected": "5.00"}'
    (third,) = (await source.poll()).records
    await source.aclose()
    assert first == second  # same ts too: nothing changes downstream
    assert isinstance(third, RevenueTotal) and third.invoiced == Decimal("12.00")
    assert "invoiced=12.00" in repr(source)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"invoiced": null, "collected": 1}', "field 'invoiced': expected a number"),
        ('{"invoiced": true, "collected": 1}', "field 'invoiced': expected a number"),
        ('{"invoiced": 1}', "field 'collected' is missing"),
        ('{"invoiced_total": 1, "collected": 1}', "field 'invoiced' is missing"),
        ('{"invoiced": "1,234.56", "collected": 1}', "invoiced: not an ASCII decimal number"),
        ('{"invoiced": NaN, "collected": 1}', "JSON constant NaN is not a number"),
        ('{"invoiced": Infinity, "collected": 1}', "JSON constant Infinity"),
        ('{"invoiced": "Infinity", "collected": 1}', "invoiced: not an ASCII decimal number"),
        ('{"invoiced": {"usd": 1}, "collected": 1}', "invoiced: expected a decimal string"),
        ('{"invoiced": 12345678901234567.89, "collected": 1}', r"invoiced: \$100 trillion or more"),
        ('{"invoiced": 1, "collected": "0.30000000000000004"}', "collected: more than 12 decimal places"),
        ('{"invoiced": "2_5", "collected": 1}', "invoiced: not an ASCII decimal number"),
        ('{"invoiced": 1, "collected": " 12 "}', "collected: not an ASCII decimal number"),
        ('{"invoiced": "\u0661\u0662", "collected": 1}', "invoiced: not an ASCII decimal number"),
        ('{"invoiced": 1e99999999999, "collected": 1}', r"invoiced: \$100 trillion or more: '1E\+9{11}'"),
        ('[1234.56, 1000]', "expected a JSON object, got list"),
        ('{"invoiced": 1, "collected": 1', "malformed JSON"),
        ('', "malformed JSON"),
    ],
    ids=["null", "bool", "missing", "renamed", "thousands-separator", "nan", "infinity",
         "infinity-string", "object", "beyond-the-bound", "too-many-places", "underscore",
         "spaces", "arabic-indic-digits", "huge-exponent", "list", "unterminated",
         "empty"],
)
async def test_drift_is_refused_never_a_wrong_number(nursery: trio.Nursery, body: str, message: str) -> None:
    fake = await serve(nursery, body)
    with pytest.raises(SchemaDriftError, match=message):
        await poll_once(fake)


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        (server_error(502), HttpStatusError, "GET /api/revenue: HTTP 502 Bad Gateway"),
        (MALFORMED, SchemaDriftError, "malformed JSON"),
        (TRUNCATED, SchemaDriftError, "truncated body"),
    ],
    ids=["502", "malformed", "truncated"],
)
async def test_a_bad_answer_fails_the_poll(
    nursery: trio.Nursery, fault: Any, error: type[Exception], message: str
) -> None:
    fake = await serve(nursery, '{"invoiced": 1, "collected": 1}')
    fake.fail_next(fault)
    with pytest.raises(error, match=message):
        await poll_once(fake)


async def test_a_wrong_token_is_401_without_the_token(nursery: trio.Nursery) -> None:
    fake = await serve(nursery, '{"invoiced": 1, "collected": 1}', token=TOKEN)
    with pytest.raises(HttpStatusError, match="HTTP 401 Unauthorized: unauthorized") as raised:
        await poll_once(fake, token="rev-token-WRONG")
    assert raised.value.status == 401 and "WRONG" not in str(raised.value)


async def test_a_hung_endpoint_times_out(nursery: trio.Nursery, autojump_clock: Any) -> None:
    fake = await serve(nursery, '{"invoiced": 1, "collected": 1}')
    fake.fail_next(TIMEOUT)
    with pytest.raises(Unreachable, match=r"no answer within 2\.5 s"):
        await poll_once(fake, request_timeout_s=2.5)


async def test_a_closed_port_is_unreachable() -> None:
    source = RevenueHttpSource("sales", Settings(base_url=closed_port_url()))
    with pytest.raises(Unreachable, match="ConnectError"):
        await source.poll()
    await source.aclose()


def test_config_requires_a_base_url_and_keeps_the_token_out_of_the_file(tmp_path: Path) -> None:
    plugins = make_plugins(entry_points=False, extra=[revenue_http], blocked=())
    path = tmp_path / "northstard.toml"
    path.write_text('[sources.sales]\nplugin = "revenue_http"\n')
    with pytest.raises(ConfigError, match=r"sources\.sales\.base_url: required"):
        load_config(path, plugins.source_types(), environ={})
    path.write_text('[sources.sales]\nplugin = "revenue_http"\nbase_url = "http://x"\ntoken = "t0ken"\n')
    with pytest.raises(ConfigError, match=r"sources\.sales\.token: secrets are not read"):
        load_config(path, plugins.source_types(), environ={})
    environ = {"NORTHSTARD_SOURCES__SALES__TOKEN": "from-env-token"}
    path.write_text('[sources.sales]\nplugin = "revenue_http"\nbase_url = "http://x"\n')
    section = load_config(path, plugins.source_types(), environ=environ).sources[0]
    assert section.options["token"] == "from-env-token" and section.interval_s == 30.0
    assert "from-env-token" not in repr(Settings.from_options(section.options, "sources.sales"))


# -- end to end ----------------------------------------------------------------


def revenue_of(doc: dict[str, Any]) -> Any:
    return doc.get("revenue", {}).get("invoiced")


async def test_e2e_totals_reach_the_snapshot(
    nursery: trio.Nursery, start_daemon: Any, tmp_path: Path
) -> None:
    fake = await serve(nursery, '{"invoiced": 99999999999999.99, "collected": "1000.10"}', token=TOKEN)
    daemon = await start_daemon({"sales": {
        "plugin": "revenue_http", "base_url": fake.url, "agent": "beacon",
        "token_file": secret_file(tmp_path, "sales", TOKEN), "interval_s": 0.05,
    }})
    doc = await wait_for_doc(daemon, lambda d: revenue_of(d) not in (None, "0.00"))
    assert doc["revenue"] == {"invoiced": "99999999999999.99", "collected": "1000.10",
                              "basis": "invoiced"}
    assert doc["agents"]["beacon"]["revenue"] == "99999999999999.99"
    assert doc["net_pnl"] == "99999999999999.99"
    fake.body = '{"invoiced": "1.00", "collected": "1.00"}'
    doc = await wait_for_doc(daemon, lambda d: revenue_of(d) == "1.00")
    assert doc["revenue"]["collected"] == "1.00"


async def test_e2e_a_failing_endpoint_marks_the_source_while_the_demo_streams(
    nursery: trio.Nursery, start_daemon: Any
) -> None:
    fake = await serve(nursery, '{"invoiced": "500.00", "collected": "400.00"}')
    daemon = await start_daemon({
        "sales": {"plugin": "revenue_http", "base_url": fake.url, "interval_s": 0.05,
                  "failure_threshold": 100},
        "demo": {"interval_s": 0.02, "seed": 7},
    })
    await wait_for_doc(daemon, lambda d: d.get("sources", {}).get("sales", {}).get("status") == "ok")
    fake.fail_always(server_error(500))
    doc = await wait_for_doc(daemon, lambda d: d["sources"]["sales"]["status"] == "failing")
    assert "HTTP 500" in doc["sources"]["sales"]["last_error"]
    assert "as_of" in doc["sources"]["sales"]  # its last good values are kept, with their time
    seq = daemon.hub.seq
    doc = await wait_for_doc(daemon, lambda d: daemon.hub.seq >= seq + 3)
    assert doc["sources"]["demo"]["status"] == "ok"
    assert doc["sources"]["sales"]["status"] == "failing"
