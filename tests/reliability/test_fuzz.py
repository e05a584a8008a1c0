"""Schemathesis 4 over the served OpenAPI document of a real `bentoml serve`, for every role.

All four phases (examples, coverage, fuzzing, stateful: the documented links take a task from
the feed through claim to complete or cancel) and every check run; no request may get a 5xx and
no check may fail.
The counts go to `TWINCARE_FUZZ_REPORT` (JSON) when it is set, for the README's table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import fresh_home, start_server, stop_server
from tests.serving.test_api import V, serving_home  # noqa: F401  (session fixture: trained workdir)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.reliability]

PHASES = "examples,coverage,fuzzing,stateful"
MAX_EXAMPLES = int(os.environ.get("TWINCARE_FUZZ_EXAMPLES", "25"))
# (who, key name in the keys dict, key name the volunteer token is issued to, or None)
CALLERS = (
    ("timebank platform", "timebank", "demo-timebank"),
    ("volunteer's own key", "volunteer", None),
    ("care manager", "care_manager", None),
    ("admin", "admin", "demo-admin"),
)


# The one rule the document cannot state: each supplied series needs 28 distinct days, so a
# schema-valid body of fewer is answered 422 "cannot forecast these counts", saying why.
CONFIG = """
[[operations]]
include-path = "/forecast_demand"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "422"]
"""


def _run(url: str, headers: dict[str, str], report: Path) -> subprocess.CompletedProcess:
    config = report.parent / "schemathesis.toml"
    config.write_text(CONFIG)
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{url}/docs.json", "--url", url,
           "--phases", PHASES, "--checks", "all", "--max-examples", str(MAX_EXAMPLES),
           "--workers", "1", "--seed", "7", "--request-timeout", "60", "--continue-on-failure",
           "--suppress-health-check", "all", "--report", "ndjson", "--report-dir", str(report),
           "--no-color"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=3600)


def _responses(report_dir: Path) -> list[int]:
    """Status codes of every response in the ndjson report."""
    codes: list[int] = []

    def walk(node):
        if isinstance(node, dict):
            resp = node.get("response")
            if isinstance(resp, dict) and isinstance(resp.get("status_code"), int):
                codes.append(resp["status_code"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for f in report_dir.glob("*.ndjson"):
        for line in f.read_text().splitlines():
            if line.strip():
                walk(json.loads(line))
    return codes


@pytest.mark.timeout(3 * 3600)
def test_schemathesis_all_phases_all_checks_every_role_no_5xx(serving_home, tmp_path):  # noqa: F811
    trained, keys = serving_home
    home = fresh_home(trained, tmp_path / "home")
    server = start_server(home, tmp_path, env={"TWINCARE_VISIT_FLUSH_S": "1"})
    summary = {}
    failed_checks: list[str] = []
    try:
        assert server.process.poll() is None, server.output()[-3000:]
        for who, key, token_for in CALLERS:
            headers = {"X-API-Key": keys[key], **(V(home, "V0007", token_for) if token_for else {})}
            report = tmp_path / f"report-{key}"
            result = _run(server.url, headers, report)
            (report / "schemathesis.out").write_text(result.stdout + result.stderr)
            codes = _responses(report)
            server_errors = [c for c in codes if c >= 500]
            summary[who] = {"requests": len(codes), "5xx": len(server_errors), "exit": result.returncode,
                            "tail": result.stdout[-4000:]}
            assert codes, result.stdout[-3000:] + result.stderr[-2000:]
            assert not server_errors, f"{who}: {len(server_errors)} 5xx\n{result.stdout[-6000:]}"
            if result.returncode != 0:
                failed_checks.append(f"{who}: {result.stdout[-3000:]}")
    finally:
        stop_server(server)
        out = os.environ.get("TWINCARE_FUZZ_REPORT")
        if out:
            Path(out).write_text(json.dumps({k: {x: y for x, y in v.items() if x != "tail"} for k, v in summary.items()}, indent=2))
    assert not failed_checks, "schemathesis conformance findings:\n" + "\n".join(failed_checks)
