"""The docs that are generated or checked against the code: the configuration reference and the README."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from northstard.config import CORE, SOURCE_COMMON
from northstard.ops import docs_gen

REPO = Path(__file__).resolve().parents[1]
CONFIG_DOC = REPO / "docs" / "configuration.md"


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "northstard.ops.docs_gen", "--check", "--path", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_committed_configuration_reference_is_current() -> None:
    result = run_check(CONFIG_DOC)
    assert result.returncode == 0, result.stderr


def test_check_fails_on_a_stale_reference_and_names_the_fix(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(CONFIG_DOC.read_text().replace("| `batch_max` | integer ≥ 1 | `500` |",
                                                    "| `batch_max` | integer ≥ 1 | `499` |"))
    result = run_check(stale)
    assert result.returncode == 1
    assert "`499`" in result.stderr and "`500`" in result.stderr
    assert "run python -m northstard.ops.docs_gen" in result.stderr


def test_regenerating_keeps_the_prose_and_fixes_the_reference(tmp_path: Path) -> None:
    target = tmp_path / "configuration.md"
    target.write_text(f"# Prose kept\n\nhand-written\n\n{docs_gen.MARKER}\nold table\n")
    assert docs_gen.main(["--path", str(target)]) == 0
    text = target.read_text()
    assert text.startswith("# Prose kept\n\nhand-written\n\n")
    assert "old table" not in text
    assert run_check(target).returncode == 0


def test_every_key_of_the_schema_is_documented_with_a_meaning() -> None:
    text = CONFIG_DOC.read_text()
    for section, fields in CORE.items():
        block = text.split(f"### `[{section}]`\n", 1)[1].split("\n### ", 1)[0]
        for spec in fields:
            assert spec.help, f"{section}.{spec.name} has no help"
            assert f"| `{spec.name}` |" in block, f"{section}.{spec.name}"
    for spec in SOURCE_COMMON:
        assert spec.help, f"sources.NAME.{spec.name} has no help"
    for name in docs_gen.BUILT_IN:
        assert f"### `plugin = \"{name}\"`" in text


def test_readme_is_a_front_door_with_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.encode()) < 10 * 1024
    for marker in ("<!-- run-command -->", "<!-- test-command -->"):
        after = readme.split(marker + "\n", 1)[1].splitlines()
        assert after[0] == "```sh" and after[1] and after[2] == "```"
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (REPO / link).is_file(), link


def test_links_between_docs_pages_resolve() -> None:
    for page in (REPO / "docs").glob("*.md"):
        for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / link).exists(), f"{page.name}: {link}"
