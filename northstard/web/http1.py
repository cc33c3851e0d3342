"""HTTP/1.1 request heads and short responses, with no I/O.

For the edges that own their raw sockets (``fastws``, ``fastsse``): the front
reads a request head, these functions parse it, and the edges answer with the
bytes built here (errors as the same ``{"error": ..., "detail": ...}`` JSON
the rest of the application answers with).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from http import HTTPStatus
from urllib.parse import parse_qsl

from ..change import dumps

__all__ = ["BadRequest", "Request", "error_response", "head_end", "parse_head", "request_line",
           "response_head"]

MAX_HEAD_BYTES = 16384
Headers = Iterable[tuple[str, str]]


class BadRequest(Exception):
    """A request to refuse with ``status`` and a JSON body."""

    def __init__(self, status: int, error: str, detail: str, headers: Headers = ()) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = tuple(headers)


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: Mapping[str, str] = field(default_factory=dict)  # names lower-cased

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @cached_property
    def args(self) -> Mapping[str, str]:
        """Query parameters; the first value of a repeated one."""
        args: dict[str, str] = {}
        for name, value in parse_qsl(self.target.partition("?")[2], keep_blank_values=True):
            args.setdefault(name, value)
        return args

    def tokens(self, name: str) -> set[str]:
        """A comma-separated header as lower-cased tokens (``Connection``, ``Upgrade``)."""
        return {t.strip().lower() for t in self.headers.get(name, "").split(",") if t.strip()}


def head_end(data: bytes | bytearray) -> int:
    """The length of the head (blank line included) once it is complete, else -1."""
    index = data.find(b"\r\n\r\n")
    return index + 4 if index >= 0 else -1


def request_line(data: bytes | bytearray) -> tuple[str, str, str] | None:
    """(method, target, version) once the first line is complete; None before that."""
    end = data.find(b"\r\n")
    if end < 0:
        return None
    parts = bytes(data[:end]).decode("latin-1").split(" ")
    if len(parts) != 3:
        return ("", "", "")
    method, target, version = parts
    return method, target, version


def _header(line: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    if not sep or not name or name != name.strip() or line[0] in " \t":
        raise BadRequest(400, "bad_request", "malformed header line")
    return name.lower(), value.strip(" \t")


def parse_head(head: bytes | bytearray) -> Request:
    """A complete request head (up to the blank line) to a Request; BadRequest (400) if malformed."""
    lines = bytes(head).decode("latin-1").split("\r\n")
    method, target, version = request_line(head) or ("", "", "")
    if not method.isalpha() or not target.startswith("/") or not version.startswith("HTTP/1."):
        raise BadRequest(400, "bad_request", "malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            break
        name, value = _header(line)
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return Request(method, target, version, headers)


def response_head(status: int, headers: Headers = ()) -> bytes:
    """A status line and headers, up to the blank line."""
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def error_response(status: int, error: str, detail: str, headers: Headers = ()) -> bytes:
    """A JSON error answer after which the connection closes."""
    body = dumps({"error": error, "detail": detail}).encode()
    fields = [("content-type", "application/json"), ("content-length", str(len(body))),
              ("x-content-type-options", "nosniff"), ("connection", "close"), *headers]
    return response_head(status, fields) + body
