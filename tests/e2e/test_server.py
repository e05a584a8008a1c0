"""The real thing: `bentoml serve` as a process on a real MLflow store, called over HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import fresh_home, start_server, stop_server
from tests.serving.test_api import V

pytestmark = pytest.mark.e2e


def test_assess_complete_a_task_and_close_the_loop(live_server, webhook_receiver):
    import bentoml

    from serving.store import TimeBankStore
    from twin.store import HistoryStore

    server, keys = live_server
    care = {"X-API-Key": keys["care_manager"]}
    ranked = httpx.get(f"{server.url}/residents/at-risk?band=high&limit=3", headers=care, timeout=60).json()
    assert ranked["items"], "the small twin should have someone in the high fall-risk band"
    rid = ranked["items"][0]["resident_id"]

    with bentoml.SyncHTTPClient(server.url, token=keys["care_manager"], timeout=60) as client:
        result = client.assess({"resident_ids": [rid]})
    result = result if isinstance(result, dict) else result.model_dump(mode="json")
    fall = result["results"][0]["assessments"][0]
    assert fall["model"] == "fall_risk" and fall["band"] == "high" and fall["reasons"][0]["text"]
    action = next(a for a in result["results"][0]["actions"] if a["reason"] == "fall_risk")

    tb = {"X-API-Key": keys["timebank"]}
    feed = httpx.get(f"{server.url}/timebank/tasks?limit=500", headers=tb).json()["items"]
    task = next(t for t in feed if t["task_id"] == action["task_id"])
    url = f"{server.url}/timebank/tasks/{task['task_id']}"
    tb = {**tb, **V(server.home, "V0042")}
    r = httpx.post(f"{url}/claim", json={"volunteer_id": "V0042"}, headers={**tb, "Idempotency-Key": "e2e-claim"})
    assert r.status_code == 200, r.text
    for _ in range(2):  # a retried completion changes nothing
        r = httpx.post(f"{url}/complete", json={"volunteer_id": "V0042"},
                       headers={**tb, "Idempotency-Key": "e2e-complete"})
        assert r.status_code == 200 and r.json()["task"]["status"] == "completed"

    store = TimeBankStore(f"sqlite:///{server.home / 'timebank.db'}")
    try:
        ledger = store.ledger_frame()
        assert ledger.groupby("transfer_id")["amount"].sum().abs().max() == 0
        assert store.balance("volunteer:V0042") == pytest.approx(task["credits"])
        assert store.balance("fund:community") == pytest.approx(-task["credits"])
    finally:
        store.close()
    deadline = time.monotonic() + 60  # visits are written back in batches (TWINCARE_VISIT_FLUSH_S)
    while True:
        visits = HistoryStore(server.home / "history").read("visits")
        mine = visits[visits["task_id"] == task["task_id"]]
        if len(mine) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(mine) == 1 and mine.iloc[0]["resident_id"] == rid and mine.iloc[0]["source"] == "timebank"

    # the time bank's webhook hears of the task's life, each event once per id
    wanted = {f"{task['task_id']}.{t}" for t in ("opened", "claimed", "completed")}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not wanted <= set(webhook_receiver.event_ids()):
        time.sleep(0.2)
    assert wanted <= set(webhook_receiver.event_ids())


def test_plain_http_probes_metrics_and_docs(live_server):
    server, keys = live_server
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    assert httpx.get(f"{server.url}/metrics", headers={"X-API-Key": keys["timebank"]}).status_code == 403
    httpx.post(f"{server.url}/assess", json={"resident_ids": ["nobody"]}, headers={"X-API-Key": keys["care_manager"]})
    metrics = httpx.get(f"{server.url}/metrics", headers={"X-API-Key": keys["admin"]})
    assert metrics.status_code == 200 and "twincare_model_version" in metrics.text
    assert "bentoml_service_request_total" in metrics.text
    spec = httpx.get(f"{server.url}/docs.json").json()
    assert "/assess" in spec["paths"] and "/timebank/tasks/{task_id}/complete" in spec["paths"]
    bad = httpx.post(f"{server.url}/assess", content=b'{"resident_ids": [', headers={
        "X-API-Key": keys["care_manager"], "content-type": "application/json"})
    assert bad.status_code == 422
    r = httpx.post(f"{server.url}/forecast_demand", json={"grid_ids": ["G01"], "horizon": 7},
                   headers={"X-API-Key": keys["timebank"]})
    assert r.status_code == 200 and len(r.json()["forecasts"]) > 0


def test_start_up_refused_without_a_champion(live_server, serving_home, tmp_path):
    """`bentoml serve` never becomes ready and says why; `python -m serving serve` exits with it."""
    import subprocess
    import sys

    from tests.e2e.conftest import REPO, server_env
    from training.tracking import delete_alias

    trained, _ = serving_home
    home = fresh_home(trained, tmp_path / "home")
    delete_alias(f"sqlite:///{home / 'mlflow.db'}", "demand", "champion")
    server = start_server(home, tmp_path, wait=120)
    try:
        out = server.output()
        assert "Application startup failed" in out or server.process.returncode not in (None, 0)
        assert "model 'demand': no version has the alias @champion" in out
        try:
            ready = httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            ready = False
        assert not ready
    finally:
        stop_server(server)
    cli = subprocess.run([sys.executable, "-m", "serving", "serve", "--port", "1"], cwd=REPO,
                         env=server_env(home, tmp_path), capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1
    assert "model 'demand'" in cli.stderr and "@champion" in cli.stderr


def test_nightly_batch_command_stores_scores_the_server_then_ranks(live_server):
    import json
    import subprocess
    import sys

    from tests.e2e.conftest import REPO, server_env

    server, keys = live_server
    env = server_env(server.home, server.home.parent)
    twincare = str(Path(sys.executable).parent / "twincare")
    run = subprocess.run([twincare, "score", "--all", "--workdir", str(server.home)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout[run.stdout.index("{"):])
    assert report["residents"] > 0 and report["scores_stored"] == 2 * report["residents"]
    ranked = httpx.get(f"{server.url}/residents/at-risk?model=isolation&limit=5",
                       headers={"X-API-Key": keys["care_manager"]}).json()
    assert ranked["source"] == "stored" and ranked["items"][0]["reasons"][0]["text"]
    page = httpx.get(f"{server.url}/residents/{ranked['items'][0]['resident_id']}",
                     headers={"X-API-Key": keys["care_manager"]}).json()
    assert {p["model"] for p in page["score_history"]} == {"fall_risk", "isolation"}
