"""The one loopback rule, for listen addresses (auth, gRPC TLS warning) and peers (limits)."""

from __future__ import annotations

import pytest

from northstard.core.hosts import is_loopback


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.9.9.9", "::1", "[::1]", "::ffff:127.0.0.1", "localhost", "LocalHost.",
    "unix:/run/northstard.sock", "/run/northstard.sock",
])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", [
    "", "0.0.0.0", "::", "[::]", "10.0.0.1", "2001:db8::1", "::ffff:10.0.0.1", "example.com",
    "localhost.example.com", "garbage",
])
def test_hosts_other_machines_reach(host: str) -> None:
    assert not is_loopback(host)
