"""The dashboard's page files, read once at start and served from memory, gzip when asked.

The shipped files (``static/``: about 130 KB, 40 KB compressed) are read and
compressed once, when the app is made: a request never touches the disk and
never names a path outside what was shipped (a name not in the table is a 404,
whatever its dots or slashes). Held: every file twice at most (plain and
gzip) — bounded by what the package ships, not by requests.

Each answer carries a strong ``ETag`` (a digest of the plain bytes) and
``Cache-Control: no-cache``: the browser revalidates on every load (a 304
costs headers only), so an upgrade never leaves it mixing old and new modules.
``Vary: Accept-Encoding`` keeps caches from handing gzip to a client that did
not ask for it.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PageFile", "PageFiles", "accepts_gzip"]

TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".json": "application/json"}


@dataclass(frozen=True)
class PageFile:
    body: bytes
    gzipped: bytes | None  # None: compressing saves nothing worth it
    content_type: str
    etag: str  # quoted, strong


def page_file(path: Path) -> PageFile:
    body = path.read_bytes()
    packed = gzip.compress(body, compresslevel=9, mtime=0)
    kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    digest = hashlib.sha256(body).hexdigest()[:20]
    return PageFile(body, packed if len(packed) < len(body) * 0.9 else None, kind, f'"{digest}"')


@dataclass(frozen=True)
class PageFiles:
    files: Mapping[str, PageFile]  # the name under static/ -> the file

    @classmethod
    def read(cls, root: Path) -> PageFiles:
        return cls({p.relative_to(root).as_posix(): page_file(p)
                    for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts})

    def get(self, name: str) -> PageFile | None:
        return self.files.get(name)


def accepts_gzip(accept_encoding: str) -> bool:
    """``Accept-Encoding`` names gzip (or ``*``) without ``q=0``."""
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False
