"""Alert rules: parsed once from ``[alerts.NAME]``, evaluated per committed change. Pure: no I/O.

A rule watches one condition and moves through

    ok ──(condition holds)──▶ pending ──(held for_s)──▶ firing ──(clear)──▶ ok  ("resolved")
                 pending ──(condition gone before for_s)──▶ ok                    ("cleared")

Kinds:

- ``threshold`` (the default): an amount path of the snapshot document
  (``metric = "costs.by_category.ai"``) read through a ``window``:
  ``value`` (the figure itself); ``day`` / ``week`` / ``month`` (what the
  figure grew since the UTC start of the period: the figure minus the last
  figure seen before the period began; on a brand-new rule, minus the first
  figure seen); or a duration such as ``"15m"`` (what it grew over that
  sliding window). Then ``above = "500.00"`` or ``below = "-100.00"``, and an
  optional ``hysteresis``: a firing rule resolves only once the value is back
  past the threshold by that much.
- ``source_stale`` / ``source_failing``: a source (``source = "NAME"``, or
  any source when unset) reports that status in the document.
- ``no_changes``: no committed change for ``for_s`` seconds.
- ``store_degraded``: SQLite cannot persist (the writer's status).
- ``backup_failing``: the periodic backup fails.

Cost per call of ``evaluate``: O(rules given); ``northstard.core.alertindex``
picks the few a change can move. A sliding window keeps at most ``max_points``
(value, time) pairs per rule: a point that arrives within ``window /
max_points`` of the previous one replaces it, so the oldest kept point may lie
up to that much before the window's start (the window is never shorter).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from northstard.errors import ConfigError

__all__ = [
    "KINDS",
    "SEVERITIES",
    "Observation",
    "Rule",
    "RuleState",
    "Transition",
    "evaluate",
    "parse_duration",
    "period_start_ms",
    "prime",
    "rule_from_section",
]

SEVERITIES = ("info", "warning", "critical")
KINDS = ("threshold", "source_stale", "source_failing", "no_changes", "store_degraded", "backup_failing")
PERIODS = ("day", "week", "month")
AMOUNT_ROOTS = ("net_pnl", "gross_margin_pct", "trading", "revenue", "costs", "change", "agents")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float | None:
    """``"15m"`` → 900.0; None when it is not ``<digits><s|m|h|d>``."""
    if len(text) < 2 or text[-1] not in UNITS or not text[:-1].isascii() or not text[:-1].isdigit():
        return None
    return float(int(text[:-1]) * UNITS[text[-1]])


def _decimal(key: str, value: object) -> Decimal | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(key, 'expected a decimal string such as "500.00"')
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ConfigError(key, 'expected a decimal string such as "500.00"') from None
    if not amount.is_finite():
        raise ConfigError(key, "expected a finite amount")
    return amount


@dataclass(frozen=True)
class Rule:
    """One validated ``[alerts.NAME]`` section."""

    name: str
    kind: str = "threshold"
    metric: tuple[str, ...] = ()
    window: str = "value"  # value | day | week | month | sliding
    window_s: float = 0.0
    above: Decimal | None = None
    below: Decimal | None = None
    hysteresis: Decimal = Decimal(0)
    for_s: float = 0.0
    severity: str = "warning"
    notify: tuple[str, ...] = ()
    source: str = ""

    @property
    def threshold(self) -> Decimal | None:
        return self.above if self.above is not None else self.below

    def describe(self) -> str:
        """One line for humans (the notification text)."""
        if self.kind != "threshold":
            target = f" {self.source}" if self.source else ""
            return f"{self.kind.replace('_', ' ')}{target}"
        side = "above" if self.above is not None else "below"
        window = self.window if self.window != "sliding" else f"change over {self.window_s:g}s"
        return f"{'.'.join(self.metric)} ({window}) {side} {self.threshold}"


def rule_from_section(name: str, values: Mapping[str, Any]) -> Rule:
    """A ``Rule`` from a section whose keys are already typed; cross-key problems name the key."""
    section = f"alerts.{name}"
    kind = values["kind"]
    above = _decimal(f"{section}.above", values.get("above"))
    below = _decimal(f"{section}.below", values.get("below"))
    hysteresis = _decimal(f"{section}.hysteresis", values.get("hysteresis")) or Decimal(0)
    if hysteresis < 0:
        raise ConfigError(f"{section}.hysteresis", "must not be negative")
    common = {"name": name, "kind": kind, "for_s": values["for_s"], "severity": values["severity"],
              "notify": tuple(values["notify"]), "hysteresis": hysteresis}
    if kind != "threshold":
        for key in ("metric", "above", "below"):
            if values.get(key) is not None:
                raise ConfigError(f"{section}.{key}", f"not used by kind = {kind!r}")
        if values.get("source") and not kind.startswith("source_"):
            raise ConfigError(f"{section}.source", f"not used by kind = {kind!r}")
        return Rule(source=values.get("source") or "", **common)
    metric = values.get("metric")
    if not metric:
        raise ConfigError(f"{section}.metric", "required: an amount path such as \"costs.total\"")
    path = tuple(metric.split("."))
    if path[0] not in AMOUNT_ROOTS or not all(path):
        raise ConfigError(f"{section}.metric", f"expected a path under {', '.join(AMOUNT_ROOTS)}")
    if (above is None) == (below is None):
        raise ConfigError(f"{section}.above", "set exactly one of above and below")
    window, window_s = _window(f"{section}.window", values["window"])
    return Rule(metric=path, window=window, window_s=window_s, above=above, below=below, **common)


def _window(key: str, text: str) -> tuple[str, float]:
    if text == "value" or text in PERIODS:
        return text, 0.0
    seconds = parse_duration(text)
    if seconds is None or seconds <= 0:
        raise ConfigError(key, 'expected value, day, week, month or a duration such as "15m"')
    return "sliding", seconds


def period_start_ms(period: str, ts_ms: int) -> int:
    """The UTC start of the day / week (Monday) / month that holds ``ts_ms``."""
    moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        start -= timedelta(days=start.weekday())
    elif period == "month":
        start = start.replace(day=1)
    return int(start.timestamp() * 1000)


@dataclass(frozen=True)
class Observation:
    """What the rules are evaluated against: the committed document and the daemon's status."""

    ts_ms: int
    doc: Mapping[str, Any] | None = None
    last_change_ms: int = 0
    store_degraded: bool = False
    backup_failing: bool = False
    epoch: str = ""
    seq: int = 0
    # per-observation memo: each path is parsed and each period start computed once, whatever
    # the number of rules reading it
    figures: dict[tuple[str, ...], Decimal | None] = field(default_factory=dict, repr=False, compare=False)
    periods: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    # filled by ``evaluate``: the rules whose period window started here (their baseline moved)
    rolled: list[str] = field(default_factory=list, repr=False, compare=False)

    def figure(self, path: tuple[str, ...]) -> Decimal | None:
        if path not in self.figures:
            self.figures[path] = _lookup(self.doc, path) if self.doc is not None else None
        return self.figures[path]

    def period_start(self, period: str) -> int:
        if period not in self.periods:
            self.periods[period] = period_start_ms(period, self.ts_ms)
        return self.periods[period]


@dataclass
class RuleState:
    """One rule's evaluation state (persisted, except the sliding window's points)."""

    status: str = "ok"  # ok | pending | firing
    since_ms: int = 0
    value: Decimal | None = None  # the last figure seen (the raw metric, before the window)
    period_ms: int | None = None  # the period the baseline belongs to
    baseline: Decimal | None = None
    shown: Decimal | None = None  # the last windowed value (what the threshold was compared with)
    points: deque[tuple[int, Decimal]] = field(default_factory=deque, repr=False)


@dataclass(frozen=True)
class Transition:
    """A rule changed status: ``event`` is pending, firing, resolved or cleared."""

    rule: Rule
    event: str
    ts_ms: int
    value: Decimal | None
    epoch: str
    seq: int

    @property
    def notifies(self) -> bool:
        return self.event in ("firing", "resolved")


def _lookup(doc: Mapping[str, object], path: Sequence[str]) -> Decimal | None:
    node: object = doc
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if not isinstance(node, str):
        return None
    try:
        return Decimal(node)
    except InvalidOperation:
        return None


def _windowed(rule: Rule, state: RuleState, obs: Observation, raw: Decimal, max_points: int) -> Decimal:
    if rule.window == "value":
        return raw
    if rule.window in PERIODS:
        start = obs.period_start(rule.window)
        if state.period_ms != start:
            state.baseline = state.value if state.value is not None else raw
            state.period_ms = start
            obs.rolled.append(rule.name)
        return raw - (state.baseline if state.baseline is not None else raw)
    return _slide(state.points, obs.ts_ms, raw, int(rule.window_s * 1000), max_points)


def _slide(points: deque[tuple[int, Decimal]], ts_ms: int, raw: Decimal, window_ms: int,
           max_points: int) -> Decimal:
    step = window_ms / max(max_points, 1)
    if len(points) > 1 and ts_ms - points[-2][0] < step:
        points[-1] = (ts_ms, raw)
    else:
        points.append((ts_ms, raw))
    cut = ts_ms - window_ms
    while len(points) > 1 and points[1][0] <= cut:
        points.popleft()
    while len(points) > max_points + 1:
        points.popleft()
    return raw - points[0][1]


def _condition(
    rule: Rule, state: RuleState, obs: Observation, max_points: int
) -> tuple[bool, Decimal | None]:
    """(breached, value) for threshold rules; None value: the figure is not in the document."""
    if rule.kind == "threshold":
        return _threshold(rule, state, obs, max_points)
    if rule.kind == "no_changes":
        return obs.ts_ms - obs.last_change_ms >= rule.for_s * 1000, None
    if rule.kind == "store_degraded":
        return obs.store_degraded, None
    if rule.kind == "backup_failing":
        return obs.backup_failing, None
    if rule.kind.startswith("source_"):
        wanted = rule.kind.removeprefix("source_")
        sources = (obs.doc or {}).get("sources", {})
        names = [rule.source] if rule.source else list(sources)
        return any(sources.get(n, {}).get("status") == wanted for n in names), None
    raise AssertionError(f"unknown kind {rule.kind!r}")  # KINDS is checked by the config


def _threshold(
    rule: Rule, state: RuleState, obs: Observation, max_points: int
) -> tuple[bool, Decimal | None]:
    raw = obs.figure(rule.metric)
    if raw is None:
        if obs.doc is not None and state.value is None:
            state.value = Decimal(0)  # not in the document yet: zero (a period counts from it)
        return state.status != "ok", state.shown  # no figure: nothing changes
    value = _windowed(rule, state, obs, raw, max_points)
    state.value = raw
    state.shown = value
    if rule.above is not None:
        margin = rule.hysteresis if state.status == "firing" else Decimal(0)
        return value > rule.above - margin, value
    assert rule.below is not None
    margin = rule.hysteresis if state.status == "firing" else Decimal(0)
    return value < rule.below + margin, value


def _step(rule: Rule, state: RuleState, breached: bool, obs: Observation,
          value: Decimal | None) -> Transition | None:
    now = obs.ts_ms
    held = rule.for_s * 1000 if rule.kind != "no_changes" else 0
    event: str | None = None
    if state.status == "ok" and breached:
        event = "firing" if held <= 0 else "pending"
    elif state.status == "pending" and not breached:
        event = "cleared"
    elif state.status == "pending" and now - state.since_ms >= held:
        event = "firing"
    elif state.status == "firing" and not breached:
        event = "resolved"
    if event is None:
        return None
    state.status = {"pending": "pending", "firing": "firing"}.get(event, "ok")
    state.since_ms = now
    return Transition(rule, event, now, value, obs.epoch, obs.seq)


def prime(rules: Iterable[Rule], states: dict[str, RuleState], doc: Mapping[str, object]) -> None:
    """Take the figures of ``doc`` (the last committed document) as each rule's last value seen,
    so a period that started while the daemon was down counts from them."""
    for rule in rules:
        state = states.setdefault(rule.name, RuleState())
        if rule.kind == "threshold" and state.value is None:
            state.value = _lookup(doc, rule.metric) or Decimal(0)


def evaluate(rules: Iterable[Rule], states: dict[str, RuleState], obs: Observation,
             max_points: int = 1024, *, kinds: frozenset[str] | None = None) -> list[Transition]:
    """Evaluate every rule (or those of ``kinds``) against ``obs``; O(rules). Mutates ``states``.

    A pending rule whose ``for_s`` has passed fires here too, so calling this on
    a timer (``doc=None``) moves pending rules on without a change.
    """
    out: list[Transition] = []
    for rule in rules:
        state = states.get(rule.name)
        if state is None:
            state = states[rule.name] = RuleState()
        if kinds is not None and rule.kind not in kinds:
            if state.status == "pending" and obs.ts_ms - state.since_ms >= rule.for_s * 1000:
                out.append(_fire_held(rule, state, obs))
            continue
        breached, value = _condition(rule, state, obs, max_points)
        transition = _step(rule, state, breached, obs, value)
        if transition is not None:
            out.append(transition)
    return out


def _fire_held(rule: Rule, state: RuleState, obs: Observation) -> Transition:
    state.status = "firing"
    state.since_ms = obs.ts_ms
    return Transition(rule, "firing", obs.ts_ms, state.shown, obs.epoch, obs.seq)
