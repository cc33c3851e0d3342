"""``northstard alerts test NAME``: one test notification, sent now (not through the outbox).

NAME is a notifier (``[notifiers.NAME]``) or a rule (``[alerts.NAME]``: each of its notifiers).
Prints one line per notifier; exit 0 when every one answered 2xx, 1 otherwise, 2 on an unknown
name. The event is marked ``"test": true``, its id (so its Idempotency-Key) unique per run.
"""

from __future__ import annotations

import sys
import time

import httpx
import trio

from northstard.actors.delivery import Notifier, notifiers_of
from northstard.config import Config

__all__ = ["main"]


def _event(name: str, severity: str) -> dict[str, object]:
    now = time.time_ns()
    return {"id": f"test-{now}", "alert": name, "event": "firing", "severity": severity, "kind": "test",
            "ts": now // 1_000_000, "epoch": "test", "seq": 0, "test": True,
            "description": "a test notification (northstard alerts test)", "explain": "",
            "text": f"[{severity}] {name}: test notification from northstard"}


async def _send(hooks: list[Notifier], event: dict[str, object]) -> list[str | None]:
    async with httpx.AsyncClient() as client:
        return [await hook.send(client, event) for hook in hooks]


def main(config: Config, name: str) -> int:
    rules = {r.name: r for r in config.alerts}
    if name in config.notifiers:
        targets, severity = [name], "info"
    elif name in rules:
        targets, severity = list(rules[name].notify), rules[name].severity
    else:
        print(f"northstard: no [notifiers.{name}] or [alerts.{name}] section", file=sys.stderr)
        return 2
    every = notifiers_of(config)
    hooks = [every[n] for n in targets]
    errors = trio.run(_send, hooks, _event(name, severity))
    for hook, error in zip(hooks, errors, strict=True):
        print(error or f"{hook.name}: delivered")
    return 0 if all(e is None for e in errors) else 1
