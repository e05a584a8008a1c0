"""Demand series, point-in-time features and the forecaster on awkward count tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.demand import (
    DEMAND_FEATURES,
    CountTableError,
    count_panel,
    daily_counts,
    demand_features,
)
from features.registry import feature_names
from models import demand

FAST = demand.DemandParams(booster=demand.demand_booster(num_trees=30, min_data_in_leaf=20),
                           calibration_days=21)


def _series(sid: str, start: str, values) -> pd.DataFrame:
    return pd.DataFrame({"series_id": sid, "date": pd.date_range(start, periods=len(values)),
                         "count": np.asarray(values, dtype=float)})


def _weekly(sid: str, start: str, days: int, level: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=days)
    lam = level * (1 + 0.6 * (dates.day_of_week.to_numpy() < 2))
    return pd.DataFrame({"series_id": sid, "date": dates, "count": rng.poisson(lam).astype(float)})


def test_daily_counts_zero_fills_every_grid_and_category():
    sr = pd.DataFrame({
        "timestamp": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 17:00", "2024-01-03 10:00"]),
        "grid_id": ["G1", "G1", "G2"], "category": ["meals", "meals", "transport"],
        "resident_id": ["A", "B", "C"],
    })
    c = daily_counts(sr)
    assert set(c["series_id"]) == {"G1:meals", "G1:transport", "G2:meals", "G2:transport"}
    assert len(c) == 4 * 3  # four series x three days
    g1 = c[c["series_id"] == "G1:meals"].set_index("date")["count"]
    assert g1.tolist() == [2.0, 0.0, 0.0]


def test_registry_lists_the_demand_features_in_order():
    assert feature_names("requests") == [f.name for f in DEMAND_FEATURES]
    rows = demand_features(_series("s", "2024-01-01", range(40)), ["2024-02-01"], [1, 7])
    assert list(rows.columns) == ["series_id", "origin", "date", *feature_names("requests"), "count"]


def test_features_use_only_counts_up_to_the_origin():
    base = _weekly("s", "2024-01-01", 120, 3.0, 0)
    changed = base.copy()
    changed.loc[changed["date"] > "2024-03-01", "count"] += 50  # the future changes
    a = demand_features(base, ["2024-03-01"], range(1, 15)).drop(columns="count")
    b = demand_features(changed, ["2024-03-01"], range(1, 15)).drop(columns="count")
    pd.testing.assert_frame_equal(a, b)


def test_same_weekday_feature_is_the_seasonal_naive():
    values = list(range(1, 36))  # count = day number
    rows = demand_features(_series("s", "2024-01-01", values), ["2024-01-28"], [1, 7, 8, 14])
    # origin is day 28 (value 28); horizon 1 -> target day 29, same weekday known: day 22
    got = dict(zip(rows["demand_horizon"], rows["demand_same_weekday_last"], strict=True))
    assert got == {1.0: 22.0, 7.0: 28.0, 8.0: 22.0, 14.0: 28.0}


def test_gaps_are_unknown_unless_declared_zero():
    s = _series("s", "2024-01-01", [1.0] * 30).drop(index=[10, 11, 12])
    missing = count_panel(s, gaps="missing")
    zero = count_panel(s, gaps="zero")
    assert np.isnan(missing.values[10:13, 0]).all()
    assert (zero.values[10:13, 0] == 0).all()
    rows = demand_features(missing, ["2024-01-14"], [1])
    assert rows["demand_mean_7d"].iloc[0] == pytest.approx(1.0)  # the mean skips unknown days


def test_bad_count_tables_are_rejected_with_the_reason():
    with pytest.raises(CountTableError, match="lacks column"):
        count_panel(pd.DataFrame({"series": ["a"], "date": ["2024-01-01"], "count": [1]}))
    with pytest.raises(CountTableError, match="non-negative"):
        count_panel(_series("s", "2024-01-01", [1, -2]))
    dup = pd.concat([_series("s", "2024-01-01", [1]), _series("s", "2024-01-01", [2])])
    with pytest.raises(CountTableError, match="repeat"):
        count_panel(dup)
    with pytest.raises(CountTableError, match="not numbers"):
        count_panel(pd.DataFrame({"series_id": ["s"], "date": ["2024-01-01"], "count": ["many"]}))


@pytest.fixture(scope="module")
def awkward_counts() -> pd.DataFrame:
    """Long series, one that starts late, one with a long zero run, one with gaps, one tiny."""
    parts = [_weekly(f"long{i}", "2024-01-01", 200, 2 + i, i) for i in range(4)]
    parts.append(_weekly("late", "2024-05-20", 48, 4.0, 9))
    zeros = _weekly("zeros", "2024-01-01", 200, 3.0, 10)
    zeros.loc[60:120, "count"] = 0.0
    parts.append(zeros)
    gappy = _weekly("gappy", "2024-01-01", 200, 3.0, 11)
    parts.append(gappy.drop(index=range(150, 170)))
    parts.append(_series("tiny", "2024-07-10", [1.0, 0.0, 2.0]))
    return pd.concat(parts, ignore_index=True)


def test_forecaster_handles_short_late_zero_and_gappy_series(awkward_counts):
    loaded, facts = demand.fit(awkward_counts, FAST)
    fc = demand.forecast(loaded, awkward_counts, 14)
    assert set(fc["series_id"]) == set(awkward_counts["series_id"])
    assert len(fc) == 14 * awkward_counts["series_id"].nunique()
    assert np.isfinite(fc[["forecast", "lower", "upper"]]).all().all()
    assert (fc["lower"] >= 0).all() and (fc["lower"] <= fc["forecast"] + 1e-9).all()
    assert (fc["forecast"] <= fc["upper"] + 1e-9).all()
    assert fc["date"].min() == awkward_counts["date"].max() + pd.Timedelta(days=1)
    with pytest.raises(ValueError, match="horizon"):
        demand.forecast(loaded, awkward_counts, 15)


def test_backtest_beats_seasonal_naive_with_near_nominal_coverage(awkward_counts):
    from training.backtest import BacktestConfig, rolling_origin

    metrics, detail = rolling_origin(awkward_counts, FAST, BacktestConfig(test_days=28, step=7))
    assert metrics["wape"] < metrics["wape_naive"]
    assert abs(metrics["coverage"] - 0.8) < 0.12
    assert set(detail["horizon"]) == set(range(1, 15))


def test_too_short_history_falls_back_to_seasonal_naive():
    from training.forecast_table import forecast_table

    out = forecast_table(_series("s", "2024-01-01", [1, 2, 3, 4, 5, 6, 7, 1, 2, 3]), horizon=3)
    assert out["method"] == "seasonal_naive"
    assert [r["forecast"] for r in out["forecasts"]] == [4.0, 5.0, 6.0]
    assert "note" in out["backtest"]


def test_a_young_bank_logging_weekly_gets_its_rate_as_requests_arise_from_the_fallback_too():
    """Ten weeks of a coordinator entering 21 exchanges every Monday, shorter than the model's
    warm-up: the record is forecast seasonal naive (21 on Mondays, 0 between); as the requests
    arise, one flat rate of about 3 a day (the first Monday's batch covers days before the record)."""
    from training.forecast_table import forecast_table

    days = pd.date_range("2024-01-01", periods=70)  # a Monday
    counts = _series("bank", "2024-01-01", np.where(days.day_of_week == 0, 21, 0).tolist())
    params = demand.DemandParams(warmup_days=63)
    logged = forecast_table(counts, horizon=7, params=params)
    arising = forecast_table(counts, horizon=7, params=params, basis="occurring")
    assert logged["method"] == arising["method"] == "seasonal_naive"
    assert [r["forecast"] for r in logged["forecasts"]] == [21.0, 0, 0, 0, 0, 0, 0]
    rate = {r["forecast"] for r in arising["forecasts"]}
    assert len(rate) == 1 and abs(rate.pop() - 3.0) <= 0.15 * 3.0  # one flat rate, about 3 a day
    assert all(r["lower"] < r["forecast"] < r["upper"] for r in arising["forecasts"])


def test_a_record_of_nothing_but_zeros_falls_back_instead_of_failing():
    """A community with no request yet (every count zero) is told so, and forecast zero by the
    fallback; the booster's Poisson objective cannot fit on it."""
    from training.forecast_table import forecast_table

    counts = _series("s", "2024-01-01", [0] * 200)
    with pytest.raises(demand.NotEnoughHistory, match="is zero"):
        demand.fit(counts)
    out = forecast_table(counts, horizon=7)
    assert out["method"] == "seasonal_naive" and "is zero" in out["fit"]["note"]
    assert [r["forecast"] for r in out["forecasts"]] == [0.0] * 7
