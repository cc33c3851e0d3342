"""Which alert rules a change can move: rules indexed by the path they read. Pure: no I/O.

Evaluating every rule on every change costs O(rules); a change's merge patch
touches a few paths, and a rule whose figure did not change, whose period did
not roll over and which is not pending would come out of ``evaluate``
exactly as it went in. So a change evaluates only

- the threshold rules whose ``metric`` path is in the patch (a trie of the
  rules' paths walked together with the patch: O(patch), whatever the number
  of rules), and the ``source_*`` rules when ``sources`` is in it;
- every rule of a ``day`` / ``week`` / ``month`` window when that period has
  rolled over since the last change (its baseline moves);
- the time-dependent ones: sliding windows (the window moves with the clock),
  ``no_changes``, ``store_degraded``, ``backup_failing``;
- the pending rules (their ``for_s`` may have passed).

The timer (``evaluate_tick``) evaluates the kinds that are not thresholds and
the pending rules, not every rule (every rule before the first change, when
the pending ones loaded from SQLite are not known yet).

The transitions are the same as ``evaluate`` over every rule (a hypothesis
test holds them equal). A change that does not follow the last evaluated one
(the first, a new epoch, a gap) evaluates every rule. Held: the trie (one node
per distinct path prefix of the rules) and the set of pending rule names
(at most one per rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from northstard.core.alertrules import KINDS, PERIODS, Observation, Rule, RuleState, Transition, evaluate

__all__ = ["TIMED_KINDS", "RuleIndex"]

ALWAYS_KINDS = frozenset({"no_changes", "store_degraded", "backup_failing"})
TIMED_KINDS = frozenset(k for k in KINDS if k != "threshold")


@dataclass
class _Node:
    own: list[int] = field(default_factory=list)  # rules (by position) whose path ends here
    under: list[int] = field(default_factory=list)  # own and every descendant's
    children: dict[str, _Node] = field(default_factory=dict)

    def seal(self) -> list[int]:
        """Fill ``under`` from the leaves up, once every rule is in."""
        self.under = [*self.own]
        for child in self.children.values():
            self.under.extend(child.seal())
        return self.under


class RuleIndex:
    """The rules of one config, indexed for ``evaluate_change``; keeps the last position evaluated."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        self.order = {rule.name: i for i, rule in enumerate(self.rules)}
        self.root = _Node()
        self.always: list[int] = []
        self.by_period: dict[str, list[int]] = {p: [] for p in PERIODS}
        for i, rule in enumerate(self.rules):
            self._add(i, rule)
        self.root.seal()
        self.timed = [i for i, r in enumerate(self.rules) if r.kind != "threshold"]  # the timer's
        self.at: tuple[str, int] | None = None  # the last change evaluated
        self.periods: dict[str, int] = {}  # each period's start at that change
        self.pending: set[str] = set()
        self.rolled: list[str] = []  # after evaluate_change: rules whose period started

    def __repr__(self) -> str:
        return f"<RuleIndex rules={len(self.rules)} always={len(self.always)} at={self.at}>"

    def _add(self, i: int, rule: Rule) -> None:
        if rule.kind in ALWAYS_KINDS or rule.window == "sliding":
            self.always.append(i)
            return
        if rule.window in PERIODS:
            self.by_period[rule.window].append(i)
        path = rule.metric if rule.kind == "threshold" else ("sources",)
        node = self.root
        for part in path:
            node = node.children.setdefault(part, _Node())
        node.own.append(i)

    def touched(self, patch: Mapping[str, Any]) -> set[int]:
        """The rules (by position) whose path the merge patch sets, replaces or removes."""
        out: set[int] = set()
        stack: list[tuple[Mapping[str, Any], _Node]] = [(patch, self.root)]
        while stack:
            part, node = stack.pop()
            for key, value in part.items():
                child = node.children.get(key)
                if child is None:
                    continue
                if isinstance(value, Mapping):
                    out.update(child.own)
                    stack.append((value, child))
                else:  # a leaf, or an object replaced / removed: everything under it
                    out.update(child.under)
        return out

    def due(self, obs: Observation, patch: Mapping[str, Any]) -> list[Rule]:
        """The rules a change can move, in config order (transitions come out in that order)."""
        chosen = self.touched(patch)
        chosen.update(self.always)
        chosen.update(self.order[n] for n in self.pending)
        for period, rules in self.by_period.items():
            if rules and obs.period_start(period) != self.periods.get(period):
                chosen.update(rules)
        return [self.rules[i] for i in sorted(chosen)]

    def evaluate_change(self, states: dict[str, RuleState], obs: Observation,
                        patch: Mapping[str, Any] | None, max_points: int = 1024) -> list[Transition]:
        """``evaluate`` for a change at ``obs`` whose merge patch is ``patch``: only the rules it
        can move when it follows the last change evaluated, every rule otherwise. Afterwards
        ``rolled`` names the rules whose period window started (their baseline moved)."""
        follows = self.at is not None and self.at == (obs.epoch, obs.seq - 1)
        rules = self.due(obs, patch) if follows and patch is not None else list(self.rules)
        fresh = evaluate(rules, states, obs, max_points)
        if len(rules) == len(self.rules):
            self.pending = {r.name for r in self.rules if states[r.name].status == "pending"}
        else:
            self.note(fresh)
        self.rolled = obs.rolled
        self.at = (obs.epoch, obs.seq)
        self.periods = {p: obs.period_start(p) for p, rs in self.by_period.items() if rs}
        return fresh

    def evaluate_tick(self, states: dict[str, RuleState], obs: Observation,
                      max_points: int = 1024) -> list[Transition]:
        """The timer's ``evaluate(..., kinds=<every kind but threshold>)``: the timed kinds and the
        pending rules (whose ``for_s`` may have passed), not every rule."""
        if self.at is None:  # before the first change: the pending set is not known yet
            rules = list(self.rules)
        else:
            chosen = {*self.timed, *(self.order[n] for n in self.pending)}
            rules = [self.rules[i] for i in sorted(chosen)]
        fresh = evaluate(rules, states, obs, max_points, kinds=TIMED_KINDS)
        self.note(fresh)
        return fresh

    def note(self, transitions: Iterable[Transition]) -> None:
        """Keep the pending set right after transitions made elsewhere (the timer's)."""
        for t in transitions:
            if t.event == "pending":
                self.pending.add(t.rule.name)
            else:
                self.pending.discard(t.rule.name)
