"""The layering rule of docs/architecture.md: each room imports only the rooms below it.

Every import statement of every module (function-local and ``TYPE_CHECKING``
ones too) is read from its source with ``ast``; relative imports are resolved.
The pure core must also do no I/O, and the module graph must have no cycle.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "northstard"
BASE = {"base"}
LOW = BASE | {"core", "config", "status"}
EDGE_MAY_USE = LOW | {"store", "actors", "policy", "edges.shared", "generated"}
ALLOWED: dict[str, set[str]] = {  # room -> the rooms it may import (besides itself)
    "base": set(),
    "core": BASE,
    "config": BASE | {"core"},
    "status": BASE | {"core"},
    "store": LOW,
    "actors": LOW | {"store"},
    "policy": LOW,
    "seam": LOW | {"store", "actors"},
    "edges.shared": LOW | {"policy"},
    "edges.http": EDGE_MAY_USE,
    "edges.stream": EDGE_MAY_USE,
    "edges.grpc": EDGE_MAY_USE,
    "wiring": EDGE_MAY_USE | {"seam", "edges.http", "edges.stream", "edges.grpc"},
    "ops": EDGE_MAY_USE | {"seam", "edges.http", "edges.stream", "edges.grpc", "wiring"},
}
SEAM = {"hookspecs", "plugins", "testing", "http", "records", "money", "source"}
ROOMS = {"core", "status", "store", "actors", "policy", "ops"}
IO_MODULES = {"trio", "asyncio", "anyio", "sqlite3", "httpx", "quart", "quart_trio", "hypercorn",
              "grpc", "socket", "ssl", "select", "selectors", "threading", "subprocess", "os",
              "shutil", "signal", "structlog", "northstard_plugins"}


def room(module: str) -> str:
    """The room of ``northstard.x.y``: a folder, or one of the top-level groups."""
    parts = module.split(".")[1:]
    if not parts or parts[0] == "errors":
        return "base"
    head = parts[0]
    if head == "__main__":
        return "ops"  # python -m northstard
    if head in ROOMS or head == "config":
        return head
    if head == "settings":
        return "config"  # the typed records config.py builds
    if head == "edges":
        if len(parts) == 1 or parts[1] in ("activation", "tls", "appserver", "asgi", "lifespan"):
            return "edges.shared"
        return "wiring" if parts[1] == "listener" else f"edges.{parts[1]}"
    if head in ("_proto", "_fanout"):
        return "generated"
    return "seam" if head in SEAM else "wiring"  # daemon


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {_name(p): p for p in PACKAGE.rglob("*.py") if "_proto" not in p.parts}


@cache
def imports_of(module: str) -> frozenset[str]:
    """The absolute names of every module ``module`` imports (``from m import x``: m, and m.x)."""
    path = modules()[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return frozenset(found)


def inside(module: str) -> set[str]:
    """The northstard modules (or generated code) ``module`` imports."""
    known = modules()
    return {n for n in imports_of(module)
            if n in known or n.split(".")[:2] in (["northstard", "_proto"], ["northstard", "_fanout"])}


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_run_downhill(module: str) -> None:
    mine = room(module)
    upward = sorted(n for n in inside(module) if room(n) != mine and room(n) not in ALLOWED[mine])
    assert not upward, f"{module} ({mine}) imports {[(n, room(n)) for n in upward]}"


@pytest.mark.parametrize("module", sorted(m for m in modules() if room(m) == "core"))
def test_pure_core_module_does_no_io(module: str) -> None:
    doing_io = sorted(n for n in imports_of(module) if n.split(".")[0] in IO_MODULES)
    assert not doing_io, f"{module} imports {doing_io}"


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle of ``graph`` (module -> the modules it imports), or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1 and not _is_parent(nxt, node):
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for module in graph:
        if module not in state and (found := visit(module)):
            return found
    return None


def _is_parent(package: str, module: str) -> bool:
    """Importing ``package.module`` runs ``package/__init__`` first: not a cycle of ours."""
    return module.startswith(package + ".")


def test_no_import_cycles() -> None:
    cycle = find_cycle({m: sorted(inside(m) & modules().keys() - {m}) for m in modules()})
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_the_cycle_check_finds_one() -> None:
    assert find_cycle({"a.x": ["a.y"], "a.y": ["a.z"], "a.z": ["a.x"]}) == ["a.x", "a.y", "a.z", "a.x"]
    assert find_cycle({"a.x": ["a.y"], "a.y": [], "a": ["a.x"]}) is None


def test_every_module_has_a_room_with_rules() -> None:
    assert {room(m) for m in modules()} <= ALLOWED.keys()
    assert room("northstard.core.pnl") == "core"
    assert room("northstard.edges.grpc.service") == "edges.grpc"
    assert room("northstard.edges.tls") == "edges.shared"


def test_the_check_sees_what_it_must() -> None:
    assert "northstard.core.mergepatch" in imports_of("northstard.core.patchring")
    assert "trio" in imports_of("northstard.actors.hub")  # an actor, for contrast: the check would catch it
    assert "northstard.edges.stream.fastws" in inside("northstard.edges.listener")
    assert "northstard.edges.http" not in ALLOWED["edges.grpc"]  # edges never import each other


def test_plugin_seam_names_are_the_moved_modules() -> None:
    """``northstard.records`` / ``money`` / ``source`` stay importable for plugins outside the repo."""
    import northstard.actors.source
    import northstard.core.money
    import northstard.core.records
    import northstard.money
    import northstard.records
    import northstard.source

    pairs = ((northstard.records, northstard.core.records), (northstard.money, northstard.core.money),
             (northstard.source, northstard.actors.source))
    for seam, real in pairs:
        assert seam.__all__ == real.__all__
        assert all(getattr(seam, name) is getattr(real, name) for name in real.__all__)


def test_the_http_edge_reads_the_status_record_not_the_actors_state() -> None:
    """Health and metrics come from ``status/daemon.py``'s record, made by the wiring."""
    http = [m for m in modules() if room(m) == "edges.http"]
    state_holders = {"northstard.actors.writer", "northstard.actors.backups", "northstard.actors.supervisor",
                     "northstard.status.grpc"}
    assert not {n for m in http for n in inside(m)} & state_holders
    assert "northstard.status.daemon" in inside("northstard.edges.http.context")
