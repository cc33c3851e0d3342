"""Logging: structlog configured once, by the entry point.

JSON lines when stderr is not a terminal (journald, files, tests), readable
console output when it is. Modules call ``structlog.get_logger()``; actors
bind their name. Every event passes through ``redact``, which replaces any
known secret value wherever it appears.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging"]

_SECRETS: set[str] = set()


def _scrub(value: object) -> object:
    if isinstance(value, str):
        for secret in _SECRETS:
            value = value.replace(secret, "<redacted>")
        return value
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact(_: object, __: str, event: MutableMapping[str, object]) -> MutableMapping[str, object]:
    if not _SECRETS:
        return event
    return {k: _scrub(v) for k, v in event.items()}


def _route_stdlib_logging(level: str, shared: list[Any], renderer: Any) -> None:
    """Libraries' stdlib log records (trio's "accept returned EMFILE", say) as our lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level.upper()]))


def configure_logging(level: str = "info", fmt: str = "auto", secrets: Iterable[str] = ()) -> None:
    _SECRETS.clear()
    _SECRETS.update(s for s in secrets if s and len(s) >= 4)
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    _route_stdlib_logging(level, shared, renderer)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
