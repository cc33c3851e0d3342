"""Upstream bodies bounded after decompression. Pure: the caller feeds the bytes.

``BoundedBody`` takes a body's bytes as they arrive on the wire (identity,
gzip or deflate), decompresses them ``room + 1`` bytes at a time and refuses
the body (``BodyTooLarge``) as soon as it would pass ``limit`` bytes: it never
holds more than ``limit + 1`` decoded bytes, so a 1 MB gzip that expands to
1 GiB costs at most the limit. We decode ourselves (rather than let httpx
inflate a whole network chunk at once, up to ~1000x its size) and ask only for
the encodings handled here (``ACCEPT_ENCODING``).
"""

from __future__ import annotations

import zlib

from northstard.errors import BodyTooLarge, SchemaDriftError

__all__ = ["ACCEPT_ENCODING", "MAX_BODY_BYTES", "BoundedBody", "too_large"]

MAX_BODY_BYTES = 8 * 1024 * 1024
ACCEPT_ENCODING = "gzip, deflate"
_GZIP = 16 + zlib.MAX_WBITS


def too_large(what: str, limit: int, detail: str = "") -> BodyTooLarge:
    """The error naming the setting and its value (``detail``: e.g. the declared length)."""
    return BodyTooLarge(
        f"{what}: body larger than max_body_bytes = {limit} bytes{detail}; refused", limit)


class BoundedBody:
    """One body being read: ``feed`` raw bytes, then ``finish`` for the decoded whole."""

    def __init__(self, encoding: str, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self.size = 0
        self._parts: list[bytes] = []
        self._encoding = encoding.strip().lower()
        self._inflate = self._decompressor(self._encoding)
        self._fed = False

    def __repr__(self) -> str:
        return f"<BoundedBody {self.what} {self._encoding or 'identity'} {self.size}/{self.limit}>"

    def _decompressor(self, encoding: str) -> zlib._Decompress | None:
        if encoding in ("", "identity"):
            return None
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompressobj(_GZIP)
        if encoding == "deflate":
            return zlib.decompressobj(zlib.MAX_WBITS)
        raise SchemaDriftError(f"{self.what}: unsupported Content-Encoding {encoding!r}")

    def feed(self, data: bytes) -> None:
        """Add raw (wire) bytes; raises ``BodyTooLarge`` past the limit."""
        if self._inflate is None:
            self._add(data)
            return
        first, self._fed = not self._fed, True
        while data:
            try:
                out = self._inflate.decompress(data, self.limit - self.size + 1)
            except zlib.error:
                if first and self._encoding == "deflate" and self.size == 0:
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, no zlib header
                    first = False
                    continue
                raise SchemaDriftError(f"{self.what}: body is not valid {self._encoding}") from None
            self._add(out)
            data = self._inflate.unconsumed_tail

    def finish(self) -> bytes:
        """The decoded body."""
        if self._inflate is not None:
            self._add(self._inflate.flush())
        body = b"".join(self._parts)
        self._parts = [body]
        return body

    def _add(self, chunk: bytes) -> None:
        if self.size + len(chunk) > self.limit:
            self._parts.clear()
            raise too_large(self.what, self.limit, " after decompression" if self._inflate else "")
        self.size += len(chunk)
        if chunk:
            self._parts.append(chunk)
