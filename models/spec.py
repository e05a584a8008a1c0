"""The one model interface: what every other room needs to know about a model, in one object.

A `RiskSpec` is a per-resident classifier (fall risk, isolation, ...): its label, feature set,
baselines, bands, known directions, promotion rule, behavioural checks and the task a high band
calls for. A `ForecastSpec` is a count forecaster over series (demand). Training, promotion,
serving, the nightly batch and the actions policy iterate `models.registry.SPECS` and call these
objects; none of them names a model. Adding a model = one module defining a spec + one registry
line.

Scoring and explanation share one path: `RiskSpec.explain` checks the input like
`predict_proba`, makes one TreeSHAP call and maps the contribution sum (= the raw score) through
the same calibration, so served probabilities equal `predict_proba` and served reasons are the
ones the explanation check measures (positive contributions only, strongest first).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

from models.base import (
    Bands,
    BoosterParams,
    LoadedModel,
    apply_calibration,
    calibrated_proba,
    feature_matrix,
)
from models.explain import tree_shap

if TYPE_CHECKING:  # pragma: no cover - typing only
    from features.pipeline import History


class Estimator:
    """What a baseline's factory returns: `fit(X, y)` returning itself, `predict_proba(X)` -> p."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Estimator: ...  # pragma: no cover - protocol

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...  # pragma: no cover - protocol


@dataclass(frozen=True)
class Baseline:
    """A simple method the model must beat, fitted on the training rows only.

    `inputs` reads its input matrix from dataset rows (the model's features plus the columns the
    spec's `baseline_columns` attached); `make(seed)` returns a fresh estimator. `score`, when
    given, is the screen's raw score: reported as `auroc_of_score` and used to order ties.
    `features` names the model's features its inputs are read from (a screen's questions, each of
    which can only raise the risk); a baseline that names them can also be served as a model
    (`training.risk.fit_baseline_model`).
    """

    name: str
    inputs: Callable[[pd.DataFrame], np.ndarray]
    make: Callable[[int], Any]
    score: Callable[[pd.DataFrame], np.ndarray] | None = None
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class BehaviourCheck:
    """A behavioural test of the promotion gate: perturb a handful of residents' histories and
    require the predicted risk to move one way (`raises`) or never up (`does_not_raise`)."""

    name: str
    perturb: Callable[[History, list[str], pd.Timestamp], History]
    direction: Literal["raises", "does_not_raise"]


@dataclass(frozen=True)
class PromotionRule:
    """What a risk model must show on its frozen test window against its first baseline."""

    auroc_over_baseline: float = 0.0
    brier_under_baseline: float | None = None  # None: Brier not gated


@dataclass(frozen=True)
class Explained:
    """Probability, band and the top reasons (positive contributions) of each scored row."""

    probability: np.ndarray  # (n,)
    band: np.ndarray  # (n,) "low" | "medium" | "high"
    top_features: np.ndarray  # (n, k) indices into the model's feature names, strongest first
    top_contributions: np.ndarray  # (n, k); NaN where a row has fewer than k positive reasons
    # the planted causes of the model's feature set and each row's log-odds attributed to each
    # (every feature measures at most one cause of a set; its whole contribution goes there)
    causes: tuple[str, ...] = ()
    cause_contributions: np.ndarray | None = None  # (n, len(causes))
    # reasons that are missing data ("no heart-rate data"), apart from the risk reasons
    missing_features: np.ndarray | None = None  # (n, k) like top_features
    missing_contributions: np.ndarray | None = None
    # the likely cause and its probability, from the version's cause reader (models.causes);
    # None when the version has none
    likely_causes: np.ndarray | None = None  # (n,) cause names
    likely_probability: np.ndarray | None = None  # (n,)

    def leading_cause(self) -> np.ndarray:
        """The cause with the largest attribution per row."""
        if self.cause_contributions is None or not self.causes:
            return np.full(len(self.probability), None, dtype=object)
        return np.asarray(self.causes, dtype=object)[self.cause_contributions.argmax(axis=1)]

    def named_cause(self) -> np.ndarray:
        """The cause the service names first: the cause reader's likely cause when the version
        has a reader, else the cause with the largest attribution."""
        return self.likely_causes if self.likely_causes is not None else self.leading_cause()

    def reasons_of(self, i: int) -> list[tuple[int, float]]:
        """(feature index, contribution) of row i's reasons, strongest first."""
        return [
            (j, c)
            for j, c in zip(self.top_features[i].tolist(), self.top_contributions[i].tolist(), strict=True)
            if c == c  # NaN: no further positive reason
        ]


def causes_of(reason: Mapping[str, Any]) -> tuple[str, ...]:
    """The planted causes a reason's feature measures (as declared in the feature registry)."""
    causes = reason.get("causes")
    if causes:
        return tuple(causes)
    feature = reason.get("feature")
    if not feature:
        return ()
    from features.registry import FEATURES

    f = FEATURES.get(feature)
    return tuple(getattr(f, "causes", ()) or ()) if f is not None else ()


def top_positive(contrib: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of each row's k largest contributions, strongest first; values that do
    not raise the score are NaN (they are not reasons for the risk)."""
    n_features = contrib.shape[1]
    k = min(k, n_features)
    if k < n_features:
        part = np.argpartition(-contrib, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n_features), contrib.shape).copy()
    vals = np.take_along_axis(contrib, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    return idx, np.where(vals > 0, vals, np.nan)


class _Named:
    """What every spec derives from its `name` and `feature_set`."""

    name: str
    feature_set: str

    @property
    def cli_name(self) -> str:
        return self.name.replace("_", "-")

    def feature_names(self) -> list[str]:
        from features.registry import feature_names

        return feature_names(self.feature_set)

    def schema_hash(self) -> str:
        from features.registry import schema_hash

        return schema_hash(self.feature_set)


@lru_cache(maxsize=32)
def _cause_shares(feature_set: str, names: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """The set's causes, which cause each feature's contribution counts for (one per feature, as
    the registry declares), and which features count missing data."""
    from features.registry import feature_set as declared_set
    from features.registry import get_feature

    causes = tuple(declared_set(feature_set).causes)
    share = np.zeros((len(names), len(causes)))
    missing = np.zeros(len(names), dtype=bool)
    for j, n in enumerate(names):
        f = get_feature(n)
        missing[j] = f.family == "missing"
        for cause in (c for c in f.causes if c in causes):
            share[j, causes.index(cause)] = 1.0
    return causes, share, missing


@dataclass(frozen=True)
class RiskSpec(_Named):
    """A per-resident risk model (resident x as-of date -> probability of an event)."""

    kind: ClassVar[str] = "risk"

    name: str
    title: str  # how a care manager calls the risk ("Fall risk")
    description: str
    feature_set: str  # a feature set declared in features.registry
    horizon_days: int  # the label window after the as-of date
    bands: Bands
    label: Callable[[History, pd.DataFrame], np.ndarray]  # 1/0 per (resident, as-of); NaN = excluded
    baselines: tuple[Baseline, ...]  # the first one is the promotion gate's
    baseline_columns: Callable[[History, pd.DataFrame], dict[str, np.ndarray]]
    task_kind: Callable[[Sequence[dict[str, Any]]], str]  # the visit a high band opens, from its reasons
    promotion: PromotionRule = field(default_factory=PromotionRule)
    behaviour: tuple[BehaviourCheck, ...] = ()
    monotone: Callable[[], list[int]] | None = None  # known directions per feature (+1/-1/0)
    objective: str = "binary"

    def lightgbm_params(self, params: BoosterParams | None = None) -> dict[str, Any]:
        """The `lightgbm.train` parameters of this model (with its known directions)."""
        return (params or BoosterParams()).lightgbm(self.objective, **self.fit_extra())

    def fit_extra(self) -> dict[str, Any]:
        """Extra booster parameters beyond `BoosterParams` (known directions)."""
        return {"monotone_constraints": self.monotone()} if self.monotone else {}

    def predict_proba(self, loaded: LoadedModel, X, num_threads: int = 1) -> np.ndarray:
        """Calibrated probability of the event for each row."""
        return calibrated_proba(loaded, X, num_threads=num_threads)

    def explain(self, loaded: LoadedModel, X, k: int, num_threads: int = 1, likely: bool = False) -> Explained:
        """Probability, band and top-k reasons in one TreeSHAP call (same input checks and
        calibration as `predict_proba`: contributions plus base value sum to the raw score); with
        `likely`, also the version's cause reader's likely cause (when it has one), which only what
        names causes asks for (the service reads it per reply, `serving.scoring`)."""
        matrix = feature_matrix(loaded, X)
        contrib = tree_shap(loaded, matrix, num_threads)
        probability = apply_calibration(loaded.calibration, contrib.sum(axis=1))
        c = contrib[:, :-1]
        causes, share, missing_family = _cause_shares(self.feature_set, tuple(loaded.feature_names))
        unknown = np.isnan(matrix) | missing_family
        known = np.where(unknown, 0.0, c)
        idx, vals = top_positive(known, k)
        midx, mvals = top_positive(np.where(unknown, c, 0.0), k)
        # a cause is attributed what its features' known values contribute; what an unknown value
        # contributes is missing data, told apart (as in the reasons)
        named = (None, None)
        if likely and loaded.cause_reader is not None:
            named = loaded.cause_reader.likely(matrix, num_threads)
        return Explained(probability, np.asarray(self.bands.bands(probability), dtype=object), idx, vals,
                         causes, known @ share, midx, mvals, *named)

    def contributions(self, loaded: LoadedModel, X, num_threads: int = 1) -> np.ndarray:
        """Every input's TreeSHAP contribution to each row's raw score, (n, features): the signed
        view of `explain` (what raises the risk and what lowers it)."""
        return tree_shap(loaded, X, num_threads)[:, :-1]

    def band(self, p: float) -> str:
        return self.bands.band(p)


@dataclass(frozen=True)
class ForecastSpec(_Named):
    """A daily count forecaster over series (`series_id, date, count`), with intervals.

    The module behind it provides `fit`, `forecast`, `predict_mean` and its parameters; the spec
    names the model and its feature set so the other rooms need not.
    """

    kind: ClassVar[str] = "forecast"

    name: str
    title: str
    description: str
    feature_set: str
    max_horizon: int
    module: Any  # the module with fit / forecast / predict_mean / DemandParams

    def forecast(self, loaded: LoadedModel, counts, horizon: int, basis: str = "logged") -> pd.DataFrame:
        """Daily forecasts as the record will show them (`logged`) or as the requests will arise
        (`occurring`: what planning volunteers' hours needs when counts are logged in batches)."""
        return self.module.forecast(loaded, counts, horizon=horizon, basis=basis)


ModelSpec = RiskSpec | ForecastSpec
