"""Prometheus metrics of one daemon (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.changes = Counter("northstard_changes", "Changes committed and published", registry=r)
        self.messages = Counter(
            "northstard_messages_sent", "Messages sent to clients", ["transport", "type"], registry=r
        )
        self.clients = Gauge(
            "northstard_clients", "Connected streaming clients", ["transport"], registry=r
        )
        self.seq = Gauge("northstard_seq", "Sequence number of the current snapshot", registry=r)
        self.store_degraded = Gauge(
            "northstard_store_degraded", "1 while SQLite cannot persist (disk full, read-only)",
            registry=r,
        )
        self.unsaved = Gauge(
            "northstard_unsaved_changes", "Changes accepted but not yet on disk", registry=r
        )
        self.backup_last_success = Gauge(
            "northstard_backup_last_success_timestamp_seconds",
            "Unix time of the newest periodic backup", registry=r,
        )
        self.backup_failures = Counter(
            "northstard_backup_failures", "Periodic backups that failed", registry=r
        )
        self.backup_failing = Gauge(
            "northstard_backup_failing", "1 while the last periodic backup failed", registry=r
        )
        self.batch_size = Histogram(
            "northstard_writer_batch_size", "Changes per write transaction",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), registry=r,
        )
        self.batch_seconds = Histogram(
            "northstard_writer_batch_seconds", "Write transaction latency",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0), registry=r,
        )
        self.poll_seconds = Histogram(
            "northstard_source_poll_seconds", "Source poll latency", ["source"], registry=r,
        )
        self.poll_errors = Counter(
            "northstard_source_errors", "Failed source polls", ["source"], registry=r
        )
        self.source_up = Gauge(
            "northstard_source_up", "1 when the source's circuit is closed", ["source"], registry=r
        )
        self.refused = Counter(
            "northstard_refused", "Connections, requests and streams refused by a [limits] limit",
            ["reason"], registry=r,
        )

        self.records_refused = Counter(
            "northstard_records_refused",
            "Records a source sent that were refused (counted at every reading refusing them)",
            ["source"], registry=r,
        )

        self.alert_firing = Gauge(
            "northstard_alert_firing", "1 while the alert rule is firing", ["alert", "severity"],
            registry=r,
        )

    def observe_refused(self, source: str, count: int) -> None:
        self.records_refused.labels(source).inc(count)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def observe_poll(self, source: str, seconds: float, ok: bool) -> None:
        self.poll_seconds.labels(source).observe(seconds)
        if not ok:
            self.poll_errors.labels(source).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
