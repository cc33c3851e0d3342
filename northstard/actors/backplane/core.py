"""The core daemon's side of the backplane: one more output of the writer, and its actor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trio

from northstard.actors.backplane.client import read_password
from northstard.actors.backplane.publisher import Outbox, run_backplane
from northstard.actors.supervisor import Supervisor
from northstard.config import Config
from northstard.core.backplane.settings import BackplaneSettings
from northstard.core.backplane.wire import Head
from northstard.core.change import Change, dumps
from northstard.core.mergepatch import Doc
from northstard.status.backplane import PublisherStatus
from northstard.status.metrics import Metrics

__all__ = ["CorePublisher", "core_publisher"]

CHANNEL = 1024  # the writer's output to the publisher, drained at once (never blocks the writer)


@dataclass
class CorePublisher:
    settings: BackplaneSettings
    outbox: Outbox
    status: PublisherStatus
    send: trio.MemorySendChannel[Change]
    receive: trio.MemoryReceiveChannel[Change]

    async def start(self, supervisor: Supervisor, nursery: trio.Nursery, db_path: Path) -> None:
        """A failing publisher never stops the core (``core=False``)."""
        await supervisor.start(nursery, "backplane", run_backplane, self.settings, self.outbox,
                               self.receive, self.status, db_path, core=False)


def core_publisher(config: Config, metrics: Metrics, epoch: str, seq: int,
                   doc: Doc | None) -> CorePublisher | None:
    """The publisher when ``[backplane] url`` is set; None otherwise."""
    section = config.sections["backplane"]
    settings = BackplaneSettings.from_config(section, config.sections["hub"]["ring_size"],
                                             read_password(section["password_file"]))
    if not settings.url:
        return None
    send, receive = trio.open_memory_channel[Change](CHANNEL)
    outbox = Outbox(Head(epoch, seq, 0, dumps(doc or {})), settings.maxlen)
    return CorePublisher(settings, outbox, PublisherStatus.with_metrics(metrics), send, receive)
