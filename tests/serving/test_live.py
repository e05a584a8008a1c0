"""Live events through the real route: home gateways' batches (device keys), the sensor days they
make against batch ingestion, bad and repeated events, and a planted fall alerted within minutes
with its urgent visit, webhook event, escalation, acknowledgement and rating."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.serving.test_api import service_app, service_env, serving_home  # noqa: F401  (fixture)

N_RESIDENTS = 4


def gateway_keys(home: Path, resident_ids: list[str]) -> dict[str, str]:
    """The demo keys plus one device key per home; returns name -> clear key."""
    from serving.auth import DEMO_KEYS, create_keys_file

    keys = [*DEMO_KEYS, *[(f"gateway-{r}", "device", r) for r in resident_ids]]
    return create_keys_file(home / "api_keys.json", keys, overwrite=True)


def event_twin(history: Path, days: int, n: int, seed: int = 5):
    """Raw events of the last `days` days of living-alone residents (long-lie falls made
    frequent), and n (resident, fall) pairs the offline evaluation (`training.alerts_eval`, the
    same rules over the whole log at once) detects after the learning period."""
    from training.alerts_eval import replay
    from twin.events import SENSOR_MAP, EventTwinConfig, simulate_events
    from twin.store import HistoryStore

    store = HistoryStore(history)
    residents = store.read("residents")
    sd = store.read("sensor_days")
    sd = sd[sd["date"] > sd["date"].max() - pd.Timedelta(days=days)]
    alone = sorted(residents[residents["lives_alone"]]["resident_id"])[:24]
    twin = simulate_events(residents, sd, seed=seed, resident_ids=alone,
                           config=EventTwinConfig(fall_rate=0.06, night_fall_share=0.0))
    offline = replay(twin.events, SENSOR_MAP).alerts
    first = twin.events["time"].min().normalize() + pd.Timedelta(days=16)
    chosen: dict[str, pd.Series] = {}
    for inc in twin.incidents[(twin.incidents["kind"] == "fall_long_lie") & (twin.incidents["start"] > first)].itertuples():
        seen = [a for a in offline if a.resident_id == inc.resident_id and a.kind == "no_movement"
                and inc.start <= a.at <= inc.end]
        if seen and inc.resident_id not in chosen and len(chosen) < n:
            chosen[inc.resident_id] = pd.Series({"start": inc.start, "end": inc.end, "offline_at": seen[0].at})
    return twin, chosen


@pytest.fixture(scope="module")
def live(serving_home, tmp_path_factory):  # noqa: F811
    """(client, keys, home, twin, residents, runtime) on the real app with gateways' keys and a sensor map."""
    from starlette.testclient import TestClient

    from serving.api.app import app as http_app
    from twin.events import SENSOR_MAP

    trained, _ = serving_home
    home = tmp_path_factory.mktemp("live_home")
    for name in ("mlflow.db", "online.db"):
        shutil.copy(trained / name, home / name)
    shutil.copytree(trained / "history", home / "history")
    twin, falls = event_twin(home / "history", days=30, n=N_RESIDENTS)
    residents = list(falls)
    keys = gateway_keys(home, residents)
    (home / "sensor_map.json").write_text(json.dumps(SENSOR_MAP))
    env = {"TWINCARE_ALERT_TICK_SECONDS": "0", "TWINCARE_ALERT_ESCALATE_SECONDS": "2", "TWINCARE_LIVE_DAYS_SECONDS": "3600"}
    with service_env(home, **env), TestClient(service_app(), raise_server_exceptions=False) as client:
        yield client, keys, home, twin, residents, http_app.state.runtime, falls


def items(ev: pd.DataFrame) -> list[dict]:
    stamps = ev["time"].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    return [{"id": i, "line": f"{t} {s} {v}"} for i, t, s, v in zip(ev["event_id"], stamps, ev["sensor"], ev["value"], strict=True)]


def post(client, key: str, batch: list[dict], **extra):
    return client.post("/events", json={"events": batch, **extra}, headers={"X-API-Key": key})


def test_a_homes_events_in_shuffled_repeated_batches_make_the_sensor_days_of_batch_ingestion(live, tmp_path):
    from twin.events import SENSOR_MAP
    from twin.ingest_events import read_event_log

    client, keys, _, twin, residents, rt, falls = live
    rid = residents[-1]
    ev = twin.events[(twin.events["resident_id"] == rid) & (twin.events["time"] < twin.events["time"].min() + pd.Timedelta(days=6))]
    all_items = items(ev)
    # batches out of order inside, one batch sent twice, one event in two batches
    batches = [all_items[k:k + 400] for k in range(0, len(all_items), 400)]
    batches = [b[::-1] for b in batches]
    batches.insert(2, batches[1])
    batches[3] = batches[3] + [batches[0][0]]
    answers = []
    for b in batches:
        r = post(client, keys[f"gateway-{rid}"], b)
        assert r.status_code == 200, r.text
        answers.append(r.json())
    assert sum(a["accepted"] for a in answers) == len(all_items)
    assert answers[2]["accepted"] == 0 and answers[2]["duplicates"] == len(batches[1])
    assert rt.live.live.event_count(rid) == len(all_items)
    assert rt.live.flush_days() >= 6  # (rows are rebuilt at most hourly here; now, on demand)

    log = tmp_path / "log.txt"
    log.write_text("\n".join(twin.casas_lines(rid)[: len(all_items)]))
    batch = read_event_log(log, "casas", SENSOR_MAP, rid).sensor_days.reset_index(drop=True)
    got = rt.live.live.days(rid)[list(batch.columns)].reset_index(drop=True)
    assert len(batch) >= 6
    pd.testing.assert_frame_equal(got, batch, check_dtype=False)


def test_bad_events_get_a_422_naming_them_and_the_good_ones_are_kept(live):
    client, keys, _, twin, residents, rt, falls = live
    rid = residents[-1]
    key = keys[f"gateway-{rid}"]
    before = rt.live.live.event_count(rid)
    good = [{"id": "bad-test-1", "line": "2030-01-01 10:00:00 LIVING ON"},
            {"id": "bad-test-2", "time": "2030-01-01T10:00:40", "sensor": "LIVING", "value": "OFF"}]
    bad = [{"id": "bad-test-3", "line": "2030-01-01 10:00:00 LIVING"},
           {"id": "bad-test-4", "line": "2030-13-01 10:00:00 LIVING ON"},
           {"id": "bad-test-5", "line": "2030-01-01 10:00:00 LIVING MAYBE"},
           {"line": "2030-01-01 10:00:00 LIVING ON"},
           {"id": "bad-test-1", "line": "2030-01-01 11:00:00 HALL ON"}]
    r = post(client, key, good + bad)
    assert r.status_code == 422, r.text
    body = r.json()
    assert "5 event(s) rejected" in body["error"] and "bad-test-3" in body["error"]
    rejected = {int(x["loc"][2]): x["msg"] for x in body["detail"]}  # the one error shape
    assert rejected == {
        2: "expected 'date time sensor value'",
        3: "bad date or time",
        4: "unknown value 'MAYBE' (ON/OFF/OPEN/CLOSE or a number)",
        5: "'id' must be printable text of 1-128 characters",
        6: "the batch holds this id twice with different content",
    }
    assert "2 new event(s) kept" in body["error"] and rt.live.live.event_count(rid) == before + 2
    # the same id again with other content is refused; the same event again is a duplicate
    r = post(client, key, [{"id": "bad-test-2", "line": "2030-01-01 10:05:00 LIVING OFF"}])
    assert r.status_code == 422 and "already used for a different event" in r.text
    r = post(client, key, good)
    assert r.status_code == 200 and r.json()["duplicates"] == 2


def test_a_device_key_sends_only_its_own_homes_events_and_reads_nothing(live):
    client, keys, _, _, residents, _, _ = live
    key = keys[f"gateway-{residents[0]}"]
    r = post(client, key, [], resident_id=residents[1])
    assert r.status_code == 403 and "another resident" in r.json()["error"]
    assert client.get("/alerts", headers={"X-API-Key": key}).status_code == 403
    assert client.get("/tasks", headers={"X-API-Key": key}).status_code == 403
    r = post(client, keys["demo-care-manager"], [], resident_id=residents[0])
    assert r.status_code == 403
    r = post(client, key, [{"id": str(i), "line": "2030-01-01 10:00:00 HALL ON"} for i in range(5001)])
    assert r.status_code == 413


def stream(client, key: str, ev: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, minutes: int = 1) -> list[dict]:
    """Events up to `start` in large batches, then minute by minute (with the gateway's clock)
    until `end`, as a gateway sending a batch a minute would; returns the alerts raised."""
    raised = []
    before = ev[ev["time"] < start]
    for k in range(0, len(before), 2000):
        r = post(client, key, items(before.iloc[k:k + 2000]))
        assert r.status_code == 200, r.text
        raised += r.json()["alerts"]
    t = start
    while t < end:
        nxt = t + pd.Timedelta(minutes=minutes)
        part = ev[(ev["time"] >= t) & (ev["time"] < nxt)]
        r = post(client, key, items(part), sent_at=nxt.isoformat())
        assert r.status_code == 200, r.text
        raised += r.json()["alerts"]
        t = nxt
    return raised


def test_a_planted_fall_is_alerted_within_minutes_opens_an_urgent_visit_and_escalates(live):
    client, keys, _, twin, residents, rt, falls = live
    rid = residents[0]
    fall = falls[rid]
    ev = twin.events[twin.events["resident_id"] == rid]
    until = fall["offline_at"] + pd.Timedelta(minutes=10)
    ev = ev[ev["time"] < until]
    raised = stream(client, keys[f"gateway-{rid}"], ev, fall["start"] - pd.Timedelta(minutes=30), until)
    hits = [a for a in raised if a["kind"] == "no_movement" and pd.Timestamp(a["raised_at"]) >= fall["start"]]
    assert hits, (fall.to_dict(), raised)
    alert = hits[0]
    # raised by the gateway's next minute after the rule's limit passed: the offline evaluation's
    # moment plus at most the batch interval
    assert pd.Timestamp(alert["due_at"]) == pd.Timestamp(fall["offline_at"])
    assert pd.Timedelta(0) <= pd.Timestamp(alert["raised_at"]) - pd.Timestamp(fall["offline_at"]) <= pd.Timedelta(minutes=1)
    assert alert["text"].startswith("no movement since")
    # the urgent visit, paid above a high-band visit, and the webhook event
    task = rt.store.get_task(alert["task_id"])
    assert (task.urgency, task.reason, task.status) == ("high", "alert", "open")
    # (one active alert visit per resident: an earlier alert of the stream may have opened it)
    assert task.credits > 1.5 * 1.5 and task.explanation.startswith("Alert (no movement): no movement since")
    assert task.due_date == rt.store.now().date()
    events = {e.event_type for e in rt.store.events(task_id=alert["task_id"])}
    assert {"alert.raised", "task.opened"} <= events

    # no one acknowledges it and no volunteer claims the visit: the care manager gets it
    care = {"X-API-Key": keys["demo-care-manager"]}
    time.sleep(2.1)
    assert rt.live.tick()["escalated"] >= 1
    listed = client.get(f"/alerts?resident_id={rid}", headers=care).json()["items"]
    mine = next(a for a in listed if a["alert_id"] == alert["alert_id"])
    assert mine["status"] == "escalated" and mine["escalated_at"]
    assert "alert.escalated" in {e.event_type for e in rt.store.events(task_id=alert["task_id"])}

    # acknowledged, then rated a false alarm: this resident's stillness limit of that place and
    # time of day grows, and no other
    r = client.post(f"/alerts/{alert['alert_id']}/acknowledge", headers=care)
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    assert alert["cell"] and alert["cell"].endswith(("/day", "/night"))
    r = client.post(f"/alerts/{alert['alert_id']}/rate", json={"rating": "false"}, headers=care)
    assert r.status_code == 200, r.text
    assert r.json()["alert"]["rating"] == "false" and r.json()["cell_tuning"] == {alert["cell"]: pytest.approx(1.25)}
    assert r.json()["tuning"]["no_movement"] == 1.0
    assert client.post(f"/alerts/{alert['alert_id']}/rate", json={"rating": "real"}, headers=care).status_code == 409
    r = client.post(f"/alerts/{alert['alert_id']}/rate", json={"rating": "real", "reason": "out"}, headers=care)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "reason"]
    assert client.post("/alerts/Anone/acknowledge", headers=care).status_code == 404
    # kept with when the stillness began: a no_movement alert rated real is a lie not to learn
    assert rt.live.live.ratings(rid) == [("no_movement", False, datetime.fromisoformat(alert["since"]), alert["cell"],
                                          None)]


def test_an_acknowledged_alert_is_not_escalated(live):
    client, keys, _, twin, residents, rt, falls = live
    care = {"X-API-Key": keys["demo-care-manager"]}
    rt.live.tick()
    for a in client.get("/alerts?status=open", headers=care).json()["items"]:
        client.post(f"/alerts/{a['alert_id']}/acknowledge", headers=care)
    rid = residents[1]
    fall = falls[rid]
    ev = twin.events[twin.events["resident_id"] == rid]
    until = fall["offline_at"] + pd.Timedelta(minutes=10)
    ev = ev[ev["time"] < until]
    raised = stream(client, keys[f"gateway-{rid}"], ev, fall["start"] + timedelta(minutes=10), until, minutes=5)
    assert raised
    for a in raised:
        assert client.post(f"/alerts/{a['alert_id']}/acknowledge", headers=care).status_code == 200
    time.sleep(2.1)
    rt.live.tick()
    assert client.get(f"/alerts?status=escalated&resident_id={rid}", headers=care).json()["items"] == []


def test_the_cockpit_shows_the_alerts_view_once_live_events_are_on(live):
    client, keys, *_ = live
    meta = client.get("/cockpit/meta", headers={"X-API-Key": keys["demo-care-manager"]}).json()
    assert "alerts" not in meta["panels_not_available"] and "what_if" in meta["panels_not_available"]
    page = client.get("/").text
    assert 'id="alert-list"' in page


def test_an_away_span_silences_the_home_and_its_settings_survive_a_rebuild(live):
    client, keys, _, twin, residents, rt, falls = live
    care = {"X-API-Key": keys["demo-care-manager"]}
    rid = residents[2]
    fall = falls[rid]
    span = {"start": (fall["start"] - pd.Timedelta(hours=1)).isoformat(),
            "end": (fall["end"] + pd.Timedelta(hours=1)).isoformat(), "note": "at her daughter's"}
    r = client.post(f"/residents/{rid}/away", json=span, headers=care)
    assert r.status_code == 201, r.text
    away_id = r.json()["away_id"]
    assert r.json()["note"] == "at her daughter's" and r.json()["start"] == span["start"]

    ev = twin.events[twin.events["resident_id"] == rid]
    until = fall["offline_at"] + pd.Timedelta(minutes=10)
    raised = stream(client, keys[f"gateway-{rid}"], ev[ev["time"] < until], fall["start"] - pd.Timedelta(minutes=30), until)
    assert not [a for a in raised if pd.Timestamp(a["raised_at"]) >= fall["start"]], raised
    stored = client.get(f"/alerts?resident_id={rid}", headers=care).json()["items"]
    assert not [a for a in stored if pd.Timestamp(a["since"]) >= pd.Timestamp(span["start"])], stored

    settings = client.get(f"/residents/{rid}/alert_settings", headers=care).json()
    assert [s["away_id"] for s in settings["away"]] == [away_id]
    assert settings["quiet_hours"] == {"start": "22:00", "end": "07:00", "default": True}

    # bad settings are refused by name; the unknown are 404
    bad = client.post(f"/residents/{rid}/away", json={**span, "end": span["start"]}, headers=care)
    assert bad.status_code == 422 and "end must come after start" in bad.json()["error"]
    assert bad.json()["detail"][0]["loc"] == ["body", "end"]
    bad = client.put(f"/residents/{rid}/quiet_hours", json={"start": "25:00", "end": "07:00"}, headers=care)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "start"]
    bad = client.put(f"/residents/{rid}/quiet_hours", json={"start": "07:00", "end": "07:00"}, headers=care)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "end"]
    assert client.get("/residents/NOPE/alert_settings", headers=care).status_code == 404
    assert client.delete(f"/residents/{rid}/away/999999", headers=care).status_code == 404

    r = client.put(f"/residents/{rid}/quiet_hours", json={"start": "21:30", "end": "06:00"}, headers=care)
    assert r.status_code == 200 and r.json()["quiet_hours"] == {"start": "21:30", "end": "06:00", "default": False}

    # kept in the store: a monitor rebuilt from it (as after a restart) has the span and the hours
    with rt.live._lock:
        rt.live._homes.pop(rid)
    monitor = rt.live._home(rid).monitor
    assert (monitor.settings.quiet_start_hour, monitor.settings.quiet_end_hour) == (21.5, 6.0)
    # cleared: the service's default hours apply again, to the loaded monitor at once
    r = client.delete(f"/residents/{rid}/quiet_hours", headers=care)
    assert r.status_code == 200 and r.json()["quiet_hours"] == {"start": "22:00", "end": "07:00", "default": True}
    assert (monitor.settings.quiet_start_hour, monitor.settings.quiet_end_hour) == (22.0, 7.0)
    assert monitor.away == [(monitor.seconds(pd.Timestamp(span["start"]).to_pydatetime()),
                             monitor.seconds(pd.Timestamp(span["end"]).to_pydatetime()))]

    # cancelled: the same stored events, replayed (and the gateway's next batch), raise the fall
    r = client.delete(f"/residents/{rid}/away/{away_id}", headers=care)
    assert r.status_code == 200 and r.json()["away_id"] == away_id
    assert client.get(f"/residents/{rid}/alert_settings", headers=care).json()["away"] == []
    with rt.live._lock:
        rt.live._homes.pop(rid)
    assert post(client, keys[f"gateway-{rid}"], [], sent_at=until.isoformat()).status_code == 200
    replayed = client.get(f"/alerts?resident_id={rid}", headers=care).json()["items"]
    assert [a for a in replayed if a["kind"] == "no_movement" and pd.Timestamp(a["since"]) >= pd.Timestamp(span["start"])]


def test_a_day_over_on_the_homes_clock_is_folded_into_the_vector_assess_serves(live, tmp_path):
    """Live days after the nightly history give the resident a newer vector at once: the training
    pipeline's row over the history with the same events ingested in batch."""
    from features.pipeline import build_features, load_history
    from twin.events import SENSOR_MAP
    from twin.ingest_events import read_event_log
    from twin.store import HistoryStore

    client, keys, home, twin, residents, rt, falls = live
    care = {"X-API-Key": keys["demo-care-manager"]}
    rid = residents[3]
    last = HistoryStore(home / "history").read("sensor_days", ["date"])["date"].max().normalize()
    nightly = client.post("/assess", json={"resident_ids": [rid], "act": False}, headers=care).json()["results"][0]
    assert pd.Timestamp(nightly["as_of_date"]) == last + pd.Timedelta(days=1)
    before = rt.features.lookup([rid])[2][0].copy()

    # the home's last three recorded days, lived again as the three days after the history
    ev = twin.events[(twin.events["resident_id"] == rid) & (twin.events["time"] >= last - pd.Timedelta(days=2))].copy()
    ev["time"] += pd.Timedelta(days=3)
    ev["event_id"] = "next-" + ev["event_id"].astype(str)
    sent = (last + pd.Timedelta(days=4, minutes=5)).isoformat()
    for k in range(0, len(ev), 2000):
        r = post(client, keys[f"gateway-{rid}"], items(ev.iloc[k:k + 2000]), sent_at=sent)
        assert r.status_code == 200, r.text
    rt.live.flush_days()  # (rows are rebuilt at most hourly here; now, on demand)
    stored = set(rt.live.live.days(rid)["date"])
    assert {last + pd.Timedelta(days=k) for k in (1, 2, 3)} <= stored
    rt.live.fold_vectors()
    assert rt.live.vectors.due(rid, rt.live._home(rid).clock) is None  # built; nothing new since

    served = client.post("/assess", json={"resident_ids": [rid], "act": False}, headers=care).json()["results"][0]
    assert pd.Timestamp(served["as_of_date"]) == last + pd.Timedelta(days=4)
    _, as_of, values = rt.features.lookup([rid])
    assert not np.allclose(values[0], before, equal_nan=True)  # the new days changed what is served

    # the same events ingested in batch into a copy of the history, and the nightly pipeline
    log = tmp_path / "next.txt"
    stamps = ev["time"].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    log.write_text("\n".join(f"{t} {s} {v}" for t, s, v in zip(stamps, ev["sensor"], ev["value"], strict=True)))
    days = read_event_log(log, "casas", SENSOR_MAP, rid).sensor_days
    copy = tmp_path / "history"
    shutil.copytree(home / "history", copy)
    HistoryStore(copy).append("sensor_days", days[days["date"] <= last + pd.Timedelta(days=3)])
    table = build_features(load_history(copy), [last + pd.Timedelta(days=4)], threads=1)
    expected = table[table["resident_id"] == rid].iloc[0]
    np.testing.assert_allclose(values[0], expected[list(rt.features.columns)].to_numpy(dtype=float), equal_nan=True)
