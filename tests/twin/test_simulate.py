"""The simulator writes a valid, reproducible history whose hidden truth behaves as designed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from twin.schema import FALL_CAUSES, ISOLATION_CAUSES, REQUEST_CATEGORIES, TABLES, validate
from twin.simulate import simulate, simulate_frames
from twin.store import HistoryStore


@pytest.fixture(scope="module")
def history(small_twin):
    return HistoryStore(small_twin)


def test_every_table_is_written_and_valid(history, small_twin):
    for name, schema in TABLES.items():
        assert history.has(name), f"{name} was not written"
        df = history.read(name)
        assert len(df) > 0, f"{name} is empty"
        report = validate(df, schema)
        assert report.ok, str(report)
    manifest = json.loads((small_twin / "manifest.json").read_text())
    assert manifest["residents"] == 300 and manifest["days"] == 300
    assert len(manifest["twin_id"]) == 16
    for name in ("latent", "causes", "episodes"):
        assert (small_twin / "truth" / f"{name}.parquet").exists()


def test_same_seed_same_history_other_seed_differs():
    a = simulate_frames(60, 40, seed=5)
    b = simulate_frames(60, 40, seed=5)
    c = simulate_frames(60, 40, seed=6)
    for name in [*TABLES, "truth/causes"]:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)
    assert not a["sensor_days"]["steps"].equals(c["sensor_days"]["steps"])


def test_written_history_is_reproducible(tmp_path):
    m1 = simulate(40, 30, 9, tmp_path / "a")
    m2 = simulate(40, 30, 9, tmp_path / "b")
    for name in TABLES:
        pd.testing.assert_frame_equal(
            HistoryStore(m1).read(name), HistoryStore(m2).read(name), obj=name
        )
    frames = simulate_frames(40, 30, 9)
    for name in TABLES:
        written = HistoryStore(m1).read(name)
        pd.testing.assert_frame_equal(written, frames[name], obj=name, check_dtype=False)
    id1 = json.loads((m1 / "manifest.json").read_text())["twin_id"]
    id2 = json.loads((m2 / "manifest.json").read_text())["twin_id"]
    assert id1 == id2


def test_residents_look_like_an_older_community(history):
    r = history.read("residents")
    age = 2024 - r["birth_year"]
    assert age.between(65, 95).all()
    assert 0.30 <= r["lives_alone"].mean() <= 0.45
    meds = r["medication_count"]
    assert (meds.between(5, 9)).mean() > 0.2 and (meds >= 10).mean() > 0.03
    per_grid = r.groupby("grid_id").size()
    assert len(per_grid) == 3 and per_grid.min() > 80


def test_missing_days_and_sensor_outages_are_present(history):
    s = history.read("sensor_days")
    lat = pd.read_parquet(
        history.root / "truth" / "latent.parquet", columns=["resident_id", "date"]
    )
    missing_share = 1 - len(s) / len(lat)
    assert 0.01 < missing_share < 0.15, missing_share
    assert s["steps"].isna().mean() > 0.02
    assert s["night_toilet_visits"].isna().any()


def test_acute_episode_signs_precede_the_rise_in_fall_hazard(small_twin, history):
    """Night-time toilet visits rise before a fall inside an episode; the hazard rises later."""
    ep = pd.read_parquet(small_twin / "truth" / "episodes.parquet")
    lead = (ep["hazard_from"] - ep["onset"]).dt.days
    assert lead.min() >= 7 and lead.mean() >= 9

    falls = history.read("events")
    falls = falls[falls["type"] == "fall"].merge(ep, on="resident_id")
    in_ep = falls[(falls["date"] >= falls["onset"]) & (falls["date"] < falls["end"])]
    assert len(in_ep) >= 20
    # Falls during an episode come after its sensor signs began.
    assert ((in_ep["date"] - in_ep["onset"]).dt.days >= 7).mean() > 0.8

    s = history.read(
        "sensor_days", ["resident_id", "date", "night_toilet_visits", "steps"]
    ).set_index(["resident_id", "date"])
    before, baseline = [], []
    for row in in_ep.itertuples():
        try:
            ts = s.loc[row.resident_id]
        except KeyError:
            continue
        recent = ts[(ts.index >= row.date - pd.Timedelta(days=7)) & (ts.index < row.date)]
        usual = ts[(ts.index >= row.onset - pd.Timedelta(days=60)) & (ts.index < row.onset)]
        if len(recent) >= 3 and len(usual) >= 10:
            before.append(recent["night_toilet_visits"].mean())
            baseline.append(usual["night_toilet_visits"].mean())
    assert np.nanmean(before) > np.nanmean(baseline) * 1.2


def test_falls_cluster_when_the_latent_hazard_is_high(small_twin, history):
    lat = pd.read_parquet(
        small_twin / "truth" / "latent.parquet", columns=["resident_id", "date", "fall_hazard"]
    )
    falls = history.read("events")
    falls = falls[falls["type"] == "fall"][["resident_id", "date"]].assign(fell=True)
    lat = lat.merge(falls.drop_duplicates(), on=["resident_id", "date"], how="left")
    lat["fell"] = lat["fell"].fillna(False).astype(bool)
    assert lat.loc[lat["fell"], "fall_hazard"].mean() > 1.5 * lat["fall_hazard"].mean()


def test_truth_causes_use_the_shared_vocabularies(small_twin):
    c = pd.read_parquet(small_twin / "truth" / "causes.parquet")
    assert set(c["model"]) == {"fall_risk", "isolation"}
    assert set(c.loc[c["model"] == "fall_risk", "cause"]) <= set(FALL_CAUSES)
    assert set(c.loc[c["model"] == "isolation", "cause"]) <= set(ISOLATION_CAUSES)
    assert (c["date"].dt.weekday == 0).all()
    assert c.loc[c["model"] == "fall_risk", "cause"].nunique() >= 5
    assert c.loc[c["model"] == "fall_risk", "fall_hazard_30d"].between(0, 1).all()
    assert set(c.loc[c["model"] == "fall_risk", "cause_absolute"]) <= set(FALL_CAUSES)
    # against the community's average, the age every resident carries names frailty less often
    fall = c[c["model"] == "fall_risk"]
    assert (fall["cause"] == "frailty").mean() < (fall["cause_absolute"] == "frailty").mean()


def test_a_cause_everyone_shares_is_nobody_s_dominant_cause():
    """The truth's dominant cause is the term furthest above the community's average (what an
    attribution of a score's deviation from the average score can name), not the largest term."""
    from twin.dynamics import dominant_causes

    shared = np.full(4, 2.0)  # the same large term for everyone
    own = np.array([0.0, 0.5, 0.1, 0.9])
    rel, absolute = dominant_causes(np.stack([shared, own], axis=1))
    assert (absolute == 0).all()
    assert (rel[own > own.mean()] == 1).all()  # whoever is above average is so by their own term
    rel, _ = dominant_causes(np.stack([np.array([3.0, 1.0, 1.6, 1.0]), own], axis=1))
    assert rel.tolist() == [0, 1, 0, 1]


def test_ledger_transfers_sum_to_zero_and_pay_completed_tasks(history):
    ledger = history.read("ledger")
    assert (ledger.groupby("transfer_id")["amount"].sum().abs() < 1e-9).all()
    tasks = history.read("tasks")
    done = tasks[tasks["status"] == "completed"]
    paid = ledger[ledger["account"].str.startswith("volunteer:")]
    assert len(paid) == len(done)
    assert abs(paid["amount"].sum() - done["credits"].sum()) < 1e-6
    assert set(tasks["status"]) >= {"completed", "expired"}
    tb = history.read("visits")
    assert set(tb.loc[tb["source"] == "timebank", "task_id"]) == set(done["task_id"])


def test_requests_follow_the_week_and_cover_every_category(history):
    q = history.read("service_requests")
    assert set(q["category"]) == set(REQUEST_CATEGORIES)
    per_weekday = q.groupby(q["timestamp"].dt.weekday).size()
    assert per_weekday.loc[[0, 1, 2]].mean() > 1.4 * per_weekday.loc[[5, 6]].mean()
    assert (q["timestamp"] != q["timestamp"].dt.normalize()).mean() > 0.99


def test_bad_arguments_say_what_was_wrong(tmp_path):
    with pytest.raises(ValueError, match="residents"):
        simulate(0, 10, 1, tmp_path / "x")
    with pytest.raises(ValueError, match="start"):
        simulate(10, 10, 1, tmp_path / "x", start="yesterday")


def test_flu_wave_raises_health_escorts_and_holidays_lower_requests(history, small_twin):
    manifest = json.loads((small_twin / "manifest.json").read_text())
    q = history.read("service_requests")
    q["day"] = q["timestamp"].dt.normalize()
    daily = q.groupby(["day", "category"]).size().unstack(fill_value=0)
    flu = [s for s in manifest["shocks"] if s["name"] == "flu_wave"]
    assert flu, manifest["shocks"]
    in_flu = np.zeros(len(daily), bool)
    for s in flu:
        in_flu |= (daily.index >= s["start"]) & (daily.index <= s["end"])
    escort = daily["health_escort"]
    assert escort[in_flu].mean() > 1.2 * escort[~in_flu].mean()
    total = daily.sum(axis=1)
    holidays = pd.to_datetime(manifest["holidays"])
    weekday = total[(total.index.weekday < 5) & ~total.index.isin(holidays)]
    on_holiday = total[total.index.isin(holidays) & (total.index.weekday < 5)]
    assert len(on_holiday) >= 2
    assert on_holiday.mean() < 0.7 * weekday.mean()


def test_simulate_command_writes_a_history(tmp_path):
    from typer.testing import CliRunner

    from training.cli import app

    out = tmp_path / "history"
    args = ["simulate", "--residents", "30", "--days", "20", "--seed", "2", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["residents"] == 30
    assert HistoryStore(out).has("sensor_days")


def test_request_tasks_open_just_after_a_matching_request(history):
    tasks = history.read("tasks")
    q = history.read("service_requests")
    t = tasks[tasks["reason"].str.startswith("request:")]
    merged = t.merge(
        q, left_on=["resident_id", "kind"], right_on=["resident_id", "category"], how="left"
    )
    gap = (merged["created_at"] - merged["timestamp"]).dt.total_seconds() / 60
    matched = merged.assign(ok=gap.between(1, 30)).groupby("task_id")["ok"].any()
    assert matched.all()
    done = tasks[tasks["status"] == "completed"]
    assert (done["completed_at"] > done["created_at"]).all()
    assert (done["completed_at"].dt.normalize() <= done["due_date"]).all()


def test_a_failed_device_blanks_its_readings_for_days(history):
    s = history.read("sensor_days", ["resident_id", "date", "night_toilet_visits", "sleep_hours"])
    s = s.sort_values(["resident_id", "date"])
    gone = s["night_toilet_visits"].isna()
    run_id = (gone != gone.shift()).cumsum()
    runs = gone[gone].groupby([s.loc[gone, "resident_id"], run_id[gone]]).size()
    assert runs.max() >= 5, "no multi-day outage of the bathroom sensor"
    # Another device keeps reporting while the bathroom sensor is down.
    assert s.loc[gone, "sleep_hours"].notna().mean() > 0.8
