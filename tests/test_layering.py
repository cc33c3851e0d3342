"""The layering rule of docs/architecture.md, for the pure core: it imports nothing that does I/O.

Every import statement of each pure-core module (function-local ones too) is
read from its source with ``ast``; relative imports are resolved. The rest of
the rule (edges above actors above the core) gets its test with the package
layout change.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "northstard"
PURE_CORE = ("pnl", "mergepatch", "money", "records", "buckets", "breaker", "tokenbucket",
             "patchring", "change", "fieldcheck", "wsframes", "hosts", "times", "web.limits")
ALLOWED_INSIDE = {f"northstard.{name}" for name in PURE_CORE} | {"northstard.errors"}
IO_MODULES = {"trio", "asyncio", "anyio", "sqlite3", "httpx", "quart", "quart_trio", "hypercorn",
              "grpc", "socket", "ssl", "select", "selectors", "threading", "subprocess", "os",
              "shutil", "signal", "structlog", "northstard_plugins"}


def imports_of(module: str) -> set[str]:
    """The absolute names of every module ``northstard.<module>`` imports."""
    path = PACKAGE.joinpath(*module.split(".")).with_suffix(".py")
    package = ("northstard." + module).rsplit(".", 1)[0].split(".")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            found.add(name)
            if not node.module:  # from . import x
                found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("module", PURE_CORE)
def test_pure_core_module_does_no_io(module: str) -> None:
    names = imports_of(module)
    doing_io = sorted(n for n in names if n.split(".")[0] in IO_MODULES)
    assert not doing_io, f"northstard.{module} imports {doing_io}"
    inside = {n for n in names if n.split(".")[0] == "northstard"}
    assert inside <= ALLOWED_INSIDE, f"northstard.{module} reaches up to {sorted(inside - ALLOWED_INSIDE)}"


def test_the_check_sees_relative_imports() -> None:
    assert "northstard.core.mergepatch" in imports_of("patchring")
    assert "northstard.core.tokenbucket" in imports_of("web.limits")
    assert "trio" in imports_of("hub")  # an actor, for contrast: the check would catch it
