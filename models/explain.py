"""SHAP contributions of a model's raw score (log-odds), via LightGBM's built-in TreeSHAP."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.base import LoadedModel, feature_matrix

BASE_VALUE = "base_value"


def tree_shap(loaded: LoadedModel, X, num_threads: int = 1) -> np.ndarray:
    """The (n, features + 1) TreeSHAP matrix of the checked input rows, base value last."""
    return np.asarray(loaded.booster.predict(feature_matrix(loaded, X), pred_contrib=True,
                                             num_threads=num_threads))


def contributions(loaded: LoadedModel, X, num_threads: int = 1) -> pd.DataFrame:
    """One row per input row: a column per feature (log-odds contribution), last `base_value`.

    The row sums to the booster's raw score. `num_threads=1` because OpenMP threads slow down
    small calls on a busy machine.
    """
    contrib = tree_shap(loaded, X, num_threads)
    index = X.index if isinstance(X, pd.DataFrame) else None
    return pd.DataFrame(contrib, columns=[*loaded.feature_names, BASE_VALUE], index=index)
