"""``northstard sources check``: try every configured source once and say what it would give.

For each enabled source: build it, poll it once within its ``timeout_s``, and
report whether it was reachable, whether it was authenticated (a 401 or 403
is reachable but not authenticated), and what it would contribute: record
counts by kind and the P&L totals those records give through ``pnl.Book``.
Sources are tried concurrently; errors are reported with secrets scrubbed.

Schema drift (issue 17): a source that has ``field_drift()`` (the built-in
HTTP sources) reports, after the poll and whether or not it succeeded, every
field it received that its provider's vendored specification does not know
and every required one it did not get, per response kind, so a renamed or
new field is seen on the first day. Drift alone does not make a source fail
the check (an API that adds a field is still answered); it is listed under
the source's line and in ``fields`` of the JSON report.

How an error is classified (any plugin): an exception, or one in its
``__cause__`` chain, with ``authenticated = False`` (no credentials) is not
authenticated; one with ``reachable = False``, an httpx connect error or a
timeout is unreachable; one with a ``status`` (or ``status_code``, or an
httpx ``response``) of 401/403 is not authenticated; anything else that
answered (a 5xx, schema drift) is reachable and authenticated but not ok.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import trio

from northstard.actors.source import describe, scrub
from northstard.config import Config, SourceSection
from northstard.core.money import format_money
from northstard.core.pnl import Book
from northstard.core.records import Reading
from northstard.plugins import Plugins

__all__ = ["check_source", "check_sources", "classify", "drift_lines", "field_drift", "format_table", "main"]

AUTH_STATUSES = (401, 403)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status(exc: BaseException) -> int | None:
    for name in ("status", "status_code"):
        value = getattr(exc, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def classify(exc: BaseException) -> tuple[bool, bool]:
    """(reachable, authenticated) for a failed poll."""
    for item in _chain(exc):
        if getattr(item, "authenticated", True) is False:
            return getattr(item, "reachable", False) is True, False
        if getattr(item, "reachable", True) is False:
            return False, False
        if isinstance(item, trio.TooSlowError | httpx.TimeoutException | httpx.ConnectError):
            return False, False
        status = _status(item)
        if status is not None:
            return True, status not in AUTH_STATUSES
    return True, True


def contribution(reading: Reading, section: SourceSection, config: Config) -> dict[str, object]:
    """Record counts by kind and the totals the reading gives on its own."""
    engine = config.settings.engine
    book = Book(engine.revenue_basis, engine.currency)
    book.add_source(section.name, section.plugin, section.stale_after_s)
    book.ingest(section.name, reading.records)
    totals = {
        "net_pnl": book.net(),
        "trading": book.trading(),
        "invoiced": book.total("revenue", "invoiced"),
        "collected": book.total("revenue", "collected"),
        "costs": book.total("costs", "total"),
        "costs_estimated": book.total("costs", "estimated"),
    }
    return {
        "records": dict(sorted(Counter(r.kind for r in reading.records).items())),
        "totals": {name: format_money(value) for name, value in totals.items()},
        "as_of": reading.as_of.astimezone(UTC).isoformat(),
    }


def field_drift(source: object) -> dict[str, dict[str, list[str]]]:
    """The source's field report ({} when it keeps none)."""
    report = getattr(source, "field_drift", None)
    return dict(report()) if callable(report) else {}


async def check_source(section: SourceSection, plugins: Plugins, config: Config) -> dict[str, object]:
    """One source, polled once: its report (never raises for a source failure)."""
    secrets = [str(section.options[k]) for k in section.secrets if section.options.get(k)]
    result: dict[str, object] = {
        "name": section.name, "plugin": section.plugin, "ok": False, "reachable": False,
        "authenticated": False, "records": {}, "totals": {}, "error": None, "fields": {},
    }
    start = trio.current_time()
    try:
        source = plugins.create_source(section)
    except Exception as exc:
        result["error"] = scrub(f"cannot create: {describe(exc)}", secrets)
        return result
    try:
        with trio.fail_after(section.timeout_s):
            reading = await source.poll()
        result.update(contribution(reading, section, config), ok=True, reachable=True,
                      authenticated=True)
    except Exception as exc:
        reachable, authenticated = classify(exc)
        result.update(reachable=reachable, authenticated=authenticated,
                      error=scrub(describe(exc), secrets))
    finally:
        result["latency_s"] = round(trio.current_time() - start, 3)
        result["fields"] = field_drift(source)
        with trio.move_on_after(2) as scope:
            scope.shield = True
            await source.aclose()
    return result


async def check_sources(config: Config, plugins: Plugins) -> list[dict[str, object]]:
    """Every enabled source's report, in config order (tried concurrently)."""
    sections = [s for s in config.sources if s.enabled]
    results: list[dict[str, object]] = [{} for _ in sections]

    async def one(index: int, section: SourceSection) -> None:
        results[index] = await check_source(section, plugins, config)

    async with trio.open_nursery() as nursery:
        for index, section in enumerate(sections):
            nursery.start_soon(one, index, section)
    return results


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _gives(result: dict[str, Any]) -> str:
    if not result["ok"]:
        return f"error: {result['error']}"
    counts = ", ".join(f"{n} {kind}" for kind, n in result["records"].items()) or "no records"
    totals = result["totals"]
    shown = [f"{name} {value}" for name, value in totals.items() if value != "0.00"]
    return f"{counts}; " + (", ".join(shown) if shown else "all totals 0.00")


def format_table(results: list[dict[str, Any]]) -> str:
    """The reports as a plain-text table, one line per source."""
    header = ("SOURCE", "PLUGIN", "REACHABLE", "AUTHENTICATED", "CONTRIBUTES")
    rows = [header] + [
        (r["name"], r["plugin"], _yes(r["reachable"]), _yes(r["authenticated"]), _gives(r))
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]])
             for row in rows]
    lines += [note for r in results for note in drift_lines(r)]
    return "\n".join(line.rstrip() for line in lines)


def drift_lines(result: dict[str, Any]) -> list[str]:
    """One line per response kind whose fields differ from the provider's published schema."""
    out = []
    for label, diff in sorted(result.get("fields", {}).items()):
        parts = []
        if diff["unknown"]:
            parts.append("not in the spec: " + ", ".join(diff["unknown"]))
        if diff["missing"]:
            parts.append("required, not received: " + ", ".join(diff["missing"]))
        out.append(f"  {result['name']}: schema drift in {label}: " + "; ".join(parts))
    return out


def main(config: Config, plugins: Plugins, now: datetime | None = None) -> int:
    """Check every source, print the table; 0 if all are ok, 1 otherwise."""
    results = trio.run(check_sources, config, plugins)
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    print(f"northstard sources check, {stamp}")
    print(format_table(results) if results else "no enabled sources")
    disabled = [s.name for s in config.sources if not s.enabled]
    if disabled:
        print(f"disabled: {', '.join(disabled)}")
    return 0 if all(r["ok"] for r in results) else 1
