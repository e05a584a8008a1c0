"""`twincare alerts evaluate` and `alerts replay`: the JSON a script would read."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from training.cli import app
from twin.events import SENSOR_MAP, simulate_events
from twin.simulate import simulate_frames


def test_evaluate_reports_every_incident_kind_at_each_sensitivity(tmp_path):
    res = CliRunner().invoke(app, ["alerts", "evaluate", "--residents", "12", "--days", "30", "--seed", "2",
                                   "--sensitivity", "1", "--sensitivity", "2", "--json",
                                   "--save-events", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    kinds = [x["kind"] for x in out["incidents"]]
    assert kinds == ["fall_long_lie", "not_up", "night_exit", "toilet_surge"]
    for x in out["incidents"]:
        assert set(x) >= {"kind", "median_delay_min", "p90_delay_min", "recall", "false_alarms_per_resident_month"}
    # every figure comes with its 95% interval around it; a handful of incidents all found is not
    # "recall 1.000 [1.000, 1.000]"
    for setting in out["settings"]:
        lo, hi = setting["false_alarms_per_resident_month_ci"]
        assert lo <= setting["false_alarms_per_resident_month"] <= hi
        for x in setting["incidents"]:
            for key in ("recall", "median_delay_min", "false_alarms_per_resident_month"):
                if x[key] is not None:
                    lo, hi = x[f"{key}_ci"]
                    assert lo <= x[key] <= hi, (x["kind"], key)
            if x["incidents"] and x["recall"] == 1.0:
                assert x["recall_ci"][0] < 1.0
    # homes with and without the chair sensor are scored apart, and together make the whole
    assert 0 < out["residents_with_chair_sensor"] < out["residents"]
    for setting in out["settings"]:
        groups = setting["groups"]
        assert set(groups) == {"chair_sensor", "motion_only"}
        assert groups["chair_sensor"]["residents"] + groups["motion_only"]["residents"] == setting["residents"]
        assert groups["chair_sensor"]["alerts"] + groups["motion_only"]["alerts"] == setting["alerts"]
    budgets = [s["alerts_per_care_manager_week"] for s in out["settings"]]
    assert budgets[0] >= budgets[1]  # a less sensitive setting never raises more alerts
    assert (tmp_path / "ev" / "truth" / "incidents.parquet").is_file()
    assert len(pd.read_parquet(tmp_path / "ev" / "events.parquet")) == out["events"]


def test_replay_lists_the_alerts_a_real_log_would_have_raised(tmp_path):
    frames = simulate_frames(6, 30, 4)
    twin = simulate_events(frames["residents"], frames["sensor_days"], seed=4)
    falls = twin.incidents[twin.incidents["kind"] == "fall_long_lie"]
    rid = falls["resident_id"].iloc[0] if len(falls) else twin.events["resident_id"].iloc[0]
    log = tmp_path / "home.txt"
    log.write_text("\n".join(twin.casas_lines(rid)) + "\n")
    sensor_map = tmp_path / "map.json"
    sensor_map.write_text(json.dumps(SENSOR_MAP))
    res = CliRunner().invoke(app, ["alerts", "replay", str(log), "--format", "casas", "--sensor-map", str(sensor_map),
                                   "--learning-days", "7", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["days"] >= 28
    assert out["alerts"], "a month of a home's events raises at least one alert after learning"
    for a in out["alerts"]:
        assert set(a) == {"kind", "at", "text"}
        pd.Timestamp(a["at"])


def test_evaluate_scores_each_sensor_kit_apart():
    from training.cmd_alerts import kit_groups

    homes = {f"R{i}" for i in range(8)}
    groups = kit_groups(homes, chair_homes={"R0", "R1", "R2"}, bedroom_chair_homes={"R2", "R3"})
    assert groups == {"chair_sensor": {"R0", "R1"}, "bedroom_chair_sensor": {"R3"},
                      "both_chair_sensors": {"R2"}, "motion_only": {"R4", "R5", "R6", "R7"}}
    # homes without bedroom chair sensors are grouped as they always were
    assert kit_groups(homes, {"R0"}, set()) == {"chair_sensor": {"R0"}, "motion_only": homes - {"R0"}}


def test_ratings_in_a_replay_tune_the_place_and_time_of_day_each_false_alarm_named():
    """Care managers rating every alert an hour after it is raised (real when an incident explains
    it): each rating reaches the monitor, a no_movement one tuning its own place and time of day."""
    from training.alerts_eval import Ratings, match_incidents, replay
    from twin.events import EventTwinConfig

    frames = simulate_frames(30, 45, 3)
    twin = simulate_events(frames["residents"], frames["sensor_days"], seed=3,
                           config=EventTwinConfig(chair_share=1, bedroom_chair_share=1))
    rep = replay(twin.events, twin.sensor_map,
                 ratings=Ratings(twin.incidents, pd.Timedelta(hours=1), confounders=twin.confounders))
    alerts = pd.DataFrame([a.to_dict() | {"at": a.at} for a in rep.alerts])
    _, real = match_incidents(alerts, twin.incidents)
    last = twin.events.groupby(twin.events["resident_id"].astype(str))["time"].max()
    missed = twin.confounders[twin.confounders["kind"] == "missed_door"]
    expected: dict[str, dict[str, float]] = {}
    door: dict[str, int] = {}
    for a, is_real in zip(rep.alerts, real, strict=True):
        if pd.Timestamp(a.at) + pd.Timedelta(hours=1) > last[a.resident_id]:
            continue  # not rated before the home's last event
        mine = missed[missed["resident_id"].astype(str) == a.resident_id]
        if not is_real and ((mine["start"] <= pd.Timestamp(a.at)) & (mine["end"] >= pd.Timestamp(a.since))).any():
            door[a.resident_id] = door.get(a.resident_id, 0) + 1  # rated "out": no wait tuned
            continue
        key = a.cell if a.kind == "no_movement" else a.kind
        mine = expected.setdefault(a.resident_id, {})
        mine[key] = min(max(mine.get(key, 1.0) * (0.9 if is_real else 1.25), 0.7), 3.0)
    expected = {r: {k: v for k, v in t.items() if v != 1.0} for r, t in expected.items()}
    assert {r: t for r, t in expected.items() if t} == {r: pytest.approx(t) for r, t in rep.tuning.items()}
    assert door and rep.door_missed == door  # outings whose door event was missed, rated "out"
    false_cells = [a.cell for a, is_real in zip(rep.alerts, real, strict=True) if a.kind == "no_movement" and not is_real]
    assert false_cells and all(c.endswith(("/day", "/night")) for c in false_cells)
    assert any("/" in k for t in rep.tuning.values() for k in t)  # a place tuned
    assert all("no_movement" not in t for t in rep.tuning.values())  # never the whole kind
    # unrated, nothing is tuned
    assert replay(twin.events, twin.sensor_map).tuning == {}
