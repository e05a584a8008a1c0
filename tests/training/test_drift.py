"""The monitor's statistics: PSI and KS read a shift and stay low without one; the label-free
AUROC estimate of calibrated probabilities matches what labels drawn from them realise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from training.drift import estimate_performance, expected_auroc, feature_drift, ks, psi


def test_psi_is_near_zero_for_the_same_population_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref, same = rng.normal(1.0, 0.2, 20_000), rng.normal(1.0, 0.2, 4_000)
    assert psi(ref, same) < 0.02
    assert psi(ref, same - 0.1) > 0.2  # half a spread lower: a gait-speed sensor reading 0.1 m/s low
    assert psi(ref * 3000, same * 6000) > 1.0  # step counts doubled


def test_psi_counts_readings_that_stopped_arriving_as_a_shift():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=5000)
    cur = rng.normal(size=2000)
    cur[:600] = np.nan  # 30% of the residents' readings missing
    assert psi(ref, cur) > 0.25
    assert psi(ref, cur[600:]) < 0.05


def test_psi_of_a_discrete_feature_uses_its_values():
    ref = np.repeat([0.0, 1.0, 2.0], [700, 200, 100])
    assert psi(ref, ref.copy()) == pytest.approx(0.0, abs=1e-9)
    assert psi(ref, np.repeat([0.0, 1.0, 2.0], [400, 300, 300])) > 0.25


def test_ks_finds_a_shift_the_size_of_the_sample_can_show():
    rng = np.random.default_rng(2)
    d, p = ks(rng.normal(size=3000), rng.normal(0.3, 1, 3000))
    assert d > 0.08 and p < 1e-6
    d0, p0 = ks(rng.normal(size=3000), rng.normal(size=3000))
    assert d0 < 0.05 and p0 > 1e-3


def test_feature_drift_ranks_the_shifted_feature_first_with_its_importance():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"gait": rng.normal(1.0, 0.2, 4000), "sleep": rng.normal(7, 1, 4000)})
    cur = pd.DataFrame({"gait": rng.normal(0.85, 0.2, 800), "sleep": rng.normal(7, 1, 800)})
    table = feature_drift(ref, cur, ["gait", "sleep"], {"gait": 0.7, "sleep": 0.3})
    top = table.iloc[0]
    assert top["feature"] == "gait" and top["drift"] == "major" and top["importance"] == 0.7
    assert table.iloc[1]["drift"] == "none"
    assert top["mean_current"] == pytest.approx(0.85, abs=0.02)


def test_a_window_that_filled_since_training_is_not_drift_but_a_shift_under_both_readings_is():
    """A trend that needs three scores is unknown for half the residents while the history is
    young and for a tenth once its window has filled: no change in the community, and the current
    rows built from a history as deep as the reference's read like the reference. A sensor
    reading low reads low under both."""
    rng = np.random.default_rng(5)

    def rows(n, unknown, gait):
        trend = rng.normal(0.0, 0.5, n)
        trend[: int(unknown * n)] = np.nan
        return pd.DataFrame({"trend_365d": trend, "gait": rng.normal(gait, 0.2, n)})

    ref, cur, deep = rows(4000, 0.5, 1.0), rows(2000, 0.1, 0.85), rows(2000, 0.5, 0.85)
    plain = feature_drift(ref, cur, ["trend_365d", "gait"], {}).set_index("feature")
    like = feature_drift(ref, cur, ["trend_365d", "gait"], {}, current_as_deep=deep).set_index("feature")
    assert plain.loc["trend_365d", "drift"] == "major" and not plain.loc["trend_365d", "depth_only"]
    assert like.loc["trend_365d", "drift"] == "none" and like.loc["trend_365d", "depth_only"]
    assert like.loc["trend_365d", "psi_full_history"] == pytest.approx(plain.loc["trend_365d", "psi"])
    assert like.loc["gait", "drift"] == "major" and not like.loc["gait", "depth_only"]


@pytest.mark.parametrize("prevalence", [0.03, 0.2])
def test_the_label_free_auroc_matches_the_realised_auroc_of_calibrated_probabilities(prevalence):
    rng = np.random.default_rng(4)
    logit = rng.normal(np.log(prevalence / (1 - prevalence)), 1.0, 20_000)
    p = 1 / (1 + np.exp(-logit))
    realised = [roc_auc_score(rng.random(p.size) < p, p) for _ in range(30)]
    est = estimate_performance(p, draws=100, seed=0)
    assert est.auroc == pytest.approx(np.mean(realised), abs=0.005)
    assert est.auroc_low < np.median(realised) < est.auroc_high
    assert est.prevalence == pytest.approx(p.mean())


def test_expected_auroc_is_a_half_for_a_constant_score_and_grows_with_separation():
    assert expected_auroc(np.full(100, 0.1)) == pytest.approx(0.5)
    # two residents at 0.9 and 0.1: the pair is ordered right with odds 0.81 : 0.01, ties count half
    assert expected_auroc([0.9, 0.1]) == pytest.approx(0.9)
    assert expected_auroc([0.99, 0.01]) > expected_auroc([0.9, 0.1])
