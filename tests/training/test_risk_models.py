"""Risk models trained on a small twin: beat baselines, behave, explanations checkable."""

from __future__ import annotations

import pytest

from features.pipeline import load_history
from models.base import BoosterParams
from tests.training.twins import model_twin_dir
from training.config import SplitConfig
from training.data import risk_dataset
from training.promote import behaviour_checks
from training.risk import explanation_check, fit_risk, read_causes

FAST = BoosterParams(num_trees=60)


@pytest.fixture(scope="module")
def model_twin(tmp_path_factory):
    return model_twin_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def history(model_twin):
    return load_history(model_twin)


@pytest.fixture(scope="module")
def fall(history):
    ds = risk_dataset("fall_risk", history, SplitConfig())
    return ds, fit_risk(ds, FAST)


def test_fall_dataset_has_time_ordered_splits(fall):
    ds, _ = fall
    f = ds.frame
    assert f.loc[f["split"] == "train", "as_of_date"].max() < f.loc[f["split"] == "test", "as_of_date"].min()
    assert set(f["label"].unique()) <= {0.0, 1.0}
    assert not f[ds.feature_names].columns.duplicated().any()


def test_fall_model_beats_steadi_screen_and_is_calibrated(fall):
    _, res = fall
    m = res.metrics
    assert m["model"]["auroc"] > m["steadi"]["auroc"]
    assert m["model"]["auroc"] < 0.95
    assert m["model"]["calibration_error"] < 0.05
    assert set(m["slices"]) >= {"sex=F", "sex=M", "lives_alone=alone"}


def test_fall_model_behaves(fall, history):
    ds, res = fall
    last = ds.part("test")["as_of_date"].max()
    ids = sorted(ds.part("test").query("as_of_date == @last")["resident_id"].unique())[:80]
    checks = behaviour_checks(res.loaded, history, last, ids, tolerance=0.1)
    assert checks["resident_id_invariance"]["passed"]
    assert checks["recent_fall_raises_risk"]["passed"], checks


def test_explanation_check_counts_planted_causes(fall, model_twin):
    ds, res = fall
    out = explanation_check(res.loaded, ds.part("test"), read_causes(model_twin))
    assert out["rows"] > 0
    assert 0 <= out["hit_rate"] <= 1 and 0 < out["chance_rate"] < 1
    assert sum(c["rows"] for c in out["per_cause"].values()) == out["rows"]
    from twin.schema import FALL_CAUSES

    assert set(out["per_cause"]) <= set(FALL_CAUSES)


def test_isolation_beats_its_baseline_and_more_visits_do_not_raise_risk(history):
    ds = risk_dataset("isolation", history, SplitConfig())
    res = fit_risk(ds, FAST)
    assert res.metrics["model"]["auroc"] > res.metrics["alone_last_score"]["auroc"]
    last = ds.part("test")["as_of_date"].max()
    ids = sorted(ds.part("test")["resident_id"].unique())[:80]
    checks = behaviour_checks(res.loaded, history, last, ids, tolerance=0.1)
    assert checks["more_visits_do_not_raise_risk"]["passed"], checks


def test_training_is_reproducible(fall):
    ds, res = fall
    again = fit_risk(ds, FAST)
    assert again.loaded.booster.model_to_string() == res.loaded.booster.model_to_string()
    assert again.loaded.calibration == res.loaded.calibration


def test_the_baseline_served_as_a_model_scores_and_explains_as_the_screen(fall):
    """A community whose model cannot beat its screen is served the screen itself, through the
    same interface: the same ranking and probabilities, and reasons that are the screen's answers."""
    import numpy as np

    from models.base import BASELINE_KIND, kind_of
    from models.registry import get_spec
    from training import evaluate as ev
    from training.risk import fit_baseline_model

    ds, res = fall
    served = fit_baseline_model(ds)
    spec = get_spec("fall_risk")
    test = ds.part("test")
    p = spec.predict_proba(served, test)
    y = test["label"].to_numpy(int)
    assert kind_of(served) == BASELINE_KIND and kind_of(res.loaded) != BASELINE_KIND
    assert abs(ev.auroc_only(y, p) - res.metrics["steadi"]["auroc"]) < 0.005
    # the gate's screen is fitted on training + validation rows, the served one on training rows
    assert np.allclose(p, res.test_scores["steadi"].to_numpy(), atol=0.003)
    e = spec.explain(served, test, k=3)
    named = {served.feature_names[j] for i in range(len(test)) for j, _ in e.reasons_of(i)}
    assert named and named <= set(spec.baselines[0].features)


def test_the_screen_served_as_a_model_is_the_screen_where_constraints_would_stop_short(tmp_path):
    """On this 300-resident community LightGBM's monotone constraints could not reproduce the
    fitted STEADI screen (0.35 off in log-odds; AUROC 0.580 on the test rows against the screen's
    0.592). The screen is already monotone in every answer, so it is now served as it is, row for
    row, and still never lowers the risk as an answer rises."""
    import numpy as np

    from models.registry import get_spec
    from training.risk import fit_baseline_model
    from twin.simulate import simulate

    history = load_history(simulate(out=tmp_path / "history", residents=300, days=730, seed=4, start="2024-01-01"))
    ds = risk_dataset("fall_risk", history, SplitConfig())
    served = fit_baseline_model(ds)
    spec = get_spec("fall_risk")
    base = spec.baselines[0]
    train, test = ds.part("train"), ds.part("test")
    screen = base.make(7).fit(base.inputs(train), train["label"].to_numpy(int))
    np.testing.assert_allclose(spec.predict_proba(served, test), screen.predict_proba(base.inputs(test)), atol=1e-6)
    # each answer raised on every test row, the others kept: the served risk never falls
    for name in base.features:
        raised = test.copy()
        raised[name] = raised[name].fillna(0) + 1
        assert (spec.predict_proba(served, raised) >= spec.predict_proba(served, test) - 1e-9).all(), name


def test_the_served_booster_learns_the_latest_labelled_weeks_and_validation_stays_honest(fall):
    """The trees early stopping chose are grown again on training + validation rows (the latest
    labelled weeks): the served booster has learned the validation rows, while the validation
    figures and the calibration are those measured before it saw them; the gate's baseline is
    fitted on the same rows as the model."""
    from dataclasses import replace

    import numpy as np

    from models.base import raw_score
    from training import evaluate as ev

    ds, res = fall
    held = fit_risk(ds, replace(FAST, refit_with_validation=False))
    val = ds.part("val")
    y = val["label"].to_numpy(int)
    assert res.facts["refit_with_validation"] and not held.facts["refit_with_validation"]
    assert res.loaded.booster.current_iteration() == held.loaded.booster.current_iteration()
    assert res.metrics["model_val"] == held.metrics["model_val"]
    assert res.loaded.calibration == held.loaded.calibration

    def log_loss(loaded):
        z = raw_score(loaded, val)
        return float(np.mean(np.logaddexp(0, z) - y * z))

    assert log_loss(res.loaded) < log_loss(held.loaded)  # it has learned them
    assert not np.allclose(res.test_scores["steadi"], held.test_scores["steadi"])
    assert ev.auroc_only(ds.part("test")["label"].to_numpy(int), res.test_scores["model"]) > 0.6
