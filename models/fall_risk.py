"""Fall risk: a fall in the 30 days from the as-of date, per resident.

Label: any `fall` event dated in [as_of, as_of + 30 days). Baselines: a STEADI-style screen (the
three key questions: fallen in the past year, feels unsteady, worries about falling; a recorded
fall in the past year also counts as "fallen") and a logistic regression on the same features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.base import Bands, BoosterParams, LoadedModel, calibrated_proba
from models.labels import any_in_window, check_index, count_before, last_value_before
from models.spec import Baseline, BehaviourCheck, PromotionRule, RiskSpec, causes_of

NAME = "fall_risk"
FEATURE_SET = "falls"
HORIZON_DAYS = 30
OBJECTIVE = "binary"
BANDS = Bands(medium=0.05, high=0.12)
# Causes a walk helps with (strength, balance, confidence); other fall causes get a home check.
WALK_CAUSES = frozenset({"gait_balance", "frailty", "fear_of_falling"})


def _falls(events: pd.DataFrame | None) -> pd.DataFrame | None:
    return events.loc[events["type"] == "fall"] if events is not None else None


def label(events: pd.DataFrame, index: pd.DataFrame) -> np.ndarray:
    """1 when the resident falls in [as_of, as_of + 30 days), else 0."""
    falls = _falls(events)
    return any_in_window(index, falls, HORIZON_DAYS).astype(int)


def monotone_directions() -> list[int]:
    """Known directions, read from the declared features: a fall on record never lowers risk.

    Fall counts and the STEADI "fallen" answer may only raise the score (+1); days since the
    last fall may only lower it (-1). Everything else is left free (0).
    """
    from features.registry import features_of

    out = []
    for f in features_of(FEATURE_SET):
        if "previous_fall" not in f.causes:
            out.append(0)
        elif f.family == "recency":
            out.append(-1)
        elif f.family in ("count", "assessment"):
            out.append(1)
        else:
            out.append(0)
    return out


def make_estimator(params: BoosterParams | None = None) -> dict:
    """LightGBM parameters (binary log-loss, monotone in fall history)."""
    return (params or BoosterParams()).lightgbm(OBJECTIVE, monotone_constraints=monotone_directions())


def predict_proba(loaded: LoadedModel, X, num_threads: int = 1) -> np.ndarray:
    """Calibrated probability of a fall in the next 30 days."""
    return calibrated_proba(loaded, X, num_threads=num_threads)


def band(p: float) -> str:
    return BANDS.band(p)


def steadi_screen(assessments: pd.DataFrame, events: pd.DataFrame, index: pd.DataFrame) -> np.ndarray:
    """STEADI key-question score 0-3 from the latest answers before as_of (unknown counts as no)."""
    idx = check_index(index)
    fell_answer = last_value_before(idx, assessments, "steadi_fell_past_year")
    falls = _falls(events)
    fell_recorded = count_before(idx, falls, 365) > 0
    fell = (np.nan_to_num(fell_answer) > 0) | fell_recorded
    unsteady = np.nan_to_num(last_value_before(idx, assessments, "steadi_unsteady")) > 0
    fear = np.nan_to_num(last_value_before(idx, assessments, "fear_of_falling")) > 0
    return fell.astype(float) + unsteady.astype(float) + fear.astype(float)


def _non_decreasing(values: list[float], weights: list[float]) -> list[float]:
    """The weighted least-squares non-decreasing fit (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, weight, size]
    for v, w in zip(values, weights, strict=True):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (v2, w2, n2), (v1, w1, n1) = blocks.pop(), blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return [b[0] for b in blocks for _ in range(int(b[2]))]


@dataclass
class SteadiBaseline:
    """The screen score turned into a probability by the observed rate per score (train rows)."""

    rates: dict[int, float] | None = None

    def fit(self, score: np.ndarray, y: np.ndarray) -> SteadiBaseline:
        prior = float(np.mean(y))
        rates, weights = [], []
        for s in range(4):
            m = score == s
            # shrink small cells towards the overall rate
            rates.append(float((y[m].sum() + 10 * prior) / (m.sum() + 10)))
            weights.append(float(m.sum() + 10))
        # a "yes" never lowers the screen's rate: pool neighbouring scores that noise put out of order
        self.rates = dict(enumerate(_non_decreasing(rates, weights)))
        return self

    def predict_proba(self, score: np.ndarray) -> np.ndarray:
        if self.rates is None:
            raise RuntimeError("SteadiBaseline.fit must run before predict_proba")
        return np.array([self.rates[int(s)] for s in score])


def logistic_baseline(seed: int = 7):
    """Logistic regression on the model's features (median-imputed with missing flags, scaled)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=0.5, max_iter=2000, random_state=seed),
    )


# ---------------------------------------------------------------------------------------------
# The spec: what training, promotion, serving and the actions policy know of this model
# ---------------------------------------------------------------------------------------------


def _label(history, index: pd.DataFrame) -> np.ndarray:
    return label(history.events, index).astype(float)


def _baseline_columns(history, index: pd.DataFrame) -> dict[str, np.ndarray]:
    return {"baseline_steadi": steadi_screen(history.assessments, history.events, index)}


class _Steadi:
    def __init__(self):
        self.fitted = SteadiBaseline()

    def fit(self, X: np.ndarray, y: np.ndarray) -> _Steadi:
        self.fitted.fit(np.asarray(X)[:, 0], y)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.fitted.predict_proba(np.asarray(X)[:, 0])


class _Logistic:
    def __init__(self, seed: int):
        self.model = logistic_baseline(seed)

    def fit(self, X: np.ndarray, y: np.ndarray) -> _Logistic:
        self.model.fit(X, y)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(X)[:, 1]


def _features(rows: pd.DataFrame) -> np.ndarray:
    from features.registry import feature_names

    return rows[feature_names(FEATURE_SET)].to_numpy(float)


def task_kind(reasons: Sequence[Mapping[str, Any]]) -> str:
    """A walk when the leading reason that names a fall cause is about mobility, else a
    home-hazard check."""
    from twin.schema import FALL_CAUSES

    for r in reasons:
        causes = [c for c in causes_of(r) if c in FALL_CAUSES]
        if causes:
            return "walk" if causes[0] in WALK_CAUSES else "home_hazard_check"
    return "home_hazard_check"


def _recent_fall(history, residents: list[str], as_of: pd.Timestamp):
    """The same residents with a fall recorded three days before the as-of date."""
    from features.pipeline import History

    events = history.events
    extra = pd.DataFrame({"resident_id": pd.Series(residents, dtype="str"),
                          "date": as_of - pd.Timedelta(days=3), "type": "fall", "injury": False})
    events = pd.concat([events, extra[[c for c in events.columns if c in extra.columns]]], ignore_index=True)
    events["resident_id"] = events["resident_id"].astype("str")
    return History(**{**history.tables(), "events": events})


SPEC = RiskSpec(
    name=NAME,
    title="Fall risk",
    description="A fall in the 30 days from the as-of date.",
    feature_set=FEATURE_SET,
    horizon_days=HORIZON_DAYS,
    bands=BANDS,
    label=_label,
    baseline_columns=_baseline_columns,
    baselines=(
        Baseline("steadi", inputs=lambda rows: rows[["baseline_steadi"]].to_numpy(float),
                 make=lambda seed: _Steadi(), score=lambda rows: rows["baseline_steadi"].to_numpy(float),
                 features=("steadi_fell_past_year_last", "falls_365d", "steadi_unsteady_last", "fear_of_falling_last")),
        Baseline("logistic", inputs=_features, make=_Logistic),
    ),
    task_kind=task_kind,
    promotion=PromotionRule(auroc_over_baseline=0.05),
    behaviour=(BehaviourCheck("recent_fall_raises_risk", _recent_fall, "raises"),),
    monotone=monotone_directions,
    objective=OBJECTIVE,
)
