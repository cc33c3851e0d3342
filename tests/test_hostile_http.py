"""schemathesis against /openapi.json: every REST route, generated inputs — no 5xx, JSON errors.

``--checks all`` includes ``response_schema_conformance``: every answer's body
is validated against the schema /openapi.json declares for its status, and
``status_code_conformance`` that the status is one it declares. The second run
sets a token and a tight rate limit, so 401 (without the token) and 429 bodies
are validated too.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import trio

from northstard.policy.auth import digest

pytestmark = pytest.mark.slow


TOKEN = "nsd_token-of-the-schemathesis-run"


async def schemathesis(url: str, cwd: Path, *extra: str, location: str = "") -> str:
    """Run ``st`` against ``url`` (its /openapi.json unless ``location``); its output, asserting it passed."""
    st = shutil.which("st") or str(Path(sys.executable).with_name("st"))
    result = await trio.run_process(
        [st, "run", location or f"{url}/openapi.json", "--url", url, "--checks", "all",
         "--exclude-checks", "positive_data_acceptance",  # cross-field limits answer 400 by design
         "--exclude-path", "/api/pnl/stream",  # a stream never ends; tested in test_e2e_streams
         "--max-examples", "40", "--seed", "7", "--no-color", *extra],
        capture_stdout=True, capture_stderr=True, check=False, cwd=cwd,
    )
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, output[-4000:]
    return output


async def test_generated_requests_never_get_a_server_error(
    start_daemon: Any, tmp_path: Path
) -> None:
    daemon = await start_daemon(server={"longpoll_max_s": 0.5})
    output = await schemathesis(daemon.url, tmp_path)
    assert "Tested: 12" in output  # 12: with the drill-down routes and /api/alerts


def body_matches(spec: dict[str, Any], path: str, response: httpx.Response) -> None:
    """``response``'s JSON body is valid against the schema ``spec`` declares for its status."""
    declared = spec["paths"][path]["get"]["responses"][str(response.status_code)]
    schema = declared["content"]["application/json"]["schema"]
    jsonschema.validate(response.json(), {**schema, "components": spec["components"]})


async def test_refusals_match_their_schemas_too(start_daemon: Any, tmp_path: Path) -> None:
    # five requests at once, then almost none (one per 100 s): refusals are certain, not timed
    daemon = await start_daemon(
        server={"longpoll_max_s": 0.5}, auth={"tokens": [digest(TOKEN)]},
        limits={"rest_rate_per_s": 0.01, "rest_burst": 5, "exempt_loopback": False},
    )
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=daemon.url) as http:
        spec = (await http.get("/openapi.json", headers=bearer)).json()
        refused = await http.get("/api/sources")
        body_matches(spec, "/api/sources", refused)
        answers = [await http.get("/api/pnl/breakdown", headers=bearer) for _ in range(5)]
        for answer in answers:
            body_matches(spec, "/api/pnl/breakdown", answer)
    assert refused.status_code == 401
    assert answers[-1].status_code == 429 and "Retry-After" in answers[-1].headers
    # schemathesis then meets only 429s (its own 401 probes included) and checks each body
    (tmp_path / "openapi.json").write_text(json.dumps(spec))
    output = await schemathesis(daemon.url, tmp_path, "-H", f"Authorization: Bearer {TOKEN}",
                                location=str(tmp_path / "openapi.json"))
    assert "Tested: 12" in output  # 12: with the drill-down routes and /api/alerts
