"""HTTP/1.1 request heads and short responses, with no I/O.

For the edges that own their raw sockets (``fastws``, ``fastsse``): the front
reads a request head, these functions parse it, and the edges answer with the
bytes built here (errors as the same ``{"error": ..., "detail": ...}`` JSON
the rest of the application answers with).

``request_size`` is how the front finds where a request ends on a kept-alive
connection (its head plus its ``Content-Length`` body) and what it refuses
before Hypercorn sees it: the request-smuggling shapes (``Transfer-Encoding``
with ``Content-Length``: 400; any ``Transfer-Encoding``: 411, bodies need a
``Content-Length``; a repeated or malformed ``Content-Length``: 400) and
HTTP/2 in clear text (the ``PRI *`` preface: 505; ``Upgrade: h2c``: 400).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from http import HTTPStatus
from urllib.parse import parse_qsl

from northstard.core.change import dumps
from northstard.core.money import DIGITS
from northstard.errors import RequestError

__all__ = ["RECEIVE_BYTES", "Request", "error_response", "head_end", "parse_head",
           "request_line", "request_size", "response_head"]

RECEIVE_BYTES = 65536  # the most one recv() from a client socket reads (and allocates)
MAX_HEAD_BYTES = 16384
MAX_LINE_BYTES = 8192
MAX_LENGTH_DIGITS = 18
H2_PREFACE_LINE = ("PRI", "*", "HTTP/2.0")
Headers = Iterable[tuple[str, str]]


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
        raise RequestError("bad_request", "malformed header line")
    return name.lower(), value.strip(" \t")


def parse_head(head: bytes | bytearray) -> Request:
    """A complete request head (up to the blank line) to a Request; RequestError (400) if malformed."""
    lines = bytes(head).decode("latin-1").split("\r\n")
    method, target, version = request_line(head) or ("", "", "")
    if not method.isalpha() or not target.startswith("/") or not version.startswith("HTTP/1."):
        raise RequestError("bad_request", "malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            break
        name, value = _header(line)
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return Request(method, target, version, headers)


def _no_http2(line: tuple[str, str, str] | None, request: Request | None = None) -> None:
    if line == H2_PREFACE_LINE:
        raise RequestError("http_version_not_supported",
                           "HTTP/2 is not served on this port (no h2c prior knowledge); use HTTP/1.1", 505)
    if request is not None and "h2c" in request.tokens("upgrade"):
        raise RequestError("bad_request", "HTTP/2 is not served on this port (no h2c upgrade); "
                           "send the request without Upgrade: h2c")


def body_length(request: Request) -> int:
    """The length of the request's body; RequestError for a framing that could be read two ways."""
    headers = request.headers
    if "transfer-encoding" in headers:
        if "content-length" in headers:
            raise RequestError("bad_request", "both Content-Length and Transfer-Encoding")
        raise RequestError("length_required",
                           "a request body needs a Content-Length (Transfer-Encoding is not accepted)", 411)
    value = headers.get("content-length")
    if value is None:
        return 0
    if DIGITS.fullmatch(value) is None or len(value) > MAX_LENGTH_DIGITS:
        raise RequestError("bad_request", "one Content-Length of decimal digits")
    return int(value)


def request_size(data: bytes | bytearray) -> int:
    """Bytes of the request at the start of ``data`` (head and body), 0 while its head is
    incomplete; RequestError for a head to refuse (malformed, too long, or a shape above)."""
    line = request_line(data)
    if line is None:
        if len(data) > MAX_LINE_BYTES:
            raise RequestError("bad_request", "request line over 8 KiB")
        return 0
    _no_http2(line)
    end = head_end(data)
    if end < 0 or end > MAX_HEAD_BYTES:
        if end > MAX_HEAD_BYTES or len(data) > MAX_HEAD_BYTES:
            raise RequestError("request_header_fields_too_large", "request head over 16 KiB", 431)
        return 0
    request = parse_head(data[:end])
    _no_http2(line, request)
    return end + body_length(request)


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
