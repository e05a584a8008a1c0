"""Training with `lightgbm.dask` on a Dask cluster (a LocalCluster unless a scheduler is given).

`dask_fit(scheduler)` returns a function with the signature of `models.base.fit_booster`, so the
same model code trains in-process or on a cluster. lightgbm.dask cannot stop early, so the
number of trees is chosen afterwards on the validation rows (the same rule as early stopping).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from models.base import BoosterParams


def truncate_on_validation(booster, X_val: np.ndarray, y_val: np.ndarray, objective: str = "binary",
                           step: int = 10):
    """Keep the number of trees with the lowest validation loss."""
    import lightgbm as lgb
    from sklearn.metrics import log_loss, mean_poisson_deviance

    total = booster.num_trees()
    if total <= step or len(y_val) == 0:
        return booster
    if objective == "binary" and len(np.unique(y_val)) < 2:
        return booster

    def loss(k: int) -> float:
        pred = booster.predict(X_val, num_iteration=k)
        if objective == "binary":
            return log_loss(y_val, np.clip(pred, 1e-7, 1 - 1e-7))
        return mean_poisson_deviance(y_val, np.maximum(pred, 1e-9))

    candidates = sorted({*range(step, total, step), total})
    best = candidates[int(np.argmin([loss(k) for k in candidates]))]
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def dask_fit(scheduler: str | None = None, n_workers: int = 2) -> Callable[..., Any]:
    """A `fit_booster`-compatible trainer that runs lightgbm.dask."""

    def fit(params: BoosterParams, objective: str, X: np.ndarray, y: np.ndarray,
            X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
            feature_names: list[str] | None = None, **extra: Any):
        import dask.array as da
        import lightgbm as lgb
        from dask.distributed import Client, LocalCluster

        p = params.lightgbm(objective, **extra)
        for k in ("objective", "verbose", "num_threads", "force_row_wise", "deterministic"):
            p.pop(k, None)
        cluster = None
        if scheduler is None:
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(scheduler)
        try:
            rows = max(1, math.ceil(len(y) / n_workers))
            dX = da.from_array(np.asarray(X, dtype=float), chunks=(rows, X.shape[1]))
            dy = da.from_array(np.asarray(y, dtype=float), chunks=(rows,))
            cls = lgb.DaskLGBMClassifier if objective == "binary" else lgb.DaskLGBMRegressor
            model = cls(client=client, n_estimators=params.num_trees, objective=objective,
                        verbose=-1, **p)
            model.fit(dX, dy, feature_name=feature_names or "auto")
            booster = lgb.Booster(model_str=model.booster_.model_to_string())
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        if X_val is not None and y_val is not None:
            booster = truncate_on_validation(booster, X_val, y_val, objective)
        return booster

    return fit
