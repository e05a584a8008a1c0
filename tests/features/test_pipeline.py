"""Hand-computed values for each feature family, NaN semantics and the as-of boundary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.pipeline import History, build_features, weekly_as_of
from features.registry import FEATURES
from tests.features.conftest import residents, table

AS_OF = pd.Timestamp("2024-06-01")


def day(k: int) -> pd.Timestamp:
    """The day k days before AS_OF (k=1 is the last day counted)."""
    return AS_OF - pd.Timedelta(days=k)


def sensor(rows: dict[int, dict], rid: str = "R000") -> pd.DataFrame:
    """sensor_days for one resident from {days before AS_OF: {column: value}}."""
    return table("sensor_days", [{"resident_id": rid, "date": day(k), **v} for k, v in rows.items()])


def one(history: History, as_of=AS_OF, rid: str = "R000") -> pd.Series:
    out = build_features(history, [as_of])
    return out.set_index("resident_id").loc[rid]


def test_output_columns_and_dtypes(small_history):
    out = build_features(small_history, ["2024-05-01", "2024-06-01"])
    assert list(out.columns) == ["resident_id", "as_of_date", *FEATURES]
    assert len(out) == 6
    assert (out[list(FEATURES)].dtypes == np.float64).all()
    assert out["as_of_date"].dtype == "datetime64[ns]"
    assert out[["as_of_date", "resident_id"]].equals(
        out[["as_of_date", "resident_id"]].sort_values(["as_of_date", "resident_id"]).reset_index(drop=True)
    )


def test_every_declared_feature_is_computed(small_history):
    out = build_features(small_history, ["2024-06-01"])
    never = [f for f in FEATURES if out[f].isna().all()]
    assert never == [], f"features never computed: {never}"


def test_static_features():
    res = residents(3)  # R001: born 1941, male, cognitive impairment, 1 condition, 2 meds
    row = one(History(residents=res), AS_OF, "R001")
    assert row["age_years"] == 2024 - 1941
    assert row["sex_female"] == 0.0
    assert row["lives_alone"] == 0.0
    assert row["cognitive_impairment"] == 1.0
    assert row["chronic_conditions"] == 1.0
    assert row["medication_count"] == 2.0
    assert row["walking_aid"] == 0.0


def test_rolling_level_variability_and_trend():
    # steps = 1000 + 10 * (30 - k) on the last 30 days: a straight line rising 10 steps a day.
    rows = {k: {"steps": 1000.0 + 10 * (30 - k)} for k in range(1, 31)}
    row = one(History(residents=residents(1), sensor_days=sensor(rows)))
    last7 = [1000.0 + 10 * (30 - k) for k in range(1, 8)]
    last30 = [1000.0 + 10 * (30 - k) for k in range(1, 31)]
    assert row["steps_7d"] == pytest.approx(np.mean(last7))
    assert row["steps_30d"] == pytest.approx(np.mean(last30))
    assert row["steps_90d"] == pytest.approx(np.mean(last30))  # only 30 days known
    assert row["steps_sd_30d"] == pytest.approx(np.std(last30, ddof=1))
    assert row["steps_trend_30d"] == pytest.approx(70.0)  # 10 a day = 70 a week
    assert np.isnan(row["gait_speed_7d"])  # never measured: unknown, not 0


def test_deviation_from_own_baseline():
    # Baseline (days 8..97 before): toilet visits alternate 1 and 2; last week: 4 every night.
    rows = {k: {"night_toilet_visits": float(1 + k % 2)} for k in range(8, 98)}
    rows.update({k: {"night_toilet_visits": 4.0} for k in range(1, 8)})
    rows[98] = {"night_toilet_visits": 20.0}  # just outside the baseline: must not count
    row = one(History(residents=residents(1), sensor_days=sensor(rows)))
    base = [float(1 + k % 2) for k in range(8, 98)]
    assert row["night_toilet_visits_7d"] == 4.0
    assert row["night_toilet_visits_baseline_90d"] == pytest.approx(np.mean(base))
    expected_z = (4.0 - np.mean(base)) / max(np.std(base, ddof=1), 0.5)
    assert row["night_toilet_visits_z7v90"] == pytest.approx(expected_z)


def test_an_episode_three_days_old_stands_out_in_the_last_3_days_more_than_in_the_week():
    # Baseline (days 8..97 before): 4,000 steps, alternating by 200; an episode began 3 days ago
    # and halved them. In the week's mean it is diluted by the four usual days before it.
    rows = {k: {"steps": 4000.0 + (200.0 if k % 2 else -200.0)} for k in range(8, 98)}
    rows.update({k: {"steps": 4000.0} for k in range(4, 8)})
    rows.update({k: {"steps": 2000.0} for k in range(1, 4)})
    row = one(History(residents=residents(1), sensor_days=sensor(rows)))
    base = [4000.0 + (200.0 if k % 2 else -200.0) for k in range(8, 98)]
    sd = max(np.std(base, ddof=1), 300.0)
    assert row["steps_z3v90"] == pytest.approx((2000.0 - np.mean(base)) / sd)
    assert row["steps_z7v90"] == pytest.approx((np.mean([2000.0] * 3 + [4000.0] * 4) - np.mean(base)) / sd)
    assert row["steps_z3v90"] < 2 * row["steps_z7v90"] < 0
    # two of the three days known are enough; one is not
    del rows[1]
    assert not np.isnan(one(History(residents=residents(1), sensor_days=sensor(rows)))["steps_z3v90"])
    del rows[2]
    assert np.isnan(one(History(residents=residents(1), sensor_days=sensor(rows)))["steps_z3v90"])


def test_deviation_needs_enough_days():
    rows = {k: {"steps": 3000.0} for k in range(8, 18)}  # 10 baseline days < 14
    rows.update({k: {"steps": 1000.0} for k in range(1, 8)})
    row = one(History(residents=residents(1), sensor_days=sensor(rows)))
    assert row["steps_7d"] == 1000.0
    assert np.isnan(row["steps_z7v90"])
    assert np.isnan(row["steps_baseline_90d"])


def test_flat_baseline_uses_the_floor_not_infinity():
    rows = {k: {"steps": 3000.0} for k in range(8, 98)}
    rows.update({k: {"steps": 2400.0} for k in range(1, 8)})
    row = one(History(residents=residents(1), sensor_days=sensor(rows)))
    assert row["steps_z7v90"] == pytest.approx((2400.0 - 3000.0) / 300.0)


def test_missing_days_and_null_columns():
    # Rows on 4 of the last 7 days; one of them has every sensor null (counts as missing).
    rows = {1: {"steps": 100.0}, 2: {"steps": 200.0}, 5: {"gait_speed": 0.8}, 6: {}}
    row = one(History(residents=residents(1), sensor_days=sensor(rows)))
    assert row["sensor_missing_days_7d"] == 4.0  # days 3, 4, 7 without a row + day 6 all null
    assert row["sensor_missing_days_30d"] == 27.0
    assert row["steps_7d"] == 150.0
    assert row["gait_speed_7d"] == pytest.approx(0.8)
    assert np.isnan(row["steps_sd_30d"])  # 2 days < 3 needed


def test_no_sensor_table_is_unknown_but_empty_table_means_missing_days():
    none = one(History(residents=residents(1), sensor_days=None))
    assert np.isnan(none["sensor_missing_days_7d"]) and np.isnan(none["steps_7d"])
    empty = one(History(residents=residents(1), sensor_days=table("sensor_days", [])))
    assert empty["sensor_missing_days_7d"] == 7.0 and np.isnan(empty["steps_7d"])


def test_sensor_day_on_the_as_of_date_does_not_count():
    rows = {0: {"steps": 9999.0}, 1: {"steps": 100.0}}
    row = one(History(residents=residents(1), sensor_days=sensor(rows)))
    assert row["steps_7d"] == 100.0


def events(rows) -> pd.DataFrame:
    return table("events", [
        {"event_id": f"E{i}", "resident_id": "R000", "date": day(k), "type": t, "injury": inj}
        for i, (k, t, inj) in enumerate(rows)
    ])


def test_event_history_windows_and_boundaries():
    ev = events([
        (0, "fall", True),  # on the as-of date: not yet known
        (1, "fall", False),
        (30, "fall", True),  # first day of the 30-day window
        (31, "fall", False),  # outside 30 days, inside a year
        (365, "fall", True),
        (366, "fall", True),  # more than a year ago
        (40, "hospitalisation", None),
        (200, "bereavement", None),
    ])
    row = one(History(residents=residents(1), events=ev))
    assert row["falls_30d"] == 2.0
    assert row["falls_365d"] == 4.0
    assert row["injurious_falls_365d"] == 2.0
    assert row["days_since_last_fall"] == 1.0
    assert row["hospitalisations_365d"] == 1.0
    assert row["bereavements_365d"] == 1.0


def test_event_counts_are_zero_when_nothing_happened_and_nan_when_not_recorded():
    empty = one(History(residents=residents(1), events=table("events", [])))
    assert empty["falls_365d"] == 0.0 and np.isnan(empty["days_since_last_fall"])
    unrecorded = one(History(residents=residents(1), events=None))
    assert np.isnan(unrecorded["falls_365d"])


def test_last_assessment_per_item_with_its_age():
    assessments = table("assessments", [
        {"resident_id": "R000", "date": day(100), "tug_seconds": 12.0, "loneliness_score": 4.0,
         "fear_of_falling": False},
        {"resident_id": "R000", "date": day(20), "tug_seconds": 15.0},  # loneliness not asked
        {"resident_id": "R000", "date": day(0), "tug_seconds": 30.0, "loneliness_score": 9.0},  # on as-of
    ])
    row = one(History(residents=residents(1), assessments=assessments))
    assert row["tug_seconds_last"] == 15.0 and row["tug_age_days"] == 20.0
    assert row["loneliness_score_last"] == 4.0 and row["loneliness_age_days"] == 100.0
    assert row["fear_of_falling_last"] == 0.0 and row["fear_of_falling_age_days"] == 100.0
    assert np.isnan(row["steadi_unsteady_last"]) and np.isnan(row["steadi_unsteady_age_days"])
    # The assessment recorded on the as-of date counts from the next day.
    nxt = one(History(residents=residents(1), assessments=assessments), AS_OF + pd.Timedelta(days=1))
    assert nxt["tug_seconds_last"] == 30.0 and nxt["tug_age_days"] == 1.0


def test_social_contact_and_time_bank_help():
    visits = table("visits", [
        {"visit_id": "V1", "resident_id": "R000", "date": day(3), "kind": "walk", "source": "timebank", "hours": 1.5, "task_id": "T1"},
        {"visit_id": "V2", "resident_id": "R000", "date": day(30), "kind": "companionship", "source": "family", "hours": 2.0},
        {"visit_id": "V3", "resident_id": "R000", "date": day(31), "kind": "companionship", "source": "family", "hours": 5.0},
        {"visit_id": "V4", "resident_id": "R000", "date": day(0), "kind": "walk", "source": "care", "hours": 1.0},
    ])

    def task(tid, created, status, completed):
        return {"task_id": tid, "resident_id": "R000", "grid_id": "G1", "kind": "walk", "reason": "fall_risk",
                "created_at": created, "due_date": created.normalize(), "status": status,
                "volunteer_id": "V001" if completed is not None else None, "credits": 1.0, "completed_at": completed}

    tasks = table("tasks", [
        task("T1", day(5), "completed", day(3) + pd.Timedelta(hours=23, minutes=59)),
        task("T2", day(5), "completed", AS_OF),  # completed exactly at 00:00 of the as-of date
        task("T3", day(5), "claimed", None),
        task("T4", day(100), "completed", day(91)),  # outside 90 days
    ])
    requests = table("service_requests", [
        {"request_id": "Q1", "timestamp": day(1) + pd.Timedelta(hours=23), "resident_id": "R000", "grid_id": "G1", "category": "companionship"},
        {"request_id": "Q2", "timestamp": day(60), "resident_id": "R000", "grid_id": "G1", "category": "companionship"},
        {"request_id": "Q3", "timestamp": AS_OF, "resident_id": "R000", "grid_id": "G1", "category": "meals"},
    ])
    row = one(History(residents=residents(1), visits=visits, tasks=tasks, service_requests=requests))
    assert row["visits_timebank_30d"] == 1.0
    assert row["visits_family_30d"] == 1.0
    assert row["visits_care_30d"] == 0.0
    assert row["visit_hours_30d"] == 3.5
    assert row["days_since_last_visit"] == 3.0
    assert row["timebank_tasks_completed_90d"] == 1.0
    assert row["service_requests_30d"] == 1.0
    assert row["companionship_requests_90d"] == 2.0


def test_pairs_frame_and_unknown_resident():
    hist = History(residents=residents(2), sensor_days=sensor({1: {"steps": 10.0}}))
    pairs = pd.DataFrame({"resident_id": ["R001", "R000", "R999"],
                          "as_of_date": [AS_OF, AS_OF - pd.Timedelta(days=1), AS_OF]})
    out = build_features(hist, pairs)
    assert list(out["resident_id"]) == ["R000", "R001", "R999"]
    r000 = out.iloc[0]
    assert np.isnan(r000["steps_7d"])  # the only day is its as-of date
    assert np.isnan(out.iloc[2]["age_years"])  # unknown resident: nothing known


def test_bad_as_of_is_refused():
    hist = History(residents=residents(1))
    with pytest.raises(ValueError, match="midnight"):
        build_features(hist, [pd.Timestamp("2024-06-01 12:00")])
    with pytest.raises(ValueError, match="engine"):
        build_features(hist, [AS_OF], engine="spark")
    with pytest.raises(ValueError, match="resident_id"):
        build_features(hist, pd.DataFrame({"as_of_date": [AS_OF]}))


def test_weekly_as_of_are_mondays_after_warmup(small_history):
    dates = weekly_as_of(small_history, warmup_days=90)
    assert (dates.dayofweek == 0).all()
    assert dates.min() >= pd.Timestamp("2024-01-01") + pd.Timedelta(days=90)
    assert dates.max() <= small_history.sensor_days["date"].max() + pd.Timedelta(days=1)
    assert len(dates) == 16


def test_resident_chunks_give_the_same_table(small_history):
    dates = weekly_as_of(small_history)
    whole = build_features(small_history, dates, n_partitions=1)
    chunked = build_features(small_history, dates, n_partitions=3)
    pd.testing.assert_frame_equal(whole, chunked)


def test_sensor_blocks_give_the_same_values(small_history, monkeypatch):
    from features import pipeline

    dates = weekly_as_of(small_history)
    whole = build_features(small_history, dates)
    monkeypatch.setattr(pipeline, "SENSOR_BLOCK_ROWS", 37)  # many blocks, cut inside residents' rows
    pd.testing.assert_frame_equal(whole, build_features(small_history, dates))


def test_threads_do_not_change_the_table(small_history, monkeypatch):
    from features import pipeline

    monkeypatch.setattr(pipeline, "SENSOR_BLOCK_ROWS", 50)
    dates = weekly_as_of(small_history)
    one = build_features(small_history, dates, threads=1)
    pd.testing.assert_frame_equal(one, build_features(small_history, dates, threads=3))


def test_loneliness_history_bereavement_and_home_check_recency(small_history):
    """The mean and drift of past loneliness scores, days since a bereavement and since a
    completed home-hazard check, each from what was recorded before the as-of date."""
    t = build_features(small_history, pd.to_datetime(["2024-05-06", "2024-07-01"]))
    t = t.set_index(["resident_id", "as_of_date"])
    may, july = pd.Timestamp("2024-05-06"), pd.Timestamp("2024-07-01")
    assert t.loc[("R000", may), "loneliness_score_mean_365d"] == pytest.approx(6.0)  # 5 and 7
    assert np.isnan(t.loc[("R000", may), "loneliness_score_trend_365d"])  # two scores: no drift yet
    assert t.loc[("R000", july), "loneliness_score_mean_730d"] == pytest.approx(7.0)  # 5, 7, 9
    assert t.loc[("R000", july), "loneliness_score_trend_365d"] > 0  # rising
    assert np.isnan(t.loc[("R001", may), "loneliness_score_mean_365d"])  # never assessed
    assert t.loc[("R002", may), "days_since_last_bereavement"] == (may - pd.Timestamp("2024-02-10")).days
    assert t.loc[("R001", may), "days_since_last_hospitalisation"] == (may - pd.Timestamp("2024-04-02")).days
    assert t.loc[("R001", may), "days_since_home_hazard_check"] == (may - pd.Timestamp("2024-03-03")).days
    assert np.isnan(t.loc[("R000", may), "days_since_home_hazard_check"])  # a walk is not a check
