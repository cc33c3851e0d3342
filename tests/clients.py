"""Real clients for the daemon's edges, and a follower that checks the stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from northstard.core.mergepatch import Doc, apply_patch


@dataclass
class Follower:
    """Applies snapshot/delta messages as a client must, asserting no gap and no duplicate."""

    epoch: str | None = None
    seq: int = -1
    doc: Doc = field(default_factory=dict)
    seqs: list[int] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    def apply(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        self.kinds.append(kind)
        if kind == "snapshot":
            self.epoch, self.seq, self.doc = message["epoch"], message["seq"], message["data"]
        elif kind == "delta":
            assert message["epoch"] == self.epoch, "delta from another epoch"
            assert message["prev"] <= self.seq, f"gap: at {self.seq}, delta from {message['prev']}"
            assert message["seq"] > self.seq, f"duplicate: at {self.seq}, got {message['seq']}"
            self.doc = apply_patch(self.doc, message["patch"])
            self.seq = message["seq"]
        else:
            raise AssertionError(f"unexpected message {message}")
        self.seqs.append(self.seq)

    @property
    def since(self) -> str:
        return f"{self.epoch}:{self.seq}"


def ws_url(base: str, path: str = "/ws") -> str:
    return base.replace("http://", "ws://") + path


async def sse_events(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """(id, event, data) for each SSE event; comments and retry lines are skipped."""
    async with client.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line == "":
                if "data" in fields:
                    yield fields.get("id", ""), fields.get("event", ""), json.loads(fields["data"])
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
