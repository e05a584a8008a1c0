"""Isolation: lonely (UCLA-3 score of 6 or more) at the next assessment within 90 days.

Label: the first loneliness score recorded in [as_of, as_of + 90 days); rows without one are
excluded (NaN label), not counted as "not lonely". Baseline: living alone plus the last known
loneliness score, in a logistic regression.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.base import Bands, BoosterParams, LoadedModel, calibrated_proba
from models.labels import check_index, last_value_before, next_value
from models.spec import Baseline, BehaviourCheck, PromotionRule, RiskSpec

NAME = "isolation"
FEATURE_SET = "loneliness"
HORIZON_DAYS = 90
LONELY_FROM = 6
OBJECTIVE = "binary"
BANDS = Bands(medium=0.3, high=0.6)


def label(assessments: pd.DataFrame, index: pd.DataFrame) -> np.ndarray:
    """1.0 lonely / 0.0 not lonely at the next scored assessment within 90 days; NaN if none."""
    score = next_value(index, assessments, "loneliness_score", HORIZON_DAYS)
    return np.where(np.isnan(score), np.nan, (score >= LONELY_FROM).astype(float))


def monotone_directions() -> list[int]:
    """Known directions, read from the declared features: visits never raise loneliness risk.

    Visit counts and hours may only lower the score (-1); days since the last visit may only
    raise it (+1). Time-bank tasks and requests are left free: high risk itself triggers them.
    """
    from features.registry import features_of

    out = []
    for f in features_of(FEATURE_SET):
        if f.family in ("visit_count", "visit_hours"):
            out.append(-1)
        elif f.family == "recency" and "few_visits" in f.causes:
            out.append(1)
        else:
            out.append(0)
    return out


def make_estimator(params: BoosterParams | None = None) -> dict:
    """LightGBM parameters (binary log-loss, monotone in visits)."""
    return (params or BoosterParams()).lightgbm(OBJECTIVE, monotone_constraints=monotone_directions())


def predict_proba(loaded: LoadedModel, X, num_threads: int = 1) -> np.ndarray:
    """Calibrated probability of being lonely at the next assessment."""
    return calibrated_proba(loaded, X, num_threads=num_threads)


def band(p: float) -> str:
    return BANDS.band(p)


def baseline_inputs(residents: pd.DataFrame, assessments: pd.DataFrame, index: pd.DataFrame) -> np.ndarray:
    """[lives alone, last loneliness score (mean-filled), score unknown] per pair."""
    idx = check_index(index)
    alone = (
        residents.assign(resident_id=residents["resident_id"].astype(str))
        .set_index("resident_id")["lives_alone"].astype(float)
        .reindex(idx["resident_id"]).fillna(0.0).to_numpy()
    )
    last = last_value_before(idx, assessments, "loneliness_score")
    unknown = np.isnan(last).astype(float)
    return np.column_stack([alone, np.where(np.isnan(last), 5.0, last), unknown])


@dataclass
class AloneAndLastScore:
    """Logistic regression on living alone + last loneliness score."""

    model: object | None = None

    def fit(self, inputs: np.ndarray, y: np.ndarray) -> AloneAndLastScore:
        from sklearn.linear_model import LogisticRegression

        self.model = LogisticRegression(max_iter=1000).fit(inputs, y)
        return self

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("AloneAndLastScore.fit must run before predict_proba")
        return self.model.predict_proba(inputs)[:, 1]


# ---------------------------------------------------------------------------------------------
# The spec: what training, promotion, serving and the actions policy know of this model
# ---------------------------------------------------------------------------------------------

BASELINE_COLUMNS = ("baseline_in0", "baseline_in1", "baseline_in2")


def _label(history, index: pd.DataFrame) -> np.ndarray:
    return label(history.assessments, index)


def _baseline_columns(history, index: pd.DataFrame) -> dict[str, np.ndarray]:
    inputs = baseline_inputs(history.residents, history.assessments, index)
    return {c: inputs[:, k] for k, c in enumerate(BASELINE_COLUMNS)}


def task_kind(reasons: Sequence[Mapping[str, Any]]) -> str:
    """Isolation calls for companionship, whatever the reasons."""
    return "companionship"


def _family_visits(history, residents: list[str], as_of: pd.Timestamp):
    """The same residents with family visits 2, 5 and 9 days before the as-of date."""
    from features.pipeline import History

    visits = history.visits
    cols = visits.columns if visits is not None else ["resident_id", "date", "source", "hours"]
    extra = pd.concat([
        pd.DataFrame({"resident_id": pd.Series(residents, dtype="str"), "date": as_of - pd.Timedelta(days=d),
                      "source": "family", "hours": 2.0, "kind": "companionship"})
        for d in (2, 5, 9)
    ], ignore_index=True)
    base = visits if visits is not None else extra.iloc[:0][list(cols)]
    visits = pd.concat([base, extra[[c for c in cols if c in extra.columns]]], ignore_index=True)
    visits["resident_id"] = visits["resident_id"].astype("str")
    return History(**{**history.tables(), "visits": visits})


SPEC = RiskSpec(
    name=NAME,
    title="Isolation risk",
    description="Lonely (UCLA-3 >= 6) at the next assessment within 90 days.",
    feature_set=FEATURE_SET,
    horizon_days=HORIZON_DAYS,
    bands=BANDS,
    label=_label,
    baseline_columns=_baseline_columns,
    baselines=(
        Baseline("alone_last_score", inputs=lambda rows: rows[list(BASELINE_COLUMNS)].to_numpy(float),
                 make=lambda seed: AloneAndLastScore(), features=("lives_alone", "loneliness_score_last")),
    ),
    task_kind=task_kind,
    promotion=PromotionRule(auroc_over_baseline=0.0, brier_under_baseline=0.0),
    behaviour=(BehaviourCheck("more_visits_do_not_raise_risk", _family_visits, "does_not_raise"),),
    monotone=monotone_directions,
    objective=OBJECTIVE,
)
