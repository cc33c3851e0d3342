"""Fan-out on raw sockets: one encoded frame per message, one non-blocking send per client.

    hub ──▶ Broadcaster.run (one task, one hub Subscription for all its clients)
              frame = encode(message)                  # once, header included
              for peer in live: peer.send(frame)       # non-blocking send, no task wake-up
                                                       # (in C, split over threads: sendmany.py)

A peer whose socket would block (EAGAIN, or a partial write) leaves ``live``:
it keeps the unsent rest of the frame and its hub position, and one task
(``Peer._drain``) finishes the frame when the socket is writable, then sends
``hub.catch_up(position)`` (a merged delta or a snapshot) until the peer is
current and rejoins ``live``. Memory per slow client stays one frame. A
socket that accepts nothing for ``blocked_close_after_s`` gets the
transport's goodbye (WebSocket close 4008) and is closed; its client resumes
from its last position on reconnect.

Peers are compared to the broadcast position by identity: every peer that
took a broadcast holds the same ``Position`` object, so the hot loop does one
``is`` test per peer; anyone else (just connected, resumed) takes the slow
path once through ``hub.catch_up``.

A peer is in one ``PeerState`` at a time, and ``Peer._become`` is the one
place it changes: it keeps the broadcaster's ``synced`` and ``behind``
collections in step (through ``Broadcaster.add`` and ``remove``, which touch
only those) and starts the drain task. The broadcaster writes no field of a
peer; a peer writes none of the broadcaster's.

    NEW ──▶ SYNCED ◀──▶ BEHIND        (live: they take each broadcast)
     │        │           │
     └────────┴─────┬─────┘
                    ▼
                DRAINING ──▶ SYNCED / BEHIND  (all owed sent, caught up)
     any ──▶ CLOSING ──▶ FINISHED ◀── any    (goodbye sent / connection gone)
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import structlog
import trio

from northstard.actors.hub import Hub, HubClosed, Message, Position
from northstard.edges.stream.sendmany import Batch, Sender
from northstard.status.metrics import Metrics

__all__ = ["Broadcaster", "Peer", "PeerState", "send_all"]

log = structlog.get_logger("northstard.web")

SEND_ALL_S = 10.0
REPLY_LIMIT = 65536  # bytes of replies a client may have queued while it does not read
FRAMES_KEPT = 64  # encoded frames kept per hub position; past it (resumes from many places) not kept


async def send_all(sock: socket.socket, data: bytes) -> bool:
    """Write all of ``data`` (a response head); False if the client is gone or takes 10 s."""
    view = memoryview(data)
    with trio.move_on_after(SEND_ALL_S):
        while view:
            try:
                view = view[sock.send(view):]
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
            except OSError:
                return False
        return True
    return False


class PeerState(enum.Enum):
    NEW = "new"  # connected; its first message (snapshot or what it missed) not yet sent
    SYNCED = "synced"  # live, at ``broadcaster.at``: moved by every broadcast (``broadcaster.synced``)
    BEHIND = "behind"  # live elsewhere: caught up one by one at the next broadcast (``.behind``)
    DRAINING = "draining"  # blocked: its drain task sends what is owed, then catches it up
    CLOSING = "closing"  # its goodbye is queued; closed once sent and answered (or at the deadline)
    FINISHED = "finished"  # gone: the connection ended or the close is done


LIVE = (PeerState.SYNCED, PeerState.BEHIND)
OWING = (PeerState.DRAINING, PeerState.CLOSING)  # a drain task sends the backlog


class Peer:
    """One streaming client: its socket, its position and, only while blocked, what it is owed."""

    expects_close_reply: ClassVar[bool] = False

    def __init__(self, sock: socket.socket, broadcaster: Broadcaster,
                 position: Position | None) -> None:
        self.sock = sock
        self.send = sock.send
        # The descriptor the broadcast's C loop writes to (sendmany.py): -1 when ``send`` is not
        # the socket's own (it must then be called). Peers leave ``live`` before their socket closes.
        self.fd = sock.fileno() if type(sock) is socket.socket else -1  # tls.TlsSocket encrypts in send
        self.broadcaster = broadcaster
        self._position = position  # where the client is, unless SYNCED (then ``broadcaster.at``)
        self.state = PeerState.NEW
        self.backlog = bytearray()
        self.replies = 0
        self.close_deadline = 0.0
        self.last_progress = 0.0
        self.finished = trio.Event()
        self.reply_seen = trio.Event()
        self.nursery: trio.Nursery | None = None
        self._waiting: trio.CancelScope | None = None

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.state.value} at {self.position} "
                f"backlog={len(self.backlog)}>")

    @property
    def position(self) -> Position | None:
        """Where the client is in the stream (a synced peer moves with every broadcast)."""
        return self.broadcaster.at if self.state is PeerState.SYNCED else self._position

    @position.setter
    def position(self, position: Position | None) -> None:
        if self.state is PeerState.SYNCED:  # still live, but no longer moved by the broadcasts
            self._become(PeerState.BEHIND)
        self._position = position

    @property
    def draining(self) -> bool:
        """A drain task owns the socket's writes (blocked, or saying goodbye)."""
        return self.state in OWING

    @property
    def closing(self) -> bool:
        return self.state is PeerState.CLOSING

    def _become(self, state: PeerState) -> None:
        """The one place a peer changes state; the broadcaster's collections follow."""
        old = self.state
        if old is PeerState.FINISHED:
            return
        if old is PeerState.SYNCED:
            self._position = self.broadcaster.at  # where the broadcasts left it
        if old in LIVE:
            self.broadcaster.remove(self, old)
        self.state = state
        if state in LIVE:
            self.broadcaster.add(self, state)
        elif state in OWING and old not in OWING and self.nursery is not None:
            self.nursery.start_soon(self._drain)
        elif state is PeerState.FINISHED:
            self.finished.set()

    def start(self, nursery: trio.Nursery) -> None:
        """Run in ``nursery`` from now on; a peer refused before it started drains its goodbye."""
        self.nursery = nursery
        if self.state in OWING:
            nursery.start_soon(self._drain)

    def enlist(self) -> None:
        """Current and owing nothing: take the broadcasts from now on."""
        synced = self._position is self.broadcaster.at
        self._become(PeerState.SYNCED if synced else PeerState.BEHIND)

    def fall_behind(self) -> None:
        """A broadcast that does not start where this synced peer is: catch it up one by one."""
        if self.state is PeerState.SYNCED:
            self._become(PeerState.BEHIND)

    def rejoin(self) -> None:
        """Leave the broadcasts and start again from ``position`` (a resume), unless draining."""
        if self.state in LIVE:
            self._become(PeerState.NEW)
            self.broadcaster.join(self)

    def goodbye(self, code: int, reason: str) -> bytes:
        """The bytes that end the stream (a close frame, the last chunk)."""
        return b""

    def write(self, data: bytes) -> None:
        """Send now if nothing is pending; else queue after what is (bounded)."""
        if self.state is PeerState.CLOSING or self.state is PeerState.FINISHED:
            return
        if self.state is not PeerState.DRAINING:
            self.after_send(data, self.send_some(data))
            return
        self.replies += len(data)
        if self.replies > REPLY_LIMIT:
            self.close_soon(1008, "too many requests while not reading")
            return
        self.backlog += data

    def send_some(self, data: bytes | bytearray) -> int:
        try:
            return self.send(data)
        except BlockingIOError:
            return 0
        except OSError:
            return -1

    def after_send(self, frame: bytes, sent: int) -> None:
        """After a send of ``frame`` that took ``sent`` bytes (-1: the connection is gone)."""
        if sent < 0:
            self.finish()
        elif sent < len(frame):
            self.backlog += memoryview(frame)[sent:]
            self.last_progress = trio.current_time()
            self.start_drain()

    def finish(self) -> None:
        """The connection is gone or the close is done: no more sends, the peer ends."""
        self._become(PeerState.FINISHED)

    def close_soon(self, code: int, reason: str) -> None:
        """Queue the goodbye after the frame in flight; close once it is out (bounded)."""
        if self.state is PeerState.CLOSING or self.state is PeerState.FINISHED:
            return
        self.close_deadline = trio.current_time() + self.broadcaster.close_grace_s
        self.backlog += self.goodbye(code, reason)
        if self._waiting is not None:  # blocked: the close deadline replaces the blocked one
            self._waiting.deadline = min(self._waiting.deadline, self.close_deadline)
        self._become(PeerState.CLOSING)

    def start_drain(self) -> None:
        """The socket would block: leave the broadcasts; a task sends what is owed."""
        if self.state is PeerState.NEW or self.state in LIVE:
            self._become(PeerState.DRAINING)

    def catch_up(self, queue: bool = False) -> bool:
        """Send (or with ``queue``, queue) what brings the client to now; False if it was current."""
        broadcaster = self.broadcaster
        message = broadcaster.hub.catch_up(self.position)
        if message is None:
            if self.position == broadcaster.at:
                self.position = broadcaster.at
            return False
        self.position = broadcaster.at if message.position == broadcaster.at else message.position
        broadcaster.count(message.kind, 1)
        frame = broadcaster.frame(message)
        if queue:
            self.backlog += frame
        else:
            self.after_send(frame, self.send_some(frame))
        return True

    async def _drain(self) -> None:
        """Finish what is owed, catch up from the position, then rejoin ``live`` (or close)."""
        while self.state is not PeerState.FINISHED:
            if self.backlog:
                await self._flush_backlog()
            elif self.state is PeerState.CLOSING:
                await self._linger()
            elif not self.catch_up(queue=True):
                self.replies = 0
                self.enlist()
                return

    async def _flush_backlog(self) -> None:
        sent = self.send_some(self.backlog)
        if sent < 0:
            self.finish()
            return
        if sent:
            del self.backlog[:sent]
            self.last_progress = trio.current_time()
        if self.backlog:
            await self._wait_writable()

    async def _wait_writable(self) -> None:
        limit = self.broadcaster.blocked_close_after_s
        deadline = self.close_deadline if self.closing else self.last_progress + limit
        with trio.move_on_at(deadline) as waiting:
            self._waiting = waiting
            try:
                await trio.lowlevel.wait_writable(self.sock)
            finally:
                self._waiting = None
        if not waiting.cancelled_caught:
            return
        if self.state is PeerState.CLOSING:
            self.finish()
        else:
            log.info("closing a client that stopped reading", transport=self.broadcaster.transport,
                     seconds=limit, position=str(self.position))
            self.close_soon(4008, f"not reading for {limit:g} s; reconnect to resume")

    async def _linger(self) -> None:
        """Everything is sent; give the client until the deadline to answer the close."""
        if self.expects_close_reply:
            with trio.move_on_at(self.close_deadline):
                await self.reply_seen.wait()
        self.finish()


class Broadcaster:
    """The clients of one transport and the task that sends them each published message."""

    def __init__(self, hub: Hub, transport: str, encode: Callable[[Message], bytes],
                 metrics: Metrics, *, max_rate_hz: float = 0.0,
                 blocked_close_after_s: float = 30.0, close_grace_s: float = 3.0,
                 send_threads: int = 1) -> None:
        self.hub = hub
        self.transport = transport
        self.encode = encode
        self.metrics = metrics
        self.max_rate_hz = max_rate_hz
        self.blocked_close_after_s = blocked_close_after_s
        self.close_grace_s = close_grace_s
        self.peers: set[Peer] = set()
        self.synced: dict[Peer, None] = {}  # live and at ``at``: the broadcast's batch
        self.behind: set[Peer] = set()  # live elsewhere (joined while the hub was ahead)
        self._batch: Batch[Peer] | None = None  # ``synced`` split for the sender, until it changes
        self.at = hub.position
        self.quiet_since = 0.0
        self._frames: dict[str, bytes] = {}
        self._frames_at = self.at
        self._counters: dict[str, Any] = {}
        self.sender = Sender(send_threads)

    def __repr__(self) -> str:
        return (f"<Broadcaster {self.transport} at {self.at} peers={len(self.peers)} "
                f"synced={len(self.synced)} behind={len(self.behind)}>")

    @property
    def live(self) -> set[Peer]:
        """The peers that get each broadcast as it happens (a copy)."""
        return set(self.synced) | self.behind

    def add(self, peer: Peer, state: PeerState) -> None:
        """``peer`` became live (SYNCED or BEHIND): it takes the broadcasts. ``Peer._become`` calls it."""
        if state is PeerState.SYNCED:
            self.synced[peer] = None
            self._batch = None
        else:
            self.behind.add(peer)

    def remove(self, peer: Peer, state: PeerState) -> None:
        """``peer`` left ``state`` (SYNCED or BEHIND). Only ``Peer._become`` calls it."""
        if state is PeerState.SYNCED:
            del self.synced[peer]
            self._batch = None
        else:
            self.behind.discard(peer)

    def frame(self, message: Message) -> bytes:
        """``message`` encoded for the wire, once per distinct text at each hub position.

        At most ``FRAMES_KEPT`` frames are kept until the hub moves: past that
        (clients resuming from many positions) a frame is encoded and not kept.
        """
        if self._frames_at != self.hub.position:
            self._frames.clear()
            self._frames_at = self.hub.position
        frame = self._frames.get(message.text)
        if frame is None:
            frame = self.encode(message)
            if len(self._frames) < FRAMES_KEPT:
                self._frames[message.text] = frame
        return frame

    def count(self, kind: str, sent: int) -> None:
        counter = self._counters.get(kind)
        if counter is None:
            counter = self._counters[kind] = self.metrics.messages.labels(self.transport, kind)
        counter.inc(sent)

    async def serve(self, peer: Peer, read: Callable[[], Awaitable[None]],
                    joined: Callable[[], None] | None = None) -> None:
        """Run one connected peer until it is finished, then close its socket.

        ``read`` returns at the client's end of stream; ``joined`` runs once the
        peer had its first message (to handle bytes that came with the request).
        """
        self.peers.add(peer)
        self.hub.clients[self.transport] += 1
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read, peer, read)
                peer.start(nursery)  # refused after the upgrade: only the goodbye is owed
                if peer.state is PeerState.NEW:
                    self.join(peer)
                if joined is not None:
                    joined()
                await peer.finished.wait()
                nursery.cancel_scope.cancel()
        finally:
            self.peers.discard(peer)
            peer.finish()
            self.hub.clients[self.transport] -= 1
            trio.lowlevel.notify_closing(peer.sock)
            peer.sock.close()

    @staticmethod
    async def _read(peer: Peer, read: Callable[[], Awaitable[None]]) -> None:
        """The peer's reader returns at end of stream: the peer is gone."""
        try:
            await read()
        finally:
            peer.finish()

    def join(self, peer: Peer) -> None:
        """A new peer: its first message (snapshot, or what it missed), then the broadcasts."""
        if self.hub.closed:
            peer.close_soon(1001, "server shutting down")
            return
        peer.catch_up()
        if peer.state is PeerState.NEW:
            peer.enlist()

    def publish(self, message: Message, before: Position) -> None:
        """Send ``message`` (which moves clients at ``before`` to now) to every live peer.

        The synced peers are at ``before`` (the previous broadcast): they move by
        ``at`` changing, and get the frame in one ``sender.send`` of the cached
        batch. The peers behind (and all of them, should ``before`` not be where
        they are) catch up one by one.
        """
        if before is not self.at:
            for peer in list(self.synced):
                peer.fall_behind()
        self.at = message.position
        frame = self.frame(message)
        batch = self._batch
        if batch is None:
            batch = self._batch = Batch(self.synced)
        stalled = self.sender.send(batch, frame)
        self.count(message.kind, len(batch))
        for peer, sent in stalled:
            peer.after_send(frame, sent)
        for peer in list(self.behind):
            peer.catch_up()
            if peer.state is PeerState.BEHIND:  # still live: synced from now on if it is current
                peer.enlist()
        self.quiet_since = trio.current_time()

    def offer(self, frame: bytes) -> None:
        """Send ``frame`` (a ping, a keep-alive) to every live peer; it moves no position."""
        for peer, sent in self.sender.send(Batch(self.live), frame):
            peer.after_send(frame, sent)

    def close_all(self, code: int, reason: str) -> None:
        for peer in list(self.peers):
            peer.close_soon(code, reason)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Broadcast every message the hub publishes; at its close, say goodbye to everyone."""
        subscription = self.hub.subscribe(self.transport, self.at, self.max_rate_hz)
        task_status.started()
        try:
            while True:
                before = subscription.position
                try:
                    message = await subscription.next_message()
                except HubClosed:
                    self.close_all(1001, "server shutting down")
                    return
                self.publish(message, before if before is not None else self.at)
        finally:
            self.sender.close()

    async def heartbeat(self, frame: bytes, interval: float, quiet_only: bool) -> None:
        """Every ``interval`` s, ``frame`` to the live peers (only after a quiet interval)."""
        while True:
            await trio.sleep(interval)
            if not quiet_only or trio.current_time() - self.quiet_since >= interval:
                self.offer(frame)
