"""systemd's notify protocol, in a few lines: READY, STATUS, WATCHDOG, STOPPING.

Messages go as one datagram to the unix socket named by ``$NOTIFY_SOCKET``
(a leading ``@`` names the abstract namespace). Without that variable every
call is a no-op, so the daemon runs the same anywhere.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from northstard.actors.hub import Hub
    from northstard.actors.supervisor import Supervisor

__all__ = ["Notifier", "run_notifier", "status_line", "watchdog_interval"]


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address
        self._sock: socket.socket | None = None

    def __repr__(self) -> str:
        return f"<Notifier {'off' if not self.address else 'on'}>"

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, **fields: str) -> bool:
        """Send ``KEY=value`` lines (``READY="1"``, ``STATUS="..."``); False if it could not."""
        if not self.address:
            return False
        payload = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY="1", STATUS=status)

    def status(self, status: str) -> bool:
        return self.send(STATUS=status)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG="1")

    def stopping(self) -> bool:
        return self.send(STOPPING="1", STATUS="stopping")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds (when it is meant for this process), else None."""
    environ = os.environ if environ is None else environ
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


STATUS_EVERY_S = 5.0


def status_line(hub: Hub) -> str:
    """The headline figures for ``systemctl status``."""
    doc = hub.doc
    clients = sum(hub.clients.values())
    net = doc.get("net_pnl", "?")
    return f"net P&L {net} {doc.get('currency', '')} · seq {hub.seq} · {clients} clients"


async def run_notifier(
    notifier: Notifier, hub: Hub, supervisor: Supervisor, stopping: trio.Event
) -> None:
    """READY once serving, STATUS with the headline figures, WATCHDOG only while the
    core actors are healthy, STOPPING on shutdown. Returns at once without systemd."""
    if not notifier.enabled:
        return
    watchdog = watchdog_interval()
    step = min(STATUS_EVERY_S, watchdog) if watchdog else STATUS_EVERY_S
    notifier.ready(status_line(hub))
    try:
        while not stopping.is_set():
            with trio.move_on_after(step):
                await stopping.wait()
            if watchdog and supervisor.healthy():
                notifier.watchdog()
            notifier.status(status_line(hub))
    finally:
        notifier.stopping()
        notifier.close()
