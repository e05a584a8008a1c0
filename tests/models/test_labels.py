"""Labels and baselines computed by hand on tiny frames."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models import fall_risk, isolation


def _idx(rows):
    return pd.DataFrame(rows, columns=["resident_id", "as_of_date"]).assign(
        as_of_date=lambda d: pd.to_datetime(d["as_of_date"]))


def _events(rows):
    return pd.DataFrame(rows, columns=["resident_id", "date", "type", "injury"]).assign(
        date=lambda d: pd.to_datetime(d["date"]))


def test_fall_label_counts_falls_from_as_of_for_30_days():
    events = _events([
        ("A", "2024-03-01", "fall", False),   # on the as-of date: counts
        ("B", "2024-03-30", "fall", True),    # day 29: counts
        ("C", "2024-03-31", "fall", False),   # day 30: outside
        ("D", "2024-02-29", "fall", False),   # the day before: outside
        ("E", "2024-03-05", "hospitalisation", None),  # not a fall
    ])
    idx = _idx([(r, "2024-03-01") for r in "ABCDEF"])
    assert fall_risk.label(events, idx).tolist() == [1, 1, 0, 0, 0, 0]


def test_fall_label_is_per_resident_and_per_as_of_date():
    events = _events([("A", "2024-03-10", "fall", False)])
    idx = _idx([("A", "2024-03-01"), ("A", "2024-03-11"), ("B", "2024-03-01")])
    assert fall_risk.label(events, idx).tolist() == [1, 0, 0]


def _assess(rows):
    df = pd.DataFrame(rows, columns=["resident_id", "date", "loneliness_score"])
    df["date"] = pd.to_datetime(df["date"])
    for c in ("tug_seconds", "fear_of_falling", "steadi_fell_past_year", "steadi_unsteady"):
        df[c] = np.nan
    return df


def test_isolation_label_uses_next_scored_assessment_within_90_days():
    assess = _assess([
        ("A", "2024-01-10", 7.0),   # before the as-of date: ignored
        ("A", "2024-02-01", np.nan),  # no score: skipped
        ("A", "2024-02-15", 4.0),   # first scored one after as_of: not lonely
        ("A", "2024-03-01", 8.0),
        ("B", "2024-04-29", 6.0),   # day 89: lonely (6 counts)
        ("C", "2024-05-01", 9.0),   # day 91: outside the window -> excluded
    ])
    idx = _idx([("A", "2024-01-31"), ("B", "2024-01-31"), ("C", "2024-01-31"), ("D", "2024-01-31")])
    y = isolation.label(assess, idx)
    assert y[0] == 0.0 and y[1] == 1.0
    assert np.isnan(y[2]) and np.isnan(y[3])


def test_steadi_screen_adds_the_three_key_answers_known_before_as_of():
    assess = _assess([("A", "2024-01-05", np.nan), ("B", "2024-01-05", np.nan), ("C", "2024-03-01", np.nan)])
    assess["steadi_unsteady"] = [1.0, 0.0, 1.0]
    assess["fear_of_falling"] = [1.0, np.nan, 1.0]
    assess["steadi_fell_past_year"] = [0.0, 0.0, 1.0]
    events = _events([("B", "2023-06-01", "fall", False)])  # a recorded fall within the year
    idx = _idx([("A", "2024-02-01"), ("B", "2024-02-01"), ("C", "2024-02-01")])
    score = fall_risk.steadi_screen(assess, events, idx)
    # C's answers come after the as-of date and must not be seen
    assert score.tolist() == [2.0, 1.0, 0.0]


def test_isolation_baseline_inputs_lives_alone_and_last_score():
    residents = pd.DataFrame({"resident_id": ["A", "B"], "lives_alone": [True, False]})
    assess = _assess([("A", "2024-01-05", 8.0), ("A", "2024-03-05", 3.0)])
    idx = _idx([("A", "2024-02-01"), ("B", "2024-02-01")])
    x = isolation.baseline_inputs(residents, assess, idx)
    assert x[0].tolist() == [1.0, 8.0, 0.0]
    assert x[1][0] == 0.0 and x[1][2] == 1.0


def test_bands_cut_probabilities():
    assert fall_risk.band(0.01) == "low"
    assert fall_risk.band(fall_risk.BANDS.medium) == "medium"
    assert fall_risk.band(0.9) == "high"
    assert isolation.band(0.1) == "low" and isolation.band(0.7) == "high"
