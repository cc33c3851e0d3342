"""What the web edge reads: the hub, the cache, the store path and the actors' status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..alertfeed import AlertFeed
from ..auth import Authenticator
from ..backups import BackupState
from ..cache import CacheClient
from ..config import SourceSection
from ..grpc_edge.state import GrpcHandle
from ..hub import Hub
from ..metrics import Metrics
from ..source import SourceStats
from ..supervisor import Supervisor
from ..writer import WriterState

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
