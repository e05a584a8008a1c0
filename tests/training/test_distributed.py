"""lightgbm.dask training gives a usable booster with the trees validation chose."""

from __future__ import annotations

import numpy as np
import pytest

from models.base import BoosterParams
from training.distributed import dask_fit, truncate_on_validation


@pytest.mark.slow
def test_dask_trainer_fits_a_poisson_booster_on_a_local_cluster():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 3))
    y = rng.poisson(np.exp(0.5 + 0.8 * X[:, 0])).astype(float)
    fit = dask_fit()
    booster = fit(BoosterParams(num_trees=40, min_data_in_leaf=20), "poisson", X[:1500], y[:1500],
                  X[1500:], y[1500:], feature_names=["a", "b", "c"])
    assert 1 <= booster.num_trees() <= 40
    pred = booster.predict(X[1500:])
    assert (pred > 0).all()
    assert np.corrcoef(pred, y[1500:])[0, 1] > 0.5


def test_truncation_keeps_the_best_number_of_trees():
    from models.base import fit_booster

    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 2))
    y = (X[:, 0] + rng.normal(size=600) > 0).astype(int)
    # a deliberately overfitted booster: many trees, tiny leaves, no early stopping
    big = fit_booster(BoosterParams(num_trees=300, min_data_in_leaf=2, num_leaves=31,
                                    learning_rate=0.3), "binary", X[:300], y[:300])
    small = truncate_on_validation(big, X[300:], y[300:])
    assert small.num_trees() < big.num_trees()
