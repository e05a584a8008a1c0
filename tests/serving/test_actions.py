"""The actions policy: which task, when due, what it pays, and that it never double-books."""

from __future__ import annotations

import threading
from datetime import date

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.actions import (
    DEFAULT_POLICY,
    ActionPolicy,
    Scarcity,
    Verdict,
    act_on_assessments,
    credit_hours,
    due_date_for,
    grid_scarcity,
    open_key_for,
    plan_task,
    scarcity,
    task_kind_for,
)
from serving.store import InvalidInput

TODAY = date(2026, 3, 2)


def _fall(resident="R1", band="high", p=0.42, reasons=None, grid="G01"):
    reasons = reasons if reasons is not None else [
        {"feature": "night_toilet_visits_7d", "contribution": 0.3,
         "text": "night-time toilet visits rose from 1.1 to 3.2 a night this week"},
        {"feature": "gait_speed_7d", "contribution": 0.1, "text": "walking speed fell"},
    ]
    return Verdict(resident, grid, "fall_risk", p, band, reasons, "7", TODAY)


def _lonely(resident="R1", band="high"):
    return Verdict(resident, "G01", "isolation", 0.7, band,
                           [{"feature": "visitors_detected_7d", "text": "no visitors this week"}], "4", TODAY)


# --- pure policy -------------------------------------------------------------------------------


def test_scarcity_is_demand_over_supply_capped():
    assert scarcity(10, 10) == 1.0
    assert scarcity(15, 10) == 1.5
    assert scarcity(100, 10) == 2.0  # capped
    assert scarcity(1, 10) == 1.0  # never below the floor
    assert scarcity(5, 0) == 2.0  # demand and nobody to meet it
    assert scarcity(None, 10) == 1.0 and scarcity(0, 0) == 1.0


@given(st.floats(0, 1e6, allow_nan=False), st.floats(0, 1e6, allow_nan=False))
def test_scarcity_always_within_bounds(demand, supply):
    assert 1.0 <= scarcity(demand, supply) <= 2.0


def test_credits_are_base_times_urgency_times_scarcity_in_quarter_hours():
    assert credit_hours("walk", "low", 1.0) == 1.0
    assert credit_hours("home_hazard_check", "high", 1.0) == 2.25  # 1.5 x 1.5
    assert credit_hours("companionship", "high", 1.37) == 3.0  # 3.0825 -> 3.0
    assert credit_hours("companionship", "high", 9.0) == 4.5  # scarcity capped at 2
    with pytest.raises(ValueError, match="task kind"):
        credit_hours("dance", "high", 1.0)


@given(
    st.sampled_from(sorted(DEFAULT_POLICY.base_hours)),
    st.sampled_from(["high", "medium", "low"]),
    st.floats(0, 10, allow_nan=False),
    st.floats(0, 10, allow_nan=False),
)
def test_credits_grow_with_scarcity_and_stay_on_the_quarter_hour(kind, urgency, s1, s2):
    lo, hi = sorted((s1, s2))
    c_lo, c_hi = credit_hours(kind, urgency, lo), credit_hours(kind, urgency, hi)
    assert c_lo <= c_hi
    assert (c_hi * 4).is_integer()


def test_due_date_by_urgency():
    assert due_date_for("high", TODAY) == date(2026, 3, 4)
    assert due_date_for("medium", TODAY) == date(2026, 3, 9)


def test_task_kind_follows_the_leading_cause():
    gait = [{"feature": "gait_speed_7d", "causes": ["gait_balance"]}]
    toilet = [{"feature": "night_toilet_visits_7d", "causes": ["acute_episode"]}]
    assert task_kind_for("fall_risk", gait) == "walk"
    assert task_kind_for("fall_risk", toilet) == "home_hazard_check"
    assert task_kind_for("fall_risk", []) == "home_hazard_check"
    # without explicit causes, the feature registry says what a feature measures
    assert task_kind_for("fall_risk", [{"feature": "night_toilet_visits_7d"}]) == "home_hazard_check"
    assert task_kind_for("isolation", toilet) == "companionship"
    with pytest.raises(ValueError, match="model"):
        task_kind_for("demand", [])


def test_plan_task_stores_the_reasons_and_the_credit_formula():
    spec = plan_task(_fall(), today=TODAY, scarcity=Scarcity(1.5, demand_hours=30.0, supply_hours=20.0))
    assert spec.kind == "home_hazard_check" and spec.reason == "fall_risk" and spec.urgency == "high"
    assert spec.credits == 3.5  # 1.5 x 1.5 x 1.5 = 3.375 -> 3.5
    assert spec.due_date == date(2026, 3, 4)
    assert "night-time toilet visits rose from 1.1 to 3.2" in spec.explanation
    assert spec.reasons[0]["feature"] == "night_toilet_visits_7d"
    f = spec.details["credit_formula"]
    assert (f["base_hours"], f["urgency_multiplier"], f["scarcity"], f["demand_hours"]) == (1.5, 1.5, 1.5, 30.0)


def test_low_and_medium_bands_open_nothing_by_default_but_policy_can_say_otherwise():
    assert plan_task(_fall(band="medium"), today=TODAY) is None
    policy = ActionPolicy(open_bands=("high", "medium"))
    spec = plan_task(_fall(band="medium"), today=TODAY, policy=policy)
    assert spec.urgency == "medium" and spec.due_date == date(2026, 3, 9)
    with pytest.raises(ValueError, match="no due days"):
        ActionPolicy(open_bands=("critical",))


def test_plan_task_rejects_unknown_model_and_bad_probability():
    with pytest.raises(InvalidInput, match="model"):
        plan_task(Verdict("R1", "G1", "demand", 0.5, "high"), today=TODAY)
    with pytest.raises(InvalidInput, match="probability"):
        plan_task(_fall(p=float("nan")), today=TODAY)


def test_grid_scarcity_from_forecast_and_volunteers():
    forecast = pd.DataFrame({
        "series_id": ["G01:meals", "G01:transport", "G01:meals", "G02:meals"],
        "date": pd.to_datetime(["2026-03-03", "2026-03-03", "2026-03-20", "2026-03-03"]),
        "horizon": [1, 1, 18, 1],
        "forecast": [4.0, 2.0, 100.0, 1.0],
    })
    volunteers = pd.DataFrame({"grid_id": ["G01", "G02", "G02"], "weekly_hours": [2.0, 3.0, 4.0]})
    s = grid_scarcity(forecast, volunteers, horizon_days=7)
    # 4 meals x 1 h + 2 transports x 2 h (the planned hours the twin is calibrated with)
    assert s["G01"].demand_hours == 8.0 and s["G01"].supply_hours == 2.0 and s["G01"].factor == 2.0
    assert s["G02"].factor == 1.0
    with pytest.raises(ValueError, match="forecast"):
        grid_scarcity(forecast.drop(columns="forecast"), volunteers)


# --- writes ------------------------------------------------------------------------------------


def test_act_opens_one_task_per_resident_and_reason(store):
    out = act_on_assessments(store, [_fall("R1"), _lonely("R1"), _fall("R2", band="low")], today=TODAY)
    assert [o.action for o in out] == ["opened", "opened", "none"]
    assert {o.task.kind for o in out[:2]} == {"home_hazard_check", "companionship"}
    again = act_on_assessments(store, [_fall("R1")], today=TODAY)
    assert again[0].action == "already_open" and again[0].task.task_id == out[0].task.task_id
    # the stored task explains itself
    t = store.get_task(out[0].task.task_id)
    assert t.reasons[0]["text"].startswith("night-time toilet visits") and t.model_version == "7"


def test_rescoring_the_same_night_does_not_reopen_a_finished_task(store):
    t = act_on_assessments(store, [_fall("R1")], today=TODAY)[0].task
    store.cancel_task(t.task_id, idempotency_key="cancel-1")
    out = act_on_assessments(store, [_fall("R1")], today=TODAY)
    assert out[0].action == "none" and "cancelled" in out[0].why
    nxt = Verdict("R1", "G01", "fall_risk", 0.5, "high", [], "7", date(2026, 3, 9))
    assert act_on_assessments(store, [nxt], today=date(2026, 3, 9))[0].action == "opened"
    assert open_key_for(nxt, TODAY) == "assess:R1:fall_risk:2026-03-09"


def test_concurrent_scoring_of_one_resident_opens_one_task(store):
    barrier = threading.Barrier(3)
    results = []

    def run(i):
        a = Verdict("R9", "G01", "isolation", 0.8, "high", [], "4", date(2026, 3, i + 1))
        barrier.wait()
        results.append(act_on_assessments(store, [a], today=TODAY)[0])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(o.action for o in results) == ["already_open", "already_open", "opened"]
    assert len({o.task.task_id for o in results}) == 1
