"""What one record contributes to each figure of the snapshot document. Pure: no I/O.

The engine's totals are kept per internal path (``pnl.contribution``); the
document shows *figures* derived from them: ``net_pnl``, ``trading.total``,
an agent's ``revenue`` (on the revenue basis) and ``net``. This module maps
one record's internal contribution onto the figure paths with the same rules
``pnl.Book.document`` applies, so the figures of a document are exactly the
sum of the contributions of its current records (tests/test_contributions.py).

A figure path is the dotted amount path of the document: ``net_pnl``,
``trading.realized``, ``costs.by_model.claude-opus-4``, ``agents.atlas.net``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TypeVar

from northstard.core.mergepatch import Doc
from northstard.core.money import ZERO, format_money
from northstard.core.pnl import RevenueBasis, contribution, exact
from northstard.core.records import Price, Record

__all__ = [
    "add_into",
    "figure_contributions",
    "figures",
    "formatted",
    "internal_figures",
    "subtract",
]

Figures = dict[str, Decimal]
_Path = TypeVar("_Path", str, tuple[str, ...])  # a figure path, or an internal one

_DIRECT: dict[tuple[str, ...], tuple[str, ...]] = {  # internal path -> figure paths it adds to (sign +1)
    ("trading", "realized"): ("trading.realized", "trading.total", "net_pnl"),
    ("trading", "unrealized"): ("trading.unrealized", "trading.total", "net_pnl"),
    ("trading", "fees"): ("trading.fees",),
    ("trading", "balance"): ("trading.balance",),
    ("costs", "estimated"): ("costs.estimated",),
}


Targets = tuple[tuple[str, int], ...]  # the figure paths an internal path adds to, with sign


@functools.lru_cache(maxsize=4096)  # paths name agents, models, categories: a working set
def _targets(path: tuple[str, ...], basis: RevenueBasis) -> Targets:
    direct = _DIRECT.get(path)
    if direct is not None:
        return tuple((figure, 1) for figure in direct)
    if path[0] == "revenue":
        return ((f"revenue.{path[1]}", 1),) + ((("net_pnl", 1),) if path[1] == basis else ())
    if path == ("costs", "total"):
        return ("costs.total", 1), ("net_pnl", -1)
    if path[0] == "costs":
        return ((".".join(path), 1),)
    if path[0] == "agents":
        return _agent(path[1], path[2], basis)
    return ()


def _agent(name: str, part: str, basis: RevenueBasis) -> Targets:
    prefix = f"agents.{name}."
    if part == "trading":
        return (prefix + "trading", 1), (prefix + "net", 1)
    if part == "costs":
        return (prefix + "costs", 1), (prefix + "net", -1)
    if part == basis:
        return (prefix + "revenue", 1), (prefix + "net", 1)
    return ()


@exact
def figure_contributions(record: Record, price: Price | None, basis: RevenueBasis) -> Figures:
    """The record's contribution to each figure (a position also needs its market's price).

    Zero entries are left out, so a record that moves nothing answers ``{}``.
    """
    return internal_figures(contribution(record, price), basis)


@exact
def internal_figures(paths: Mapping[tuple[str, ...], Decimal], basis: RevenueBasis) -> Figures:
    """Amounts per internal path (``pnl.contribution``, or a sum of them) as figures, zero
    entries left out. Linear: the figures of a sum are the sum of the figures."""
    into: Figures = {}
    for path, amount in paths.items():
        for figure, sign in _targets(path, basis):
            into[figure] = into.get(figure, ZERO) + (amount if sign > 0 else -amount)
    return {path: amount for path, amount in into.items() if amount}


@exact
def add_into(total: dict[_Path, Decimal], part: Mapping[_Path, Decimal], sign: int = 1) -> None:
    """``total += sign * part``, path by path, exactly (figure paths, or internal ones)."""
    for path, amount in part.items():
        total[path] = total.get(path, ZERO) + (amount if sign > 0 else -amount)


@exact
def subtract(new: Mapping[str, Decimal], old: Mapping[str, Decimal]) -> Figures:
    """``new - old`` per path, zero entries left out."""
    out = dict(new)
    add_into(out, old, -1)
    return {path: amount for path, amount in out.items() if amount}


def formatted(values: Mapping[str, Decimal]) -> dict[str, str]:
    """Decimal strings in the document's canonical form, paths sorted."""
    return {path: format_money(values[path]) for path in sorted(values)}


_SECTIONS = {"trading": ("realized", "unrealized", "fees", "total", "balance"),
             "revenue": ("invoiced", "collected"), "costs": ("total", "estimated")}


def figures(doc: Doc) -> Figures:
    """Every amount figure of a snapshot document, by figure path (an empty doc: none)."""
    out: Figures = {}
    if "net_pnl" in doc:
        out["net_pnl"] = Decimal(doc["net_pnl"])
    for section, keys in _SECTIONS.items():
        part = doc.get(section, {})
        out.update((f"{section}.{key}", Decimal(part[key])) for key in keys if key in part)
    for group in ("by_category", "by_model"):
        for name, amount in doc.get("costs", {}).get(group, {}).items():
            out[f"costs.{group}.{name}"] = Decimal(amount)
    for name, entry in doc.get("agents", {}).items():
        out.update((f"agents.{name}.{key}", Decimal(entry[key]))
                   for key in ("trading", "revenue", "costs", "net") if key in entry)
    return out


def paths_of(*maps: Iterable[str]) -> list[str]:
    """Every path of these figure maps, sorted."""
    return sorted({path for paths in maps for path in paths})
