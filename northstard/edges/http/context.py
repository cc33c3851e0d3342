"""What the web edge reads: the hub, the cache, the store path and the actors' status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from northstard.actors.backups import BackupState
from northstard.actors.cache import CacheClient
from northstard.actors.hub import Hub
from northstard.actors.source import SourceStats
from northstard.actors.supervisor import Supervisor
from northstard.actors.writer import WriterState
from northstard.config import SourceSection
from northstard.policy.auth import Authenticator
from northstard.status.alertfeed import AlertFeed
from northstard.status.grpc import GrpcHandle
from northstard.status.metrics import Metrics

__all__ = ["WebContext"]


@dataclass
class WebContext:
    hub: Hub
    cache: CacheClient
    db_path: Path
    supervisor: Supervisor
    sources: Mapping[str, SourceStats]
    sections: Mapping[str, SourceSection]
    metrics: Metrics
    server: Mapping[str, Any]
    max_rate_hz: float
    started_at: float
    writer: WriterState | None = None
    backups: BackupState | None = None
    auth: Authenticator = field(default_factory=Authenticator)  # no tokens: auth off
    limits: Mapping[str, Any] = field(default_factory=dict)  # the [limits] section; empty: none
    grpc: GrpcHandle | None = None  # the gRPC edge's status; None when it is off
    alerts: AlertFeed | None = None  # the alerts actor's feed; None: no alerts actor
