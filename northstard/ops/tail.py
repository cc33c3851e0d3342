"""``northstard tail``: print the live net P&L and each change, one line each.

    northstard tail [--grpc|--ws|--sse] [--url URL] [--token T] [--count N] [--cacert PEM]

One line per event, the stream's position first:

    E:N  snapshot  net_pnl 1520.37 USD  as_of 2026-11-21T19:25:02.437Z
    E:N  delta     net_pnl 1520.72 USD  change.since_previous=0.35 net_pnl=1520.72 ...

A delta lists every field it changed as ``path=value`` (``path=-`` for a field
it removed). On a lost connection the client reconnects and resumes from the
last position it printed (every transport resumes without a gap). Exit 0
after ``--count`` events or on Ctrl-C, 1 when the daemon cannot be reached,
2 when it refuses the token. The token (``--token``, else ``$NORTHSTARD_TOKEN``)
goes as ``Authorization: Bearer`` on every transport.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from northstard.actors.hub import Position
from northstard.core.mergepatch import Doc, apply_patch
from northstard.errors import leaf

__all__ = ["Printer", "add_arguments", "change_paths", "follow", "main"]

TOKEN_ENV = "NORTHSTARD_TOKEN"
DEFAULT_URLS = {"grpc": "grpc://127.0.0.1:8081", "ws": "http://127.0.0.1:8080",
                "sse": "http://127.0.0.1:8080"}
REFUSED_STATUSES = (401, 403)
RETRY_S = 1.0
MAX_RETRIES = 5


class Done(Exception):
    """``--count`` events were printed."""


class Unreachable(Exception):
    """The connection could not be made, or was lost."""


class Refused(Exception):
    """The daemon refused the credentials."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    transport = parser.add_mutually_exclusive_group()
    for name, text in (("grpc", "gRPC (the default)"), ("ws", "WebSocket"), ("sse", "SSE")):
        transport.add_argument(f"--{name}", dest="transport", action="store_const", const=name,
                               help=text)
    parser.set_defaults(transport="grpc")
    parser.add_argument("--url", help="grpc[s]://HOST:PORT, or http[s]://HOST:PORT for --ws/--sse"
                        " (default: the daemon's default address)")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV) or None,
                        help=f"API token, sent as Authorization: Bearer (default: ${TOKEN_ENV})")
    parser.add_argument("--count", type=int, default=0, help="exit after N events (0: never)")
    parser.add_argument("--cacert", type=Path, help="PEM CA file to trust for https://, wss:// and"
                        " grpcs:// (e.g. the daemon's self-signed server.tls_cert)")


def change_paths(patch: Doc, prefix: str = "") -> list[tuple[str, object]]:
    """Every leaf of a merge patch as (dotted path, value); None means removed."""
    paths: list[tuple[str, object]] = []
    for key in sorted(patch):
        value = patch[key]
        if isinstance(value, dict) and value:
            paths += change_paths(value, f"{prefix}{key}.")
        else:
            paths.append((f"{prefix}{key}", value))
    return paths


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Printer:
    """Keeps the client's state, writes one line per event, and counts them."""

    def __init__(self, out: TextIO = sys.stdout, count: int = 0) -> None:
        self.out = out
        self.count = count
        self.printed = 0
        self.epoch = ""
        self.seq = -1
        self.doc: Doc = {}

    @property
    def position(self) -> Position | None:
        return Position(self.epoch, self.seq) if self.seq >= 0 else None

    def snapshot(self, epoch: str, seq: int, doc: Doc) -> None:
        self.epoch, self.seq, self.doc = epoch, seq, doc
        self._line("snapshot", f"as_of {doc.get('as_of', '-')}")

    def delta(self, epoch: str, seq: int, prev: int, patch: Doc) -> None:
        if epoch != self.epoch or prev > self.seq:
            raise ConnectionError(f"stream gap at {self.epoch}:{self.seq}: resubscribing")
        if seq <= self.seq:
            return
        self.doc = apply_patch(self.doc, patch)
        self.seq = seq
        changed = " ".join(f"{path}={_text(value)}" for path, value in change_paths(patch))
        self._line("delta", changed)

    def json_message(self, message: dict[str, Any]) -> None:
        """A WebSocket/SSE wire message (docs/protocol.md, "Wire protocol")."""
        if message.get("type") == "snapshot":
            self.snapshot(message["epoch"], message["seq"], message["data"])
        elif message.get("type") == "delta":
            self.delta(message["epoch"], message["seq"], message["prev"], message["patch"])

    def _line(self, kind: str, rest: str) -> None:
        net = f"net_pnl {self.doc.get('net_pnl', '-')} {self.doc.get('currency', '')}".rstrip()
        print(f"{self.epoch}:{self.seq}  {kind:<8}  {net}  {rest}", file=self.out, flush=True)
        self.printed += 1
        if self.count and self.printed >= self.count:
            raise Done


# -- transports: each raises Unreachable when the connection cannot be made or is lost --------


async def _follow_grpc(url: str, token: str | None, printer: Printer, cacert: bytes | None) -> None:
    import grpc

    from northstard.edges.grpc.client import PnlClient, open_channel
    from northstard.edges.grpc.convert import doc_from_snapshot, patch_from_struct

    try:
        async with open_channel(url, cacert) as channel:
            async for event in PnlClient(channel, token).subscribe(resume=printer.position):
                if event.WhichOneof("body") == "snapshot":
                    printer.snapshot(event.epoch, event.seq, doc_from_snapshot(event.snapshot))
                else:
                    printer.delta(event.epoch, event.seq, event.prev_seq,
                                  patch_from_struct(event.delta.patch))
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            raise Refused(exc.details() or exc.code().name) from None
        raise Unreachable(f"{url}: {exc.code().name}: {exc.details()}") from None
    except ConnectionError as exc:
        raise Unreachable(str(exc)) from None
    raise Unreachable(f"{url}: the stream ended")


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _tls(cacert: bytes | None) -> ssl.SSLContext | None:
    """Trust ``cacert`` (None: the system's CAs)."""
    return ssl.create_default_context(cadata=cacert.decode("ascii")) if cacert else None


async def _follow_ws(url: str, token: str | None, printer: Printer, cacert: bytes | None) -> None:
    from trio_websocket import ConnectionClosed, ConnectionRejected, HandshakeError, open_websocket_url

    since = f"?since={printer.position}" if printer.position else ""
    target = url.replace("http", "ws", 1).rstrip("/") + "/ws" + since
    try:
        headers = [(k.encode(), v.encode()) for k, v in _headers(token).items()]
        async with open_websocket_url(target, ssl_context=_tls(cacert), extra_headers=headers) as ws:
            while True:
                printer.json_message(json.loads(await ws.get_message()))
    except ConnectionRejected as exc:
        if exc.status_code in REFUSED_STATUSES:
            raise Refused(f"{target}: HTTP {exc.status_code}") from None
        raise Unreachable(f"{target}: HTTP {exc.status_code}") from None
    except (OSError, HandshakeError, ConnectionClosed, ConnectionError) as exc:
        raise Unreachable(f"{target}: {exc!r}") from None


async def _follow_sse(url: str, token: str | None, printer: Printer, cacert: bytes | None) -> None:
    import httpx

    headers = _headers(token)
    if printer.position:
        headers["Last-Event-ID"] = str(printer.position)
    target = url.rstrip("/") + "/api/pnl/stream"
    try:
        verify = _tls(cacert) or True
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None), verify=verify) as client, \
                client.stream("GET", target, headers=headers) as response:
            if response.status_code in REFUSED_STATUSES:
                raise Refused(f"{target}: HTTP {response.status_code}")
            if response.status_code != 200:
                raise Unreachable(f"{target}: HTTP {response.status_code}")
            data: list[str] = []
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    printer.json_message(json.loads("\n".join(data)))
                    data = []
    except (httpx.HTTPError, ConnectionError) as exc:
        raise Unreachable(f"{target}: {exc}") from None
    raise Unreachable(f"{target}: the stream ended")


def _attempt(transport: str, url: str, token: str | None, printer: Printer, cacert: bytes | None) -> None:
    if transport == "grpc":
        asyncio.run(_follow_grpc(url, token, printer, cacert))
        return
    import trio

    follow = _follow_ws if transport == "ws" else _follow_sse
    trio.run(follow, url, token, printer, cacert)


def follow(transport: str, url: str, token: str | None, printer: Printer,
           cacert: bytes | None = None) -> int:
    """Follow the stream, reconnecting (with resume) after a lost connection; the exit code."""
    failures = 0
    while True:
        before = printer.printed
        try:
            _attempt(transport, url, token, printer, cacert)
        except BaseException as raised:
            exc = leaf(raised)
            if isinstance(exc, Done):
                return 0
            if isinstance(exc, Refused):
                print(f"northstard tail: refused: {exc}", file=sys.stderr)
                return 2
            if not isinstance(exc, Unreachable):
                raise
            failures = 0 if printer.printed > before else failures + 1
            if failures >= MAX_RETRIES:
                print(f"northstard tail: {exc}", file=sys.stderr)
                return 1
            time.sleep(RETRY_S)


def main(args: argparse.Namespace) -> int:
    """``northstard tail`` with parsed arguments; returns the exit code."""
    printer = Printer(count=args.count)
    try:
        cacert = args.cacert.read_bytes() if args.cacert else None
    except OSError as exc:
        print(f"northstard tail: cannot read --cacert {args.cacert}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        return follow(args.transport, args.url or DEFAULT_URLS[args.transport], args.token, printer,
                      cacert)
    except KeyboardInterrupt:
        return 0
