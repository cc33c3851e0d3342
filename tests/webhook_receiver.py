"""A webhook receiver for the tests: a real HTTP/1.1 server on 127.0.0.1 that reads each body,
checks its HMAC, counts deliveries by Idempotency-Key, and fails on demand (5xx, hang, kill)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

MAX_BODY = 1 << 20


@dataclass
class Delivery:
    key: str
    signature_ok: bool
    body: dict[str, Any]
    status: int | None = None  # what it was answered (None: nothing, e.g. the sender died)


@dataclass
class Receiver:
    secret: str
    url: str = ""
    failures: list[int | str] = field(default_factory=list)  # next answers: a status, or "hang"
    attempts: list[Delivery] = field(default_factory=list)  # every request, answered or not
    accepted: list[Delivery] = field(default_factory=list)  # first 2xx per key, in order
    before_answer: Callable[[Delivery], Awaitable[None]] | None = None
    changed: trio.Event = field(default_factory=trio.Event)

    async def start(self, nursery: trio.Nursery) -> Receiver:
        listeners = await nursery.start(partial(trio.serve_tcp, self._connection, 0, host="127.0.0.1"))
        self.url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/hook"
        return self

    async def wait_accepted(self, count: int) -> None:
        while len(self.accepted) < count:
            await self.changed.wait()

    def _signal(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def _read(self, stream: trio.SocketStream) -> tuple[dict[str, str], bytes] | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[1:]
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
        length = int(headers.get("content-length", "0"))
        assert length <= MAX_BODY
        while len(body) < length:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return None
            body += chunk
        return headers, body

    async def _connection(self, stream: trio.SocketStream) -> None:
        try:
            async with stream:
                got = await self._read(stream)
                if got is None:
                    return
                headers, body = got
                expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
                delivery = Delivery(headers.get("idempotency-key", ""),
                                    hmac.compare_digest(expected, headers.get("x-northstard-signature", "")),
                                    json.loads(body))
                self.attempts.append(delivery)
                self._signal()
                answer = self.failures.pop(0) if self.failures else 200
                if answer == "hang":
                    await trio.sleep_forever()
                if self.before_answer is not None:
                    await self.before_answer(delivery)
                delivery.status = int(answer)
                if answer == 200 and delivery.key not in {d.key for d in self.accepted}:
                    self.accepted.append(delivery)
                    self._signal()
                await stream.send_all(f"HTTP/1.1 {answer} X\r\nContent-Length: 0\r\n"
                                      "Connection: close\r\n\r\n".encode())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
