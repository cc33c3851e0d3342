"""Listening sockets passed by systemd (socket activation, the ``sd_listen_fds(3)`` protocol).

systemd (or ``systemd-socket-activate``) opens the listening sockets, and
starts the daemon with them as descriptors 3, 4, ... and three variables:

    LISTEN_PID=<our pid>  LISTEN_FDS=<how many>  LISTEN_FDNAMES=http:grpc  (optional)

``parse`` is the pure part: which descriptors are ours and their names.
``take_sockets`` reads the variables once, removes them from the environment
(so a child process never takes them for its own) and adopts the descriptors
as ``socket.socket`` objects. A socket unit's ``FileDescriptorName=`` sets a
name; without one, systemd names it after the unit and
``systemd-socket-activate`` says ``unknown``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

from northstard.errors import ConfigError

__all__ = ["LISTEN_FDS_START", "Passed", "http_sockets", "parse", "passed_hosts", "take_sockets"]

LISTEN_FDS_START = 3
VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
UNNAMED = "unknown"


@dataclass(frozen=True)
class Passed:
    """One descriptor systemd passed: its number and its name."""

    fd: int
    name: str


def _number(environ: Mapping[str, str], key: str) -> int:
    raw = environ[key]
    if not raw.isdigit():
        raise ConfigError(key, f"expected a number, got {raw!r}")
    return int(raw)


def parse(environ: Mapping[str, str], pid: int) -> list[Passed]:
    """The descriptors passed to process ``pid``; [] when there are none or they are another's."""
    if "LISTEN_PID" not in environ or "LISTEN_FDS" not in environ:
        return []
    if _number(environ, "LISTEN_PID") != pid:
        return []
    count = _number(environ, "LISTEN_FDS")
    names = environ["LISTEN_FDNAMES"].split(":") if environ.get("LISTEN_FDNAMES") else []
    if names and len(names) != count:
        raise ConfigError("LISTEN_FDNAMES", f"{len(names)} names for {count} descriptors (LISTEN_FDS)")
    names = names or [UNNAMED] * count
    return [Passed(LISTEN_FDS_START + i, name) for i, name in enumerate(names)]


def _adopt(passed: Passed) -> socket.socket:
    try:
        sock = socket.socket(fileno=passed.fd)
    except OSError as exc:
        raise ConfigError("LISTEN_FDS", f"descriptor {passed.fd} is not a socket: {exc.strerror}") from None
    os.set_inheritable(passed.fd, False)
    listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    if sock.type != socket.SOCK_STREAM or not listening:
        sock.detach()
        raise ConfigError("LISTEN_FDS", f"descriptor {passed.fd} is not a listening stream socket")
    return sock


def take_sockets(
    environ: MutableMapping[str, str] | None = None, pid: int | None = None
) -> list[tuple[str, socket.socket]]:
    """``(name, socket)`` for each socket passed to this process; the variables are removed."""
    environ = os.environ if environ is None else environ
    try:
        passed = parse(environ, os.getpid() if pid is None else pid)
    finally:
        for key in VARIABLES:
            environ.pop(key, None)
    return [(p.name, _adopt(p)) for p in passed]


def passed_hosts(environ: Mapping[str, str] | None = None, pid: int | None = None) -> list[str]:
    """The local addresses of the sockets passed to this process, without taking them
    (``unix:`` for a unix socket): what the exposure check looks at before ``take_sockets``."""
    environ = os.environ if environ is None else environ
    hosts = []
    for passed in parse(environ, os.getpid() if pid is None else pid):
        try:
            with socket.socket(fileno=os.dup(passed.fd)) as sock:
                listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                address = sock.getsockname()
        except OSError:
            continue  # take_sockets names the problem
        if not listening:
            continue  # likewise
        hosts.append(str(address[0]) if isinstance(address, tuple) else "unix:")
    return hosts


def http_sockets(named: list[tuple[str, socket.socket]]) -> list[socket.socket]:
    """The sockets named ``http``; when none is, every socket not named ``grpc``."""
    chosen = [sock for name, sock in named if name == "http"]
    return chosen or [sock for name, sock in named if name != "grpc"]
