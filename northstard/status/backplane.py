"""Read-only status records of the backplane actors (for /api/health and /metrics)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from northstard.status.metrics import Metrics

__all__ = ["EdgeStatus", "PublisherStatus"]


class _Gauges:
    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.up = Gauge("northstard_backplane_up", "1 while Redis answers", registry=r)
        self.unpublished = Gauge(
            "northstard_backplane_unpublished",
            "Core: committed changes not yet in Redis (republished from SQLite on return)", registry=r)
        self.published = Counter("northstard_backplane_published",
                                 "Core: stream entries written to Redis", registry=r)
        self.lag_seq = Gauge("northstard_edge_lag_seq", "Edge: changes behind the core", registry=r)
        self.lag_ms = Gauge("northstard_edge_lag_ms",
                            "Edge: ms from the core's XADD to this edge's hub, last change", registry=r)
        self.core_up = Gauge("northstard_edge_core_up", "Edge: 1 while the core's heartbeat is seen",
                             registry=r)
        self.resyncs = Counter("northstard_edge_resyncs", "Edge: snapshots taken from Redis", registry=r)


@dataclass
class PublisherStatus:
    """The core's publisher: written only by ``run_backplane``."""

    redis: str = "connecting"  # "ok" | "unreachable" | "connecting"
    unpublished: int = 0
    published: int = 0
    error: str | None = None
    gauges: _Gauges | None = None

    @classmethod
    def with_metrics(cls, metrics: Metrics) -> PublisherStatus:
        return cls(gauges=_Gauges(metrics))

    def document(self) -> dict[str, object]:
        body: dict[str, object] = {"role": "core", "redis": self.redis, "unpublished": self.unpublished,
                                "published": self.published}
        if self.error:
            body["error"] = self.error
        return body

    def set(self, redis: str, error: str | None = None) -> None:
        self.redis, self.error = redis, error
        if self.gauges is not None:
            self.gauges.up.set(1 if redis == "ok" else 0)

    def count(self, unpublished: int, published: int = 0) -> None:
        self.unpublished = unpublished
        self.published += published
        if self.gauges is not None:
            self.gauges.unpublished.set(unpublished)
            self.gauges.published.inc(published)


@dataclass
class EdgeStatus:
    """An edge's follower: written only by ``run_follower``."""

    redis: str = "connecting"
    core: str = "unknown"  # "ok" | "unreachable"
    core_url: str = ""
    seq: int = 0
    core_seq: int = 0
    lag_ms: int = 0
    resyncs: int = 0
    error: str | None = None
    gauges: _Gauges | None = None

    @classmethod
    def with_metrics(cls, metrics: Metrics, core_url: str = "") -> EdgeStatus:
        return cls(core_url=core_url, gauges=_Gauges(metrics))

    @property
    def lag_seq(self) -> int:
        return max(0, self.core_seq - self.seq)

    def document(self) -> dict[str, object]:
        body: dict[str, object] = {"role": "edge", "redis": self.redis, "core": self.core,
                                "lag_seq": self.lag_seq, "lag_ms": self.lag_ms, "resyncs": self.resyncs}
        if self.core_url:
            body["core_url"] = self.core_url
        if self.error:
            body["error"] = self.error
        return body

    def set(self, redis: str | None = None, core: str | None = None, error: str | None = None) -> None:
        self.redis = redis or self.redis
        self.core = core or self.core
        self.error = error
        if self.gauges is not None:
            self.gauges.up.set(1 if self.redis == "ok" else 0)
            self.gauges.core_up.set(1 if self.core == "ok" else 0)

    def applied(self, seq: int, lag_ms: int | None = None, resync: bool = False) -> None:
        self.seq = seq
        self.core_seq = max(self.core_seq, seq)
        if lag_ms is not None:
            self.lag_ms = max(0, lag_ms)
        if resync:
            self.resyncs += 1
        if self.gauges is not None:
            self.gauges.lag_seq.set(self.lag_seq)
            self.gauges.lag_ms.set(self.lag_ms)
            if resync:
                self.gauges.resyncs.inc()
