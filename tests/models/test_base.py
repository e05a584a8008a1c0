"""Calibration, feature matrix checks and SHAP contributions on a tiny booster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.base import (
    BoosterParams,
    FeatureMatrixError,
    LoadedModel,
    apply_calibration,
    calibrated_proba,
    fit_booster,
    fit_platt,
    raw_score,
)
from models.explain import contributions
from models.spec import top_positive


@pytest.fixture(scope="module")
def tiny_model() -> LoadedModel:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(600, 3)), columns=["a", "b", "c"])
    y = (X["a"] + 0.3 * rng.normal(size=600) > 0.8).astype(int).to_numpy()
    booster = fit_booster(BoosterParams(num_trees=30, min_data_in_leaf=20), "binary",
                          X.to_numpy(), y, X.to_numpy()[:200], y[:200], feature_names=["a", "b", "c"])
    m = LoadedModel("fall_risk", "0", booster, ["a", "b", "c"], "h", {})
    m.calibration = fit_platt(raw_score(m, X), y)
    m.extra["X"] = X
    return m


def test_platt_maps_raw_score_monotonically_into_probabilities(tiny_model):
    X = tiny_model.extra["X"]
    p = calibrated_proba(tiny_model, X)
    raw = raw_score(tiny_model, X)
    assert ((p > 0) & (p < 1)).all()
    order = np.argsort(raw)
    assert (np.diff(p[order]) >= -1e-12).all()


def test_identity_calibration_is_the_sigmoid():
    assert apply_calibration({"method": "identity"}, np.array([0.0]))[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown calibration"):
        apply_calibration({"method": "isotonic?"}, np.array([0.0]))


def test_contributions_sum_to_the_raw_score(tiny_model):
    X = tiny_model.extra["X"].head(20)
    c = contributions(tiny_model, X)
    assert list(c.columns) == ["a", "b", "c", "base_value"]
    np.testing.assert_allclose(c.sum(axis=1).to_numpy(), raw_score(tiny_model, X), rtol=1e-6, atol=1e-9)
    idx, vals = top_positive(c.drop(columns=["base_value"]).to_numpy(), k=2)
    assert idx.shape == vals.shape == (20, 2)
    # reasons are the contributions that raise the score, strongest first; the rest are NaN
    assert np.all(np.isnan(vals) | (vals > 0))
    strongest = np.nanmax(np.where(c.drop(columns=["base_value"]).to_numpy() > 0, c.drop(columns=["base_value"]).to_numpy(), np.nan), axis=1)
    has = ~np.isnan(strongest)
    np.testing.assert_allclose(vals[has, 0], strongest[has])


def test_feature_order_comes_from_the_model_not_the_frame(tiny_model):
    X = tiny_model.extra["X"].head(5)
    np.testing.assert_allclose(calibrated_proba(tiny_model, X[["c", "b", "a"]]), calibrated_proba(tiny_model, X))


def test_missing_columns_and_infinities_are_named(tiny_model):
    X = tiny_model.extra["X"].head(3)
    with pytest.raises(FeatureMatrixError, match="lacks 1 feature"):
        calibrated_proba(tiny_model, X.drop(columns=["b"]))
    bad = X.copy()
    bad.loc[bad.index[0], "a"] = np.inf
    with pytest.raises(FeatureMatrixError, match="infinite"):
        calibrated_proba(tiny_model, bad)


def test_booster_params_reject_unknown_keys():
    with pytest.raises(ValueError, match="unknown booster parameter"):
        BoosterParams.from_mapping({"num_trees": 10, "leaves": 4})
    with pytest.raises(ValueError, match="num_leaves"):
        BoosterParams(num_leaves=1)
