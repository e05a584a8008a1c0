"""The what-if on a small twin: deterministic, the JSON the issue asks for, the volunteers' claim
model and the service's scarcity formula. (That the policy scores like /assess is tested in
tests/serving/test_api.py, on that module's app: one BentoML app per test process.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from training.whatif import (
    ClaimModel,
    Tasks,
    WhatIfConfig,
    claim,
    prepare,
    run_experiment,
    run_policy,
)

CHEAP = ("none", "random", "oracle")


@pytest.fixture(scope="module")
def cheap_context(small_twin):
    return prepare(small_twin, WhatIfConfig(weeks=3, seeds=2, policies=CHEAP), tracking_uri=None)


def test_same_seed_and_policy_give_the_same_result(cheap_context):
    for policy in ("random", "oracle"):
        a, b = run_policy(cheap_context, policy, 4), run_policy(cheap_context, policy, 4)
        assert a.metrics == b.metrics and a.claimed_by_grid == b.claimed_by_grid
    assert run_policy(cheap_context, "random", 5).metrics != run_policy(cheap_context, "random", 4).metrics


def test_visits_spend_capacity_and_none_spends_nothing(cheap_context):
    none = run_policy(cheap_context, "none", 4)
    oracle = run_policy(cheap_context, "oracle", 4)
    assert none.metrics["visit_hours"] == 0 and none.metrics["credits"] == 0
    weeks = cheap_context.cfg.weeks
    assert 0 < oracle.metrics["visit_hours"] <= cheap_context.capacity * weeks + 1e-9
    # common random numbers: the oracle's visits can only lower the expected falls
    assert oracle.metrics["expected_falls"] < none.metrics["expected_falls"]


def test_whatif_command_prints_the_json_and_logs_an_mlflow_run(small_twin, tmp_path):
    from training.cli import app

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = CliRunner().invoke(app, ["whatif", "--history", str(small_twin), "--tracking-uri", uri,
                                   "--weeks", "2", "--seeds", "2", "--policies", ",".join(CHEAP),
                                   "--pricing", "flat", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    assert [p["policy"] for p in out["policies"]] == list(CHEAP)
    for entry in out["policies"]:
        for metric in ("falls", "injurious_falls", "lonely_resident_days", "visit_hours", "credits",
                       "falls_prevented_per_100h"):
            value = entry[metric]
            assert set(value) == {"mean", "ci95"} and len(value["ci95"]) == 2
    none = out["policies"][0]
    assert none["falls_prevented_per_100h"]["mean"] is None  # no hours: nothing to divide by
    oracle = out["policies"][2]
    lo, hi = oracle["visit_hours"]["ci95"]
    assert lo <= oracle["visit_hours"]["mean"] <= hi
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(out["mlflow_run_id"])
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"whatif.json", "whatif_table.md", "whatif.png"} <= names
    assert run.data.params["pricing"] == "flat"


def test_checkpointed_runs_are_not_run_again(small_twin, tmp_path):
    cfg = WhatIfConfig(weeks=1, seeds=1, policies=("none", "random"))
    ck = tmp_path / "runs.jsonl"
    first = run_experiment(small_twin, cfg, checkpoint=ck)
    assert len(ck.read_text().splitlines()) == 2
    again = run_experiment(small_twin, cfg, checkpoint=ck)
    assert len(ck.read_text().splitlines()) == 2
    assert first["policies"] == again["policies"]


def test_volunteers_claim_more_far_tasks_when_they_pay_more():
    """Scarcity pricing: the same tasks, one grid away from every volunteer, are claimed more
    often when they pay twice their hours than at flat credits."""
    n = 200
    xy = np.array([[0, 0], [0, 1]])
    kind = np.array(["home_hazard_check"] * n)
    hours = np.full(n, 1.5)
    counts = []
    for credits in (hours, 2 * hours):
        tasks = Tasks(np.arange(n), kind, hours, credits, np.full(n, 7))
        day, by = claim(tasks, np.ones(n, np.int64), np.zeros(100, np.int64), np.full(100, 3.0), xy,
                        ClaimModel(), np.random.default_rng(1))
        assert ((day >= 0) == (by >= 0)).all()
        counts.append(int((day >= 0).sum()))
    assert counts[1] > counts[0] > 0
    # and nobody claims more hours than they have spare
    assert np.bincount(by[by >= 0], minlength=100).max() * 1.5 <= 3.0


def test_urgent_tasks_are_claimable_only_until_due():
    n = 50
    tasks = Tasks(np.arange(n), np.array(["walk"] * n), np.ones(n), np.ones(n), np.full(n, 1))
    day, _ = claim(tasks, np.zeros(n, np.int64), np.zeros(40, np.int64), np.full(40, 5.0),
                   np.array([[0, 0]]), ClaimModel(), np.random.default_rng(2))
    assert set(day[day >= 0].tolist()) <= {0}


def test_scarcity_prices_a_week_of_demand_against_a_week_of_volunteer_hours(cheap_context):
    """The service's formula on the twin: last week's requests (hours of each category) over the
    volunteers' offered weekly hours in the grid, capped."""
    from models.policy import DEFAULT_POLICY
    from training.whatif import week_scarcity
    from twin.schema import REQUEST_CATEGORIES

    eng = cheap_context.twin.engine
    t = cheap_context.twin.start_day
    by_grid = week_scarcity(eng, t, DEFAULT_POLICY)
    day = np.concatenate(eng.req["day"]).astype(int)
    keep = day >= t - 7
    idx = np.concatenate(eng.req["idx"]).astype(int)[keep]
    cat = np.concatenate(eng.req["cat"]).astype(int)[keep]
    hours = np.array([DEFAULT_POLICY.base_hours[c] for c in REQUEST_CATEGORIES])[cat]
    grid = eng.pop.grid_ids[eng.pop.grid[idx]]
    g0 = eng.pop.grid_ids[0]
    expected = hours[grid == g0].sum()
    supply = eng.volunteers.loc[eng.volunteers["grid_id"] == g0, "weekly_hours"].sum()
    assert by_grid[g0].demand_hours == pytest.approx(expected, abs=1e-3)
    assert by_grid[g0].supply_hours == pytest.approx(supply, abs=1e-3)
    assert by_grid[g0].factor == pytest.approx(min(2.0, max(1.0, expected / supply)))


def test_the_actions_policy_opens_a_visit_for_each_high_band_as_the_service_would(cheap_context):
    from models.registry import risk_specs
    from training.whatif import Scored, _actions_week
    from twin.engine import VISIT_KINDS

    ctx = cheap_context
    eng = ctx.twin.engine.fork()
    candidates = np.flatnonzero(~eng.st["away"])[:4]
    bands = np.array(["high", "low", "high", "low"])
    scored = {name: Scored(name, "1", np.array([0.9, 0.1, 0.8, 0.05]), bands, {}) for name in risk_specs()}
    visits, due, credits = _actions_week(ctx, scored, candidates, None, eng, ctx.twin.start_day, {})
    assert visits, "a high band opens a task"
    assert {r for r, _ in visits} <= {int(candidates[0]), int(candidates[2])}
    assert all(kind in VISIT_KINDS for _, kind in visits)
    assert len(due) == len(credits) == len(visits)
