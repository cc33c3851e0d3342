"""Is this host loopback? The one answer for listeners and peers. Pure, no I/O."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]

LOCAL_NAMES = ("localhost", "localhost.")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ``::1`` (bracketed or not, or ``::ffff:127.x``), ``localhost``, a Unix socket path.

    An empty host is not loopback: as a listen address it means every interface.
    A Unix socket peer has no address; a caller that sees one decides for itself.
    """
    if host.lower() in LOCAL_NAMES or host.startswith(("unix:", "/")):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))
