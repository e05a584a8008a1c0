"""The event twin: raw events agree with the days they were built from, and the truth is honest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twin.events import INCIDENT_KINDS, SENSOR_MAP, EventTwinConfig, simulate_events
from twin.ingest_events import read_event_log
from twin.simulate import simulate_frames


@pytest.fixture(scope="module")
def frames():
    return simulate_frames(40, 30, 3)


def _plain_days(twin, rid: str) -> set[pd.Timestamp]:
    """Days touched by an incident or a confounder that changes the day's measures."""
    spans = pd.concat([
        twin.incidents[twin.incidents["resident_id"] == rid][["start", "end"]],
        twin.confounders[(twin.confounders["resident_id"] == rid) & (twin.confounders["kind"] != "visitor")][["start", "end"]],
    ])
    touched = set()
    for s, e in spans.itertuples(index=False):
        touched.update(pd.date_range(s.normalize(), e.normalize() + pd.Timedelta(days=1)))
    return touched


def test_batch_ingestion_of_the_events_gives_back_the_days_they_were_built_from(frames, tmp_path):
    res = frames["residents"]
    alone = sorted(res[res["lives_alone"]]["resident_id"])[:5]
    twin = simulate_events(res, frames["sensor_days"], seed=3, resident_ids=alone)
    truth = frames["sensor_days"].set_index(["resident_id", "date"])
    pairs = {c: [] for c in ("night_toilet_visits", "sleep_hours", "time_out_of_home", "kitchen_activity", "longest_inactivity")}
    for rid in alone:
        log = tmp_path / f"{rid}.txt"
        log.write_text("\n".join(twin.casas_lines(rid)))
        got = read_event_log(log, "casas", SENSOR_MAP, rid).sensor_days.set_index(["resident_id", "date"])
        touched = _plain_days(twin, rid)
        for key in got.index:
            if key[1] in touched or key not in truth.index:
                continue
            for c in pairs:
                a, b = got.loc[key, c], truth.loc[key, c]
                if not (pd.isna(a) or pd.isna(b)):
                    pairs[c].append((a, b))
    share = {c: np.mean([abs(a - b) <= tol for a, b in pairs[c]]) for c, tol in
             (("night_toilet_visits", 0), ("sleep_hours", 0.25), ("time_out_of_home", 0.25),
              ("longest_inactivity", 0.25))}
    assert min(len(v) for v in pairs.values()) > 50
    assert share["night_toilet_visits"] >= 0.95
    assert share["sleep_hours"] >= 0.9
    assert share["time_out_of_home"] >= 0.75
    assert share["longest_inactivity"] >= 0.75
    kitchen = np.mean([abs(a - b) <= 0.1 * b + 1 for a, b in pairs["kitchen_activity"]])
    assert kitchen >= 0.6


def test_incidents_are_planted_with_true_times_and_the_fallen_resident_stays_still(frames):
    cfg = EventTwinConfig(fall_rate=0.05, not_up_rate=0.03, night_exit_rate=0.2, toilet_surge_rate=0.03)
    twin = simulate_events(frames["residents"], frames["sensor_days"], seed=5, config=cfg)
    assert set(twin.incidents["kind"]) == set(INCIDENT_KINDS)
    assert (twin.incidents["end"] > twin.incidents["start"]).all()
    impaired = set(frames["residents"].loc[frames["residents"]["cognitive_impairment"], "resident_id"])
    assert set(twin.incidents.loc[twin.incidents["kind"] == "night_exit", "resident_id"]) <= impaired
    ev = twin.events
    visitors = twin.confounders[twin.confounders["kind"].isin(["visitor", "second_person"])]
    for x in twin.incidents[twin.incidents["kind"] == "fall_long_lie"].itertuples():
        inside = ev[(ev["resident_id"] == x.resident_id) & (ev["time"] > x.start + pd.Timedelta(seconds=1))
                    & (ev["time"] < x.end) & (ev["sensor"] != "T001")]
        others = visitors[(visitors["resident_id"] == x.resident_id) & (visitors["start"] < x.end) & (visitors["end"] > x.start)]
        assert inside.empty or len(others), f"{x.resident_id} moved during a long lie from {x.start}"
    for x in twin.incidents[twin.incidents["kind"] == "night_exit"].itertuples():
        door = ev[(ev["resident_id"] == x.resident_id) & (ev["time"] == x.start) & (ev["sensor"] == "DOOR")]
        assert len(door) == 1 and x.start.hour < 6


def test_confounders_of_real_homes_are_present_and_the_twin_is_seeded(frames):
    a = simulate_events(frames["residents"], frames["sensor_days"], seed=11)
    kinds = set(a.confounders["kind"])
    assert {"nap", "visitor", "missed_door", "dropout", "second_person"} <= kinds
    b = simulate_events(frames["residents"], frames["sensor_days"], seed=11)
    pd.testing.assert_frame_equal(a.events, b.events)
    assert a.events["event_id"].is_unique
    # a day without a sensor_days row is a day without events
    sd = frames["sensor_days"]
    rid = sd["resident_id"].iloc[0]
    days = set(a.events.loc[a.events["resident_id"] == rid, "time"].dt.normalize())
    have = set(sd.loc[sd["resident_id"] == rid, "date"])
    assert days - have <= {min(have) - pd.Timedelta(days=1)}


def test_the_armchair_sensor_sees_the_long_sits_only_in_homes_fitted_with_one(frames):
    res, sd = frames["residents"], frames["sensor_days"]
    with_chair = simulate_events(res, sd, seed=5, config=EventTwinConfig(chair_share=1.0, fall_rate=0.05, battery_rate=0.0))
    without = simulate_events(res, sd, seed=5, config=EventTwinConfig(chair_share=0.0, fall_rate=0.05, battery_rate=0.0))
    half = simulate_events(res, sd, seed=5, config=EventTwinConfig(chair_share=0.5, fall_rate=0.05))
    assert SENSOR_MAP["CHAIR"] == "chair"
    assert without.chair_homes == frozenset() and "CHAIR" not in set(without.events["sensor"])
    assert 0 < len(half.chair_homes) < res["resident_id"].nunique()
    assert set(half.events.loc[half.events["sensor"] == "CHAIR", "resident_id"]) <= half.chair_homes
    # the sensor is added to the same homes: every other event and the truth are unchanged
    other = with_chair.events[with_chair.events["sensor"] != "CHAIR"].drop(columns="event_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(other, without.events.drop(columns="event_id").reset_index(drop=True))
    pd.testing.assert_frame_equal(with_chair.incidents, without.incidents)

    ev = with_chair.events
    seated_at, seen = {}, {}  # resident -> when they sat down, while seated; their last event
    long_sits, falls_in_chair = 0, 0
    falls = with_chair.incidents[with_chair.incidents["kind"] == "fall_long_lie"]
    fall_starts = {(r, s) for r, s in zip(falls["resident_id"], falls["start"], strict=True)}
    for rid, t, sensor, value in ev[["resident_id", "time", "sensor", "value"]].itertuples(index=False):
        if t - seen.get(rid, t) > pd.Timedelta(hours=1):
            seated_at.pop(rid, None)  # the gateway was offline: the chair's getting up was not sent
        seen[rid] = t
        if sensor == "CHAIR":
            if value == "ON":
                seated_at[rid] = t
            elif rid in seated_at:
                long_sits += (t - seated_at.pop(rid)) > pd.Timedelta(hours=2)
        elif sensor == "BED" and value == "ON":
            assert rid not in seated_at, f"{rid} in bed and in the chair at {t}"
    for rid, start in fall_starts:
        sits = ev[(ev["resident_id"] == rid) & (ev["sensor"] == "CHAIR") & (ev["time"] <= start)]
        falls_in_chair += len(sits) > 0 and sits["value"].iloc[-1] == "ON"
    assert long_sits > 100  # the day's longest stillness is dozing in the armchair
    assert len(fall_starts) > 5 and falls_in_chair == 0  # a fall happens up and about, not seated


def test_the_bedroom_chair_sensor_sees_the_sits_in_the_bedroom_and_leaves_the_days_as_they_were(frames, tmp_path):
    res, sd = frames["residents"], frames["sensor_days"]
    full = simulate_events(res, sd, seed=5, config=EventTwinConfig(chair_share=1.0, bedroom_chair_share=1.0,
                                                                   fall_rate=0.05, battery_rate=0.0))
    armchair = simulate_events(res, sd, seed=5, config=EventTwinConfig(chair_share=1.0, fall_rate=0.05, battery_rate=0.0))
    half = simulate_events(res, sd, seed=5, config=EventTwinConfig(chair_share=0.5, bedroom_chair_share=0.5, fall_rate=0.05))
    assert SENSOR_MAP["BEDROOM_CHAIR"] == "chair"
    assert armchair.bedroom_chair_homes == frozenset() and "BEDROOM_CHAIR" not in set(armchair.events["sensor"])
    assert 0 < len(half.bedroom_chair_homes) < res["resident_id"].nunique()
    assert half.bedroom_chair_homes != half.chair_homes  # drawn apart from the armchair's
    assert set(half.events.loc[half.events["sensor"] == "BEDROOM_CHAIR", "resident_id"]) <= half.bedroom_chair_homes
    # the sensor is added to the same homes: every other event and the truth are unchanged
    other = full.events[full.events["sensor"] != "BEDROOM_CHAIR"].drop(columns="event_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(other, armchair.events.drop(columns="event_id").reset_index(drop=True))
    pd.testing.assert_frame_equal(full.incidents, armchair.incidents)

    # a sit starts within a minute of motion in the bedroom (its motion sensor then sees nothing
    # while they sit still), never while in bed or in the armchair, and nobody falls seated
    ev = full.events
    sits, seated_at, last_motion, in_bed, seen = 0, {}, {}, set(), {}
    for rid, t, sensor, value in ev[["resident_id", "time", "sensor", "value"]].itertuples(index=False):
        if t - seen.get(rid, t) > pd.Timedelta(hours=1):  # the gateway was offline: what it missed is unknown
            seated_at.pop(rid, None)
            in_bed.discard(rid)
        seen[rid] = t
        if sensor in ("BEDROOM_CHAIR", "CHAIR") and value == "ON":
            if sensor == "BEDROOM_CHAIR":
                assert rid not in in_bed and rid not in seated_at, f"{rid} sat down twice or in bed at {t}"
                sits += 1
                assert t - last_motion[rid] <= pd.Timedelta(seconds=60), (rid, t, last_motion[rid])
            seated_at[rid] = sensor
        elif sensor in ("BEDROOM_CHAIR", "CHAIR"):
            seated_at.pop(rid, None)
        elif sensor == "BED":
            (in_bed.add if value == "ON" else in_bed.discard)(rid)
            seated_at.pop(rid, None)  # a day the gateway missed the getting up
        elif sensor == "BEDROOM" and value == "ON":
            last_motion[rid] = t
    assert sits > 200
    falls = full.incidents[full.incidents["kind"] == "fall_long_lie"]
    for rid, start in zip(falls["resident_id"], falls["start"], strict=True):
        before = ev[(ev["resident_id"] == rid) & (ev["sensor"] == "BEDROOM_CHAIR") & (ev["time"] <= start)]
        assert before.empty or before["value"].iloc[-1] == "OFF"

    # presence only: the days ingested from the events are those of the home without it
    alone = sorted(res[res["lives_alone"]]["resident_id"])[:3]
    for rid in alone:
        got = []
        for twin in (full, armchair):
            log = tmp_path / f"{rid}.txt"
            log.write_text("\n".join(twin.casas_lines(rid)))
            got.append(read_event_log(log, "casas", SENSOR_MAP, rid).sensor_days.reset_index(drop=True))
        pd.testing.assert_frame_equal(got[0], got[1])


def test_the_resident_is_seen_again_soon_after_the_kitchen_and_never_gets_out_of_bed_while_out(frames):
    """Up and about, a resident walks back to their seat after a kitchen activation (in view of
    the room's motion and chair sensors) instead of vanishing into stillness for the rest of the
    sit, and a nap ends before the outing or the long sit that follows it."""
    twin = simulate_events(frames["residents"], frames["sensor_days"], seed=5,
                           config=EventTwinConfig(chair_share=1.0, bedroom_chair_share=1.0))
    truth = pd.concat([twin.incidents[["resident_id", "start", "end"]],
                       twin.confounders.loc[twin.confounders["kind"] != "nap", ["resident_id", "start", "end"]]])
    truth_by = {r: g for r, g in truth.groupby("resident_id")}
    after_kitchen, bed_after_door = [], 0
    for rid, ev in twin.events[twin.events["sensor"] != "T001"].groupby("resident_id"):
        ons = ev[ev["value"].isin(["ON", "OPEN"]) | (ev["sensor"] == "BED")]
        t, sensor, value = ons["time"].tolist(), ons["sensor"].tolist(), ons["value"].tolist()
        spans = truth_by.get(rid)
        for i in range(len(t) - 1):
            if spans is not None and ((spans["start"] <= t[i + 1]) & (spans["end"] >= t[i])).any():
                continue
            if sensor[i] == "KITCHEN":
                after_kitchen.append(t[i + 1] - t[i] <= pd.Timedelta(minutes=30))
            if sensor[i + 1] == "BED" and value[i + 1] == "OFF" and sensor[i] == "DOOR":
                bed_after_door += 1
    assert len(after_kitchen) > 5000
    assert np.mean(after_kitchen) >= 0.995, f"{1 - np.mean(after_kitchen):.2%} unseen for 30 min after the kitchen"
    assert bed_after_door == 0


def _ons(twin, fall, lo_min: float, hi_min: float) -> pd.DataFrame:
    ev = twin.events
    return ev[(ev["resident_id"] == fall.resident_id) & (ev["value"] == "ON")
              & (ev["time"] > fall.start + pd.Timedelta(seconds=1) + pd.Timedelta(minutes=lo_min))
              & (ev["time"] < fall.start + pd.Timedelta(minutes=hi_min))]


def test_fallen_residents_made_to_stir_are_seen_only_in_the_room_they_lie_in_within_the_first_hour(frames):
    res, sd = frames["residents"], frames["sensor_days"]
    cfg = {"fall_rate": 0.05, "battery_rate": 0.0, "dropout_rate": 0.0}
    still = simulate_events(res, sd, seed=5, config=EventTwinConfig(**cfg))
    stir = simulate_events(res, sd, seed=5, config=EventTwinConfig(fall_stir_share=1.0, **cfg))
    pd.testing.assert_frame_equal(still.incidents, stir.incidents)
    falls = stir.incidents[stir.incidents["kind"] == "fall_long_lie"]
    assert len(falls) > 20
    stirs = 0
    for x in falls.itertuples():
        lie = (x.end - x.start).total_seconds() / 60
        added = len(_ons(stir, x, 0, 61)) - len(_ons(still, x, 0, 61))
        assert 1 <= added <= 3, (x.resident_id, x.start, added)
        assert set(_ons(stir, x, 0, 61)["sensor"]) - set(_ons(still, x, 0, 61)["sensor"]) <= {x.room}
        assert len(_ons(stir, x, 61, lie)) == len(_ons(still, x, 61, lie))  # then still until help comes
        stirs += added
    assert len(stir.events) - len(still.events) == 2 * stirs  # nothing else of the homes changes


def test_an_ill_residents_day_begins_when_they_finally_get_up(frames):
    """After getting up hours late the resident moves about as on any day (before, the day's
    long sit and moves planned for the morning left them unseen for hours after)."""
    twin = simulate_events(frames["residents"], frames["sensor_days"], seed=5,
                           config=EventTwinConfig(chair_share=1.0, bedroom_chair_share=1.0, not_up_rate=0.05))
    ev = twin.events[(twin.events["sensor"] != "T001") & twin.events["value"].isin(["ON", "OPEN"])]
    late = twin.incidents[twin.incidents["kind"] == "not_up"]
    assert len(late) > 30
    for x in late.itertuples():
        after = ev[(ev["resident_id"] == x.resident_id) & (ev["time"] > x.end + pd.Timedelta(minutes=2))]
        assert after["time"].iloc[0] - x.end < pd.Timedelta(minutes=30), (x.resident_id, x.end)
