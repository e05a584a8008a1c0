"""The real server (`bentoml serve`) taking home gateways' events at accelerated time: a day of
events for a few homes, a planted fall alerted, its urgent visit opened, the webhook delivered,
and the alert escalated when no one acknowledged it in time."""

from __future__ import annotations

import json
import time

import httpx
import pandas as pd
import pytest

from tests.e2e.conftest import fresh_home, start_server, stop_server
from tests.serving.test_live import event_twin, gateway_keys, items

pytestmark = [pytest.mark.e2e, pytest.mark.live]


def test_a_day_of_events_streamed_to_the_real_server_raises_alerts_visits_webhooks_and_escalations(
        serving_home, tmp_path, webhook_receiver):
    from twin.events import SENSOR_MAP

    trained, _ = serving_home
    home = fresh_home(trained, tmp_path / "home")
    twin, falls = event_twin(home / "history", days=30, n=3)
    residents = list(falls)
    keys = gateway_keys(home, residents)
    (home / "sensor_map.json").write_text(json.dumps(SENSOR_MAP))
    server = start_server(home, tmp_path, env={
        "TWINCARE_WEBHOOK_URL": webhook_receiver.url, "TWINCARE_ALERT_ESCALATE_SECONDS": "3",
        "TWINCARE_ALERT_TICK_SECONDS": "1"})
    try:
        assert not server.failed(), server.output()[-3000:]
        raised: dict[str, list[dict]] = {r: [] for r in residents}
        with httpx.Client(base_url=server.url, timeout=60) as client:
            def post(rid: str, batch: list[dict], **extra) -> None:
                r = client.post("/events", json={"events": batch, **extra}, headers={"X-API-Key": keys[f"gateway-{rid}"]})
                assert r.status_code == 200, r.text
                raised[rid].extend(r.json()["alerts"])

            # the homes' history up to the day of the fall, then that day in 10-minute batches,
            # the homes interleaved as their gateways would send them
            day = {r: falls[r]["start"].normalize() for r in residents}
            for rid in residents:
                ev = twin.events[(twin.events["resident_id"] == rid) & (twin.events["time"] < day[rid])]
                for k in range(0, len(ev), 3000):
                    post(rid, items(ev.iloc[k:k + 3000]))
            for step in range(0, 24 * 6):
                for rid in residents:
                    lo = day[rid] + pd.Timedelta(minutes=10 * step)
                    hi = lo + pd.Timedelta(minutes=10)
                    ev = twin.events[(twin.events["resident_id"] == rid) & (twin.events["time"] >= lo) & (twin.events["time"] < hi)]
                    post(rid, items(ev), sent_at=hi.isoformat())

        caught = {}
        for rid in residents:
            start, end = falls[rid]["start"], falls[rid]["end"]
            hit = [a for a in raised[rid] if a["kind"] == "no_movement"
                   and start <= pd.Timestamp(a["raised_at"]) <= end + pd.Timedelta(minutes=30)]
            if hit:
                caught[rid] = hit[0]
        assert caught, "no planted fall was alerted"
        for a in caught.values():
            assert a["task_id"] and a["text"].startswith("no movement since")

        care = {"X-API-Key": keys["demo-care-manager"]}
        alert = next(iter(caught.values()))
        wanted = {f"{alert['alert_id']}.raised", f"{alert['alert_id']}.escalated", f"{alert['task_id']}.opened"}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not wanted <= set(webhook_receiver.event_ids()):
            time.sleep(0.3)
        assert wanted <= set(webhook_receiver.event_ids())
        bodies = [json.loads(r["body"]) for r in webhook_receiver.requests]
        escalated = next(b for b in bodies if b["event_id"] == f"{alert['alert_id']}.escalated")
        assert escalated["type"] == "alert.escalated" and escalated["alert"]["text"] == alert["text"]
        listed = httpx.get(f"{server.url}/alerts?status=escalated", headers=care, timeout=30).json()["items"]
        assert alert["alert_id"] in {a["alert_id"] for a in listed}
        task = httpx.get(f"{server.url}/tasks?resident_id={alert['resident_id']}", headers=care, timeout=30).json()["items"]
        assert any(t["task_id"] == alert["task_id"] and t["kind"] == "home_hazard_check" for t in task)
    finally:
        stop_server(server)
