"""What the tests read from the dashboard, and how they compare it with the server."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

# One read, so that what is shown and the state it was rendered from belong together.
READ_STATE = """(ids) => {
  const s = window.northstard.state;
  const text = (id) => document.querySelector(`[data-testid="${id}"]`).textContent;
  return { epoch: s.epoch, seq: s.seq, doc: s.doc, transport: s.transport, shown: text('net-pnl'),
           position: text('position'), badge: text('transport'), trend: text('trend-summary'),
           chart: document.querySelector('[data-testid="sparkline"]').getAttribute('aria-label'),
           texts: Object.fromEntries(ids.map((id) => [id, text(id)])) };
}"""

# True once the page is past `seq`, or at it with that position rendered.
AT_OR_PAST = """(seq) => {
  const s = window.northstard && window.northstard.state;
  if (!s || s.seq < seq) return false;
  const shown = document.querySelector('[data-testid="position"]').textContent;
  return s.seq > seq || shown === `${s.epoch}:${seq}`;
}"""

BADGES = {"ws": "Live · WebSocket", "sse": "Live · SSE", "poll": "Live · Polling", "offline": "Offline"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def money(text: str) -> str:
    """The dashboard's rendering of a decimal amount: half-even to cents, "$1,234.50"."""
    amount = Decimal(text).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    return f"{'-' if amount < 0 else ''}${abs(amount):,.2f}"


def read_state(page: Any, texts: Sequence[str] = ()) -> dict[str, Any]:
    """The page's state, and what it shows (``texts``: more data-testids to read)."""
    state: dict[str, Any] = page.evaluate(READ_STATE, list(texts))
    return state


def server_snapshot(base: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/api/pnl/current", timeout=10)
    response.raise_for_status()
    snapshot: dict[str, Any] = response.json()
    return snapshot


def wait_in_sync(page: Any, base: str, texts: Sequence[str] = (), attempts: int = 20) -> dict[str, Any]:
    """Catch the page at the seq the server reports; its document and number must be the server's."""
    for _ in range(attempts):
        server = server_snapshot(base)
        page.wait_for_function(AT_OR_PAST, arg=server["seq"])
        state = read_state(page, texts)
        if state["seq"] != server["seq"] or state["position"] != f"{state['epoch']}:{state['seq']}":
            continue  # the demo moved on in between: try at the new seq
        assert state["epoch"] == server["epoch"]
        assert state["doc"] == server["data"]
        assert state["shown"] == money(server["data"]["net_pnl"])
        return state
    raise AssertionError(f"never caught the page at the server's seq; last {state['seq']} vs {server['seq']}")


def wait_transport(page: Any, kind: str, timeout: float = 15_000) -> None:
    try:
        page.wait_for_function("(kind) => window.northstard && window.northstard.state.transport === kind",
                               arg=kind, timeout=timeout)
    except Exception as exc:  # Playwright's TimeoutError: tell what the page went through
        seen = page.evaluate("() => window.northstard && window.northstard.transitions")
        raise AssertionError(f"never {kind!r}; transport changes (kind, ms): {seen}") from exc
    badge = page.get_by_test_id("transport")
    assert badge.text_content() == BADGES[kind]


def wait_applied_via(page: Any, via: str) -> None:
    """Until the page has applied a change that came over ``via`` (ws, sse or poll)."""
    page.wait_for_function("(via) => window.northstard.applied.some((e) => e.via === via)", arg=via)


def check_applied(page: Any) -> list[dict[str, Any]]:
    """Every change the page applied, in order: one snapshot, then deltas with no gap and no repeat."""
    applied: list[dict[str, Any]] = page.evaluate("() => window.northstard.applied")
    assert applied and applied[0]["type"] == "snapshot", applied[:3]
    seq = applied[0]["seq"]
    for entry in applied[1:]:
        assert entry["type"] == "delta", f"unexpected {entry} after seq {seq}"
        assert entry["prev"] <= seq < entry["seq"], f"gap or repeat: at {seq}, applied {entry}"
        seq = entry["seq"]
    return applied
