"""The demo source's config keys and their validated, typed form.

Every key has a default, so an empty ``[sources.demo]`` section works. A
``seed`` of 0 draws a fresh seed at each start (``Settings.resolved``); any
other seed replays exactly the same business.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from northstard.config import Field

__all__ = ["DEFAULT_AGENTS", "FIELDS", "Settings"]

DEFAULT_AGENTS = ("atlas", "beacon", "cinder")
MAX_AGENTS = 50


def _check_agents(value: Any) -> str | None:
    if not value:
        return "needs at least one agent"
    if not all(isinstance(name, str) and name.strip() for name in value):
        return "agent names must be non-empty strings"
    if len(set(value)) != len(value):
        return "agent names must be unique"
    if len(value) > MAX_AGENTS:
        return f"at most {MAX_AGENTS} agents"
    return None


FIELDS: tuple[Field, ...] = (
    Field("seed", int, 0, help="0: a fresh random business at each start; else replayable"),
    Field("agents", list, list(DEFAULT_AGENTS), check=_check_agents,
          help="the agents that trade, spend on AI and sell"),
    Field("speed", float, 1.0, min=0.01, max=600.0, help="business seconds per real second"),
    Field("markets", int, 6, min=1, max=50, help="prediction markets open at any time"),
    Field("cash", int, 2500, min=100, max=10_000_000, help="opening trading cash, dollars"),
    Field("skill_pct", int, 60, min=0, max=100,
          help="how often (%) an agent backs the side that will win"),
    Field("history_s", float, 21600.0, min=0, max=604800.0,
          help="business seconds simulated before the first reading"),
    Field("recent_s", float, 120.0, min=0, max=86400.0,
          help="business seconds of past events re-sent with each reading"),
)


@dataclass(frozen=True)
class Settings:
    """The demo's options, typed."""

    seed: int = 0
    agents: tuple[str, ...] = DEFAULT_AGENTS
    speed: float = 1.0
    markets: int = 6
    cash: int = 2500
    skill_pct: int = 60
    history_s: float = 21600.0
    recent_s: float = 120.0

    @classmethod
    def from_options(cls, options: Mapping[str, Any], section: str = "sources.demo") -> Settings:
        """Validate ``options`` (missing keys take their defaults)."""
        values: dict[str, Any] = {}
        for spec in FIELDS:
            given = options.get(spec.name)
            key = f"{section}.{spec.name}"
            values[spec.name] = spec.default if given is None else spec.validate(key, given)
        values["agents"] = tuple(str(name) for name in values["agents"])
        return cls(**values)

    def resolved(self, entropy: Callable[[int], bytes] = os.urandom) -> Settings:
        """These settings with a non-zero seed (drawn from ``entropy`` when 0)."""
        seed = self.seed
        while seed == 0:
            seed = int.from_bytes(entropy(8), "big")
        return replace(self, seed=seed)
