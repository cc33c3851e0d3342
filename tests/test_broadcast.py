"""The fan-out's peer states: one state per peer, and the broadcaster's sets always agree with it."""

from __future__ import annotations

import socket

import trio
import trio.testing
from test_fastws import new_hub, publish

from northstard.edges.stream.broadcast import Broadcaster, Peer, PeerState
from northstard.status.metrics import Metrics


def agrees(broadcaster: Broadcaster, peer: Peer) -> bool:
    """The broadcaster holds ``peer`` exactly where its state says."""
    return ((peer in broadcaster.synced) == (peer.state is PeerState.SYNCED)
            and (peer in broadcaster.behind) == (peer.state is PeerState.BEHIND))


def read_all(sock: socket.socket) -> int:
    got = 0
    while True:
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            return got
        if not data:
            return got
        got += len(data)


async def test_a_peer_moves_through_its_states_and_the_broadcaster_follows(
    nursery: trio.Nursery,
) -> None:
    hub = new_hub()
    broadcaster = Broadcaster(hub, "ws", lambda message: message.text.encode(), Metrics())
    await nursery.start(broadcaster.run)
    ours, theirs = socket.socketpair()
    for sock in (ours, theirs):
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    peer = Peer(ours, broadcaster, None)
    assert peer.state is PeerState.NEW and agrees(broadcaster, peer)
    nursery.start_soon(broadcaster.serve, peer, trio.sleep_forever)
    await trio.testing.wait_all_tasks_blocked()
    assert peer.state is PeerState.SYNCED and agrees(broadcaster, peer)  # its snapshot sent
    assert "synced" in repr(peer)

    for _ in range(200):  # the client does not read: its socket fills up
        publish(hub, pad=200)
        await trio.testing.wait_all_tasks_blocked()
        assert agrees(broadcaster, peer)
        if peer.state is PeerState.DRAINING:
            break
    assert peer.state is PeerState.DRAINING and peer.backlog and peer not in broadcaster.live

    while peer.state is PeerState.DRAINING:  # the client reads again: the peer catches up
        read_all(theirs)
        await trio.testing.wait_all_tasks_blocked()
        assert agrees(broadcaster, peer)
    assert peer.state in (PeerState.SYNCED, PeerState.BEHIND) and peer.position == hub.position
    publish(hub)
    await trio.testing.wait_all_tasks_blocked()
    assert peer.state is PeerState.SYNCED and agrees(broadcaster, peer)

    peer.position = hub.position  # a resume to where it is: no longer moved by the broadcasts
    assert peer.state is PeerState.BEHIND and agrees(broadcaster, peer)
    peer.rejoin()
    assert peer.state is PeerState.SYNCED and agrees(broadcaster, peer)

    peer.close_soon(1001, "bye")
    assert peer.state is PeerState.CLOSING and agrees(broadcaster, peer)
    while not peer.finished.is_set():
        read_all(theirs)
        await trio.testing.wait_all_tasks_blocked()
    assert peer.state is PeerState.FINISHED and agrees(broadcaster, peer)
    assert peer not in broadcaster.peers
    peer.close_soon(1001, "again")  # a finished peer stays finished
    assert peer.state is PeerState.FINISHED
    theirs.close()
    hub.close()
