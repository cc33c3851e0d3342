"""Statements: one row per period, from the documents at the period boundaries. Pure: no I/O.

A row's amounts are the change of each figure over the period: the figure in
the last document before the period's end minus the one in the last document
before its start. So the net of a row is the change of the net P&L, the same
as the history buckets' closes; unrealized is the change of the marked value,
each end taken at the mark of that end (a position still open at the end is
counted at its mark then, not at a later price). ``margin_pct`` is
(revenue - costs) / revenue over the period on the revenue basis, absent
(null, an empty CSV cell) when the period's revenue is not positive.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from northstard.core.contributions import Figures, subtract
from northstard.core.money import ZERO, format_money
from northstard.core.pnl import RevenueBasis, exact, margin_pct

__all__ = ["MAX_ROWS", "PERIODS", "boundaries", "csv_text", "row"]

PERIODS = ("day", "week", "month", "quarter")
MAX_ROWS = 366  # rows per statement (a year of days)

_COLUMNS = ("trading_realized", "trading_unrealized", "trading_fees", "revenue_invoiced",
            "revenue_collected", "costs_total")
_FIGURES = ("trading.realized", "trading.unrealized", "trading.fees", "revenue.invoiced",
            "revenue.collected", "costs.total")


def _floor(day: date, period: str) -> date:
    if period == "week":
        return day - timedelta(days=day.weekday())  # ISO weeks: Monday
    if period == "month":
        return day.replace(day=1)
    if period == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day


def _next(day: date, period: str) -> date:
    if period == "day":
        return day + timedelta(days=1)
    if period == "week":
        return day + timedelta(days=7)
    months = 1 if period == "month" else 3
    month = day.month - 1 + months
    return date(day.year + month // 12, month % 12 + 1, 1)


def boundaries(period: str, start: date, end: date) -> list[date]:
    """The period starts from the one holding ``start`` up to ``end`` (exclusive), and the end
    of the last: ``len - 1`` rows. ValueError past ``MAX_ROWS`` rows or when end <= start."""
    if end <= start:
        raise ValueError("to: must be after from")
    days = [_floor(start, period)]
    while days[-1] < end:
        if len(days) > MAX_ROWS:
            raise ValueError(f"from: more than {MAX_ROWS} {period} rows; ask a shorter range")
        days.append(_next(days[-1], period))
    return days


@exact
def row(start: date, end: date, before: Figures, after: Figures, basis: RevenueBasis) -> dict[str, object]:
    """One statement row from the figures at the period's start and end."""
    change = subtract(after, before)
    out: dict[str, object] = {"start": start.isoformat(), "end": end.isoformat()}
    for column, figure in zip(_COLUMNS, _FIGURES, strict=True):
        out[column] = format_money(change.get(figure, ZERO))
    prefix = "costs.by_category."
    names = sorted({p[len(prefix):] for p in (*before, *after) if p.startswith(prefix)})
    out["costs_by_category"] = {n: format_money(change.get(prefix + n, ZERO)) for n in names}
    out["net"] = format_money(change.get("net_pnl", ZERO))
    revenue = change.get(f"revenue.{basis}", ZERO)
    costs = change.get("costs.total", ZERO)
    out["margin_pct"] = format_money(margin_pct(revenue, costs)) if revenue > 0 else None
    return out


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """The statement as CSV: a header row, then the amounts exactly as in the JSON."""
    categories = sorted({name for r in rows for name in r["costs_by_category"]})
    header = ["start", "end", *_COLUMNS, *(f"costs_{c}" for c in categories), "net", "margin_pct"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for r in rows:
        writer.writerow([r["start"], r["end"], *(r[c] for c in _COLUMNS),
                         *(r["costs_by_category"].get(c, "0.00") for c in categories),
                         r["net"], r["margin_pct"] or ""])
    return out.getvalue()

