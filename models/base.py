"""What every risk model shares: booster settings, the fitted model as loaded, calibration, bands.

A risk model is a LightGBM booster whose raw score (log-odds) is mapped to a probability by a
small calibration stored as JSON next to it. SHAP contributions are computed on the raw score, so
they stay additive in log-odds whatever the calibration does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class BoosterParams:
    """LightGBM settings of the risk models. Kept small: SHAP cost at serving grows with trees x
    leaves.

    Two leaves a tree by default: each tree splits one feature, so the booster is a sum of one
    curve per feature in log-odds (the form the planted hazards take: a base rate times a factor
    per cause) and each feature's SHAP value is its own curve. What it gains over 15-leaf trees
    is measured in docs/results/quality.md.
    """

    num_trees: int = 1000  # an upper bound: early stopping on the validation weeks picks the size
    num_leaves: int = 2
    learning_rate: float = 0.1
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    early_stopping_rounds: int = 100
    # grow the trees early stopping chose again on training + validation rows: the validation
    # weeks are the latest labelled ones, the closest to the weeks the model will score
    refit_with_validation: bool = True
    seed: int = 7
    num_threads: int = 1  # OpenMP threads crawl when the other core is busy; raise on an idle machine

    def __post_init__(self) -> None:
        if not 1 <= self.num_trees <= 2000:
            raise ValueError(f"num_trees must be in 1..2000, got {self.num_trees}")
        if not 2 <= self.num_leaves <= 255:
            raise ValueError(f"num_leaves must be in 2..255, got {self.num_leaves}")
        if not 0 < self.learning_rate <= 1:
            raise ValueError(f"learning_rate must be in (0, 1], got {self.learning_rate}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> BoosterParams:
        """Build from a parsed TOML/JSON table; unknown keys are an error, not ignored."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown booster parameter(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def lightgbm(self, objective: str, **extra: Any) -> dict[str, Any]:
        """The parameter dict `lightgbm.train` takes (deterministic for a given seed)."""
        p = {
            "objective": objective,
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.num_threads,
            "verbose": -1,
        }
        p.update(extra)
        return p

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedModel:
    """A trained model as serving and evaluation see it (from MLflow or straight from training)."""

    name: str
    version: str
    booster: Any  # lightgbm.Booster
    feature_names: list[str]
    schema_hash: str
    calibration: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    # a classifier of the same inputs naming the likely cause (models.causes), when the version
    # was trained with a twin's planted causes at hand
    cause_reader: Any = None


# what kind of model a version is: trained on this community's history, a reference community's
# champion (its calibration kept), or the gate's baseline served as a model (so a community whose
# own model cannot beat its baseline still has a champion)
LOCAL_KIND = "local"
REFERENCE_KIND = "reference"
BASELINE_KIND = "baseline"


def kind_of(loaded: LoadedModel) -> str:
    return str(loaded.extra.get("kind", LOCAL_KIND))


class FeatureMatrixError(ValueError):
    """The rows handed to a model do not carry the model's features."""


def feature_matrix(loaded: LoadedModel, X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """The model's input columns in its order, as float64; a missing column is a clear error."""
    names = loaded.feature_names
    if isinstance(X, pd.DataFrame):
        missing = [n for n in names if n not in X.columns]
        if missing:
            raise FeatureMatrixError(
                f"{loaded.name}: input lacks {len(missing)} feature(s): {', '.join(missing[:10])}"
            )
        arr = X[names].to_numpy(dtype="float64", na_value=np.nan)
    else:
        arr = np.asarray(X, dtype="float64")
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise FeatureMatrixError(
                f"{loaded.name}: expected {len(names)} feature columns, got shape {arr.shape}"
            )
    if np.isinf(arr).any():
        raise FeatureMatrixError(f"{loaded.name}: input holds infinite values")
    return arr


def raw_score(loaded: LoadedModel, X, num_threads: int = 1) -> np.ndarray:
    """The booster's raw score (log-odds for classifiers)."""
    return loaded.booster.predict(feature_matrix(loaded, X), raw_score=True, num_threads=num_threads)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def fit_platt(raw: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Platt scaling on the raw score, fitted on validation rows; JSON-ready."""
    from sklearn.linear_model import LogisticRegression

    raw = np.asarray(raw, dtype=float).reshape(-1, 1)
    y = np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        return {"method": "identity", "slope": 1.0, "intercept": 0.0, "fitted_rows": int(len(y))}
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(raw, y)
    return {
        "method": "platt",
        "slope": float(lr.coef_[0, 0]),
        "intercept": float(lr.intercept_[0]),
        "fitted_rows": int(len(y)),
    }


def apply_calibration(calibration: Mapping[str, Any], raw: np.ndarray) -> np.ndarray:
    """Probability from the raw score under a stored calibration."""
    method = calibration.get("method", "identity")
    if method not in ("platt", "identity"):
        raise ValueError(f"unknown calibration method {method!r}")
    a = float(calibration.get("slope", 1.0))
    b = float(calibration.get("intercept", 0.0))
    return _sigmoid(a * np.asarray(raw, dtype=float) + b)


def calibrated_proba(loaded: LoadedModel, X, num_threads: int = 1) -> np.ndarray:
    """Calibrated probability of the model's event for each row."""
    return apply_calibration(loaded.calibration, raw_score(loaded, X, num_threads=num_threads))


@dataclass(frozen=True)
class Bands:
    """Probability cut-offs: below `medium` is low, from `high` up is high."""

    medium: float
    high: float

    def __post_init__(self) -> None:
        if not 0 < self.medium < self.high < 1:
            raise ValueError(f"bands need 0 < medium < high < 1, got {self.medium}, {self.high}")

    def band(self, p: float) -> str:
        if not np.isfinite(p):
            raise ValueError(f"probability must be finite, got {p}")
        if p >= self.high:
            return "high"
        if p >= self.medium:
            return "medium"
        return "low"

    def bands(self, p: Sequence[float] | np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        return np.where(p >= self.high, "high", np.where(p >= self.medium, "medium", "low"))


def fit_booster(
    params: BoosterParams,
    objective: str,
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    feature_names: list[str] | None = None,
    **extra: Any,
):
    """Train a LightGBM booster, early-stopping on the validation rows when given."""
    import lightgbm as lgb

    lgb_params = params.lightgbm(objective, **extra)
    train = lgb.Dataset(X, label=y, feature_name=feature_names or "auto", free_raw_data=True)
    callbacks = []
    valid_sets = None
    if X_val is not None and y_val is not None and len(y_val):
        valid_sets = [lgb.Dataset(X_val, label=y_val, reference=train)]
        callbacks.append(lgb.early_stopping(params.early_stopping_rounds, verbose=False))
    booster = lgb.train(
        lgb_params,
        train,
        num_boost_round=params.num_trees,
        valid_sets=valid_sets,
        callbacks=callbacks,
    )
    if valid_sets and booster.best_iteration > 0:
        # keep only the trees that early stopping chose, so serving never scores dead trees
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    return booster
