"""Fixtures for the dashboard tests: the real daemon, a real Chromium, a relay.

The daemon runs in-process, in its own trio run on a thread, so that a test
can stop it and start it again on the same port and SQLite file. The tests
are plain sync pytest tests driving Playwright's sync API: they wait on page
conditions (``wait_for_function``), never sleep.

This directory is a package (``__init__.py``) so that this conftest does not
replace ``tests/conftest.py`` as the module ``conftest`` the other tests import.
"""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import trio

from northstard.config import Config
from northstard.daemon import Daemon, run_daemon

from .pages import DESKTOP
from conftest import build_config, plugins_for_tests

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "browser"
DEMO = {"demo": {"interval_s": 0.25, "seed": 7}}


class DaemonThread:
    """The real daemon in a thread of its own; ``stop()`` and ``start()`` again keep port and file."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.url = ""
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._daemon: Daemon | None = None
        self._error: BaseException | None = None

    def start(self, timeout: float = 20) -> str:
        ready = threading.Event()

        def main() -> None:
            try:
                trio.run(self._run, ready)
            except BaseException as exc:
                self._error = exc
                ready.set()

        self._error = None
        self._thread = threading.Thread(target=main, name="northstard", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise AssertionError("the daemon did not start")
        if self._error is not None:
            raise self._error
        return self.url

    async def _run(self, ready: threading.Event) -> None:
        self._token = trio.lowlevel.current_trio_token()
        run = functools.partial(run_daemon, self.config, plugins_for_tests(), handle_signals=False)
        async with trio.open_nursery() as nursery:
            self._daemon = await nursery.start(run)
            self.url = self._daemon.url
            ready.set()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run async ``fn(*args)`` in the daemon's trio run (e.g. push a scripted source's reading)."""
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def stop(self, timeout: float = 20) -> None:
        if self._thread is None:
            return
        if self._daemon is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._daemon.stop, trio_token=self._token)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the daemon did not stop"
        self._thread = self._daemon = None


class Relay:
    """A TCP relay in front of the daemon; ``cut()`` drops every open connection (a network blip)."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        self._drop(src, dst)

    def _drop(self, *socks: socket.socket) -> None:
        for sock in socks:
            with self._lock:
                self._open.discard(sock)
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def cut(self) -> None:
        with self._lock:
            socks = list(self._open)
        self._drop(*socks)

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonThread]]:
    """``start_daemon(sources=DEMO, port=0, **sections)`` -> a running DaemonThread (stopped at teardown)."""
    started: list[DaemonThread] = []

    def start(sources: Mapping[str, Any] = DEMO, port: int = 0, **sections: Any) -> DaemonThread:
        sections["server"] = {"port": port, **sections.get("server", {})}
        sections.setdefault("grpc", {"enabled": False})  # not under test here; its port is fixed
        daemon = DaemonThread(build_config(tmp_path, sources, **sections))
        started.append(daemon)
        daemon.start()
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def relay() -> Iterator[Callable[[int], Relay]]:
    relays: list[Relay] = []

    def make(port: int) -> Relay:
        relays.append(Relay(port))
        return relays[-1]

    yield make
    for r in relays:
        r.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """``new_page(viewport=DESKTOP, color_scheme="light")`` in a fresh context (fresh localStorage).

    At teardown: no uncaught script error and no Content-Security-Policy violation.
    """
    contexts: list[Any] = []
    problems: list[str] = []

    def make(viewport: Mapping[str, int] = DESKTOP, color_scheme: str = "light", context: Any = None) -> Any:
        if context is None:
            context = browser.new_context(viewport=dict(viewport), color_scheme=color_scheme,
                                          timezone_id="Europe/Paris", locale="en-GB")
            contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on("console", lambda msg: problems.append(f"console: {msg.text}")
                if "Content Security Policy" in msg.text else None)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not problems, problems


@pytest.fixture(scope="session")
def output() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT
