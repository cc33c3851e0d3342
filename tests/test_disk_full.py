"""A full disk: the stream stays alive, nothing is dropped, persisting resumes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from trio_websocket import open_websocket_url

from clients import ws_url


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path) -> Path:
    filler = mount / "filler"
    # unbuffered: a partial last write leaves nothing for close() to flush (and fail on)
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


async def test_a_full_disk_keeps_the_stream_and_loses_nothing(
    start_daemon: Any, small_disk: Path
) -> None:
    db = small_disk / "northstard.db"
    daemon = await start_daemon(
        {"demo": {"interval_s": 0.02, "seed": 4}}, storage={"path": str(db)}
    )
    epoch = daemon.hub.epoch
    async with open_websocket_url(ws_url(daemon.url)) as ws:
        assert json.loads(await ws.get_message())["epoch"] == epoch
        filler = fill(small_disk)
        while (message := json.loads(await ws.get_message()))["epoch"] == epoch:
            pass
        assert message["type"] == "snapshot" and message["epoch"] == f"{epoch}~unsaved"
        unsaved = message["seq"]
        for _ in range(5):  # the stream stays alive while nothing can be saved
            message = json.loads(await ws.get_message())
            assert message["epoch"] == f"{epoch}~unsaved" and message["seq"] > unsaved
        filler.unlink()
        while (message := json.loads(await ws.get_message()))["epoch"] != epoch:
            pass
        assert message["type"] == "snapshot" and message["seq"] > unsaved
        last = message["seq"]
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        seqs = [s for (s,) in conn.execute("SELECT seq FROM deltas WHERE epoch = ? ORDER BY seq",
                                           (epoch,))]
    assert seqs[: last] == list(range(1, last + 1)), "a change was dropped while the disk was full"
