"""What the web edge reads: the hub, the cache, the store path, and the daemon's status as a record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from northstard.actors.cache import CacheClient
from northstard.actors.hub import Hub
from northstard.actors.source import SourceStats
from northstard.config import SourceSection
from northstard.policy.auth import Authenticator
from northstard.policy.limits import LimitSettings
from northstard.settings import ServerSection
from northstard.status.alertfeed import AlertFeed
from northstard.status.backplane import EdgeStatus, PublisherStatus
from northstard.status.daemon import StatusOf
from northstard.status.metrics import Metrics

__all__ = ["WebContext"]


@dataclass
class WebContext:
    hub: Hub
    cache: CacheClient
    db_path: Path
    status: StatusOf  # /api/health and /metrics read this record, not the actors
    sources: Mapping[str, SourceStats]
    sections: Mapping[str, SourceSection]
    metrics: Metrics
    server: ServerSection
    max_rate_hz: float
    started_at: float
    auth: Authenticator = field(default_factory=Authenticator)  # no tokens: auth off
    limits: LimitSettings = field(default_factory=LimitSettings)  # [limits]; default: the schema's
    backplane: PublisherStatus | EdgeStatus | None = None  # [backplane]: the core's publisher, or an edge
    alerts: AlertFeed | None = None  # the alerts actor's feed; None: no alerts actor
