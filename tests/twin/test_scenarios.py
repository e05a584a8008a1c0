"""Planted drifts change the history only from their start day, and in the way they claim."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twin.scenarios import SCENARIOS, ScenarioKnobs, apply_scenario
from twin.store import HistoryStore

START = "2024-09-01"


@pytest.fixture(scope="module")
def planted(small_twin, tmp_path_factory):
    root = tmp_path_factory.mktemp("scenarios")
    return {name: apply_scenario(small_twin, root / name, name, START, ScenarioKnobs(seed=1))
            for name in SCENARIOS}


def _sensor(path):
    return HistoryStore(path).read("sensor_days").sort_values(["resident_id", "date"]).reset_index(drop=True)


def test_gait_sensor_reads_low_from_the_start_day_only(small_twin, planted):
    before, after = _sensor(small_twin), _sensor(planted["gait_sensor_offset"])
    late = before["date"] >= pd.Timestamp(START)
    diff = (after["gait_speed"] - before["gait_speed"]).to_numpy()
    assert np.allclose(np.nan_to_num(diff[~late.to_numpy()]), 0)
    moved = diff[late.to_numpy() & before["gait_speed"].gt(0.2).to_numpy()]
    assert np.allclose(moved, -0.1, atol=1e-9)
    assert after["gait_speed"].isna().sum() == before["gait_speed"].isna().sum()  # outages stay outages


def test_firmware_doubles_steps_from_the_start_day(small_twin, planted):
    before, after = _sensor(small_twin), _sensor(planted["step_firmware"])
    late = (before["date"] >= pd.Timestamp(START)).to_numpy()
    ratio = (after["steps"] / before["steps"]).to_numpy()
    ok = np.isfinite(ratio) & (before["steps"].to_numpy() > 0)
    assert np.allclose(ratio[late & ok], 2.0, atol=0.01)
    assert np.allclose(ratio[~late & ok], 1.0)


def test_a_new_grid_joins_on_the_start_day_with_no_earlier_history(small_twin, planted):
    from features.pipeline import load_history

    store, old = HistoryStore(planted["new_grid"]), HistoryStore(small_twin)
    residents = store.read("residents")
    newcomers = residents[residents["grid_id"] == "GNEW"]
    events = store.read("events")
    moved_in = events[events["type"] == "move_in"].set_index("resident_id")["date"]
    # every newcomer moves in: the grid's first residents on the start day, more later, as in
    # every grid of the open community
    assert newcomers["resident_id"].isin(moved_in.index).all()
    assert (moved_in.reindex(newcomers["resident_id"]) == pd.Timestamp(START)).sum() == len(old.read("residents")) // 5
    assert (moved_in.reindex(newcomers["resident_id"]) >= pd.Timestamp(START)).all()
    assert residents["resident_id"].is_unique and events["event_id"].is_unique
    # a history cut before the start (a monitor's control date) has none of them
    before = load_history(planted["new_grid"], end=pd.Timestamp(START) - pd.Timedelta(days=7))
    assert not before.residents["resident_id"].isin(newcomers["resident_id"]).any()
    sd = store.read("sensor_days")
    theirs = sd[sd["resident_id"].isin(newcomers["resident_id"])]
    assert theirs["date"].min() == pd.Timestamp(START) and theirs["date"].max() == sd["date"].max()
    assert newcomers["lives_alone"].mean() > old.read("residents")["lives_alone"].mean() + 0.15
    sr = store.read("service_requests")
    assert (sr.loc[sr["grid_id"] == "GNEW", "timestamp"] >= pd.Timestamp(START)).all()


def test_a_request_wave_adds_requests_after_the_start_in_the_flu_categories(small_twin, planted):
    before = HistoryStore(small_twin).read("service_requests")
    after = HistoryStore(planted["request_wave"]).read("service_requests")
    added = after[~after["request_id"].isin(before["request_id"])]
    assert len(added) > 0 and (added["timestamp"] >= pd.Timestamp(START)).all()
    assert (added["timestamp"] < pd.Timestamp(START) + pd.Timedelta(days=ScenarioKnobs().wave_days)).all()
    share = added["category"].astype(str).value_counts(normalize=True)
    assert share.index[0] in ("health_escort", "meals") and "transport" not in share.index
    window = (before["timestamp"] >= pd.Timestamp(START) + pd.Timedelta(days=7)) & \
             (before["timestamp"] < pd.Timestamp(START) + pd.Timedelta(days=28))
    assert len(added[added["timestamp"] >= pd.Timestamp(START) + pd.Timedelta(days=7)]) > 0.3 * window.sum()


def test_the_manifest_names_the_scenario_and_the_original_is_untouched(small_twin, planted):
    import json

    m = json.loads((planted["step_firmware"] / "manifest.json").read_text())
    assert m["scenario"] == {"name": "step_firmware", "start": START}
    assert "scenario" not in json.loads((small_twin / "manifest.json").read_text())
    with pytest.raises(KeyError, match="unknown scenario"):
        apply_scenario(small_twin, small_twin.parent / "x", "solar_flare", START)
