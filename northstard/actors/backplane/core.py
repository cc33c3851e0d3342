"""The core daemon's side of the backplane: one more output of the writer, and its actor."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from northstard.actors.backplane.client import read_password, read_tls
from northstard.actors.backplane.publisher import Outbox, run_backplane
from northstard.actors.table import Actor
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

    def actor(self, db_path: Path) -> Actor:
        """Its row in the daemon's table: a failing publisher never stops the core (not core)."""
        return Actor("backplane", partial(run_backplane, self.settings, self.outbox, self.receive,
                                          self.status, db_path), core=False)


def core_publisher(config: Config, metrics: Metrics, epoch: str, seq: int,
                   doc: Doc | None) -> CorePublisher | None:
    """The publisher when ``[backplane] url`` is set; None otherwise."""
    section = config.settings.backplane
    settings = BackplaneSettings.from_config(section, config.settings.hub.ring_size,
                                             read_password(section.password_file),
                                             read_tls(section.url, section.ca_file))
    if not settings.url:
        return None
    send, receive = trio.open_memory_channel[Change](CHANNEL)
    outbox = Outbox(Head(epoch, seq, 0, dumps(doc or {})), settings.maxlen)
    return CorePublisher(settings, outbox, PublisherStatus.with_metrics(metrics), send, receive)
