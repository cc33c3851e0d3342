"""The ``revenue_http`` source's config keys and their typed form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from northstard.config import Field
from northstard.errors import ConfigError
from northstard.http import HTTP_FIELDS, MAX_BODY_BYTES, RETRY_AFTER_MAX_S

__all__ = ["FIELDS", "Settings", "check_url", "validated"]


def check_url(value: Any) -> str | None:
    """A Field check: an absolute http(s) URL."""
    if not str(value).startswith(("http://", "https://")):
        return "must start with http:// or https://"
    return None


def _check_path(value: Any) -> str | None:
    return None if str(value).startswith("/") else "must start with /"


def _check_field_name(value: Any) -> str | None:
    parts = str(value).split(".")
    return None if all(parts) else "a field name, or a dotted path like totals.invoiced"


FIELDS: tuple[Field, ...] = (
    Field("base_url", str, required=True, check=check_url,
          help="the revenue service, e.g. https://sales.internal.example.com"),
    Field("path", str, "/api/revenue", check=_check_path, help="path of the totals endpoint"),
    Field("invoiced_field", str, "invoiced", check=_check_field_name,
          help="JSON field (dotted path) with the invoiced total, dollars"),
    Field("collected_field", str, "collected", check=_check_field_name,
          help="JSON field (dotted path) with the collected total, dollars"),
    Field("token", str, secret=True, help="optional bearer token (environment or token_file)"),
    Field("agent", str, "", help="agent the revenue is attributed to; empty: unattributed"),
    Field("request_timeout_s", float, 10.0, min=0.001, help="time limit of one HTTP call"),
    *HTTP_FIELDS,
)


@dataclass(frozen=True)
class Settings:
    """The options of one ``[sources.NAME]`` section of type ``revenue_http``."""

    base_url: str
    path: str = "/api/revenue"
    invoiced_field: str = "invoiced"
    collected_field: str = "collected"
    token: str | None = None
    agent: str = ""
    request_timeout_s: float = 10.0
    max_body_bytes: int = MAX_BODY_BYTES
    retry_after_max_s: float = RETRY_AFTER_MAX_S

    def __repr__(self) -> str:
        token = "<redacted>" if self.token else None
        return f"Settings(base_url={self.base_url!r}, path={self.path!r}, token={token})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any], section: str) -> Settings:
        """Validate ``options`` (missing keys take their defaults)."""
        return cls(**validated(FIELDS, options, section))


def validated(fields: tuple[Field, ...], options: Mapping[str, Any], section: str) -> dict[str, Any]:
    """Each field's validated value (its default when absent or None)."""
    values: dict[str, Any] = {}
    for spec in fields:
        given = options.get(spec.name)
        if given is None:
            if spec.required:
                raise ConfigError(f"{section}.{spec.name}", "required")
            values[spec.name] = spec.default
        else:
            values[spec.name] = spec.validate(f"{section}.{spec.name}", given)
    return values
