"""The dashboard's page files: read once, served from memory, gzip when asked, 304 when held."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import httpx

from northstard.edges.http.app import STATIC
from northstard.edges.http.pagefiles import PageFiles, accepts_gzip


def test_every_shipped_file_is_held_once_with_its_gzip_and_nothing_else(tmp_path: Path) -> None:
    pages = PageFiles.read(STATIC)
    shipped = {p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file()
               and "__pycache__" not in p.parts}
    assert set(pages.files) == shipped
    for name, page in pages.files.items():
        assert page.body == (STATIC / name).read_bytes()
        assert page.gzipped is None or gzip.decompress(page.gzipped) == page.body
    held = sum(len(p.body) + len(p.gzipped or b"") for p in pages.files.values())
    assert held < 2 * sum((STATIC / n).stat().st_size for n in shipped)  # bounded by what ships
    assert pages.get("../pagefiles.py") is None and pages.get("/etc/passwd") is None


def test_accept_encoding_is_read_with_its_weights() -> None:
    assert accepts_gzip("gzip, deflate, br") and accepts_gzip("br;q=1.0, gzip;q=0.5") and accepts_gzip("*")
    assert not accepts_gzip("") and not accepts_gzip("identity") and not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("gzip;q=zero") and not accepts_gzip("br")


async def test_the_daemon_serves_page_files_gzipped_revalidated_and_never_outside(start_daemon: Any) -> None:
    daemon = await start_daemon()
    async with httpx.AsyncClient(base_url=daemon.url) as http:
        plain = await http.get("/static/app.js", headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200 and "content-encoding" not in plain.headers
        assert plain.content == (STATIC / "app.js").read_bytes()
        assert plain.headers["content-type"].startswith("text/javascript")
        packed = await http.get("/static/app.js", headers={"Accept-Encoding": "gzip"})
        assert packed.headers["content-encoding"] == "gzip" and packed.content == plain.content  # inflated
        assert int(packed.headers["content-length"]) < len(plain.content) / 2
        assert packed.headers["vary"] == "Accept-Encoding" and packed.headers["cache-control"] == "no-cache"
        again = await http.get("/static/app.js", headers={"If-None-Match": plain.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        index = await http.get("/")
        assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
        for path in ("/static/nope.js", "/static/..%2Fapp.py", "/static/%2e%2e/pagefiles.py"):
            missing = await http.get(path)
            assert missing.status_code == 404 and missing.json()["error"] == "not_found", path
