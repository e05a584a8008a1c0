"""Plain-language reasons worded from the registry and the resident's row."""

from __future__ import annotations

import math

from features.explain import reason_text
from features.pipeline import build_features
from features.registry import FEATURES

NAN = math.nan


def test_deviation_is_told_against_the_own_baseline():
    row = {"night_toilet_visits_z7v90": 3.4, "night_toilet_visits_7d": 3.2, "night_toilet_visits_baseline_90d": 1.1}
    assert reason_text("night_toilet_visits_z7v90", row, 0.3) == "night-time toilet visits rose from 1.1 to 3.2 a night this week"
    row = {"steps_z7v90": -2.0, "steps_7d": 1800.0, "steps_baseline_90d": 4200.0}
    assert reason_text("steps_z7v90", row, 0.2) == "daily steps fell from 4,200 to 1,800 steps this week"


def test_the_last_3_days_are_told_against_the_own_baseline():
    row = {"steps_z3v90": -2.34, "steps_baseline_90d": 4213.0}
    assert reason_text("steps_z3v90", row, 0.2) == "daily steps in the last 3 days 2.3 standard deviations below the usual 4,213 steps"
    row = {"gait_speed_z3v90": 0.2, "gait_speed_baseline_90d": 0.83}
    assert reason_text("gait_speed_z3v90", row, 0.1) == "walking speed in the last 3 days as usual (usually 0.83 m/s)"
    assert "not enough" in reason_text("steps_z3v90", {"steps_z3v90": NAN, "steps_baseline_90d": 4213.0}, 0.1)


def test_event_static_and_assessment_reasons():
    assert reason_text("falls_365d", {"falls_365d": 2.0}, 0.5) == "fell twice in the last year"
    assert reason_text("falls_365d", {"falls_365d": 3.0}, 0.5) == "fell 3 times in the last year"
    assert reason_text("falls_30d", {"falls_30d": 0.0}, -0.1) == "no falls in the last 30 days"
    assert reason_text("lives_alone", {"lives_alone": 1.0}, 0.2) == "lives alone"
    assert reason_text("medication_count", {"medication_count": 9.0}, 0.2) == "takes 9 regular medications"
    assert reason_text("loneliness_age_days", {"loneliness_age_days": 200.0}, 0.1) == "no loneliness assessment for 200 days"
    assert reason_text("loneliness_score_last", {"loneliness_score_last": 7.0, "loneliness_age_days": 12.0}, 0.4) == (
        "loneliness score 7 of 9 (lonely) (12 days ago)")
    assert reason_text("tug_seconds_last", {"tug_seconds_last": 16.5, "tug_age_days": 40.0}, 0.2) == (
        "Timed Up and Go took 16.5 s (40 days ago)")


def test_unknown_values_are_said_to_be_unknown():
    assert reason_text("loneliness_score_last", {"loneliness_score_last": NAN}, 0.1) == "no loneliness assessment on record"
    assert reason_text("days_since_last_fall", {}, 0.1) == "no fall on record"
    assert "not enough" in reason_text("steps_z7v90", {"steps_z7v90": NAN}, 0.1)
    assert reason_text("sensor_missing_days_7d", {"sensor_missing_days_7d": 5.0}, 0.1) == "no sensor data on 5 of the last 7 days"


def test_every_feature_has_a_reason_for_a_real_row(small_history):
    rows = build_features(small_history, ["2024-06-01"]).to_dict("records")
    for row in rows:
        for name in FEATURES:
            text = reason_text(name, row, 0.1)
            assert text and "nan" not in text.lower(), (name, text)


def test_every_planted_cause_is_told_in_words_not_by_its_name():
    from features.explain import CAUSE_WORDS, cause_text
    from features.registry import FEATURE_SETS

    causes = {c for s in FEATURE_SETS.values() for c in s.causes}
    assert causes and causes <= set(CAUSE_WORDS)
    assert all("_" not in cause_text(c) for c in causes)
