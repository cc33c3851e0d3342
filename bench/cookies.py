"""The cost of the session-cookie check (issue 12): µs per call for a valid cookie, malformed
ones (a 5,000-digit expiry, a non-ASCII MAC) and a revoked one with the revocation list full,
and the size of that full list on disk. Prints JSON.

    python bench/cookies.py [--calls N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from northstard.policy.auth import Authenticator, TokenEntry, digest
from northstard.policy.revoked import MAX_REVOKED, Revoked, load_revoked, write_pending

TOKENS = [f"nsd_bench-token-{i}" for i in range(20)]


def per_call_us(auth: Authenticator, value: str, calls: int, now: float) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        auth.check_session(value, now)
    return round((time.perf_counter() - started) / calls * 1e6, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    calls = parser.parse_args().calls
    now = time.time()
    revoked = Revoked()
    auth = Authenticator([TokenEntry(digest(t)) for t in TOKENS], b"k" * 32, revoked=revoked)
    entry = auth.tokens[-1]
    valid = auth.session(entry, now)
    malformed = {
        "huge_expiry": f"{entry.id}.{'9' * 5000}.{'a' * 64}",
        "non_ascii_mac": f"{entry.id}.{int(now) + 60}.{'é' * 64}",
    }
    for i in range(MAX_REVOKED - 1):  # the list one short of full, then the cookie itself
        revoked.add(f"{i:064x}", int(now) + 3600, now)
    gone = auth.session(auth.tokens[0], now - 1)
    assert auth.revoke(gone, now) and len(revoked) == MAX_REVOKED
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "revoked"
        pending = revoked.take_pending()
        assert pending is not None
        write_pending(path, pending)
        size = path.stat().st_size
        started = time.perf_counter()
        load_revoked(path, now)
        load_ms = round((time.perf_counter() - started) * 1000, 2)
    figures = {
        "tokens": len(TOKENS),
        "valid_us": per_call_us(auth, valid, calls, now),
        **{f"{name}_us": per_call_us(auth, value, calls, now) for name, value in malformed.items()},
        "revoked_us": per_call_us(auth, gone, calls, now),
        "revoked_entries": len(revoked),
        "revoked_file_bytes": size,
        "revoked_load_ms": load_ms,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
