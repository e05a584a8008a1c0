"""The likely cause of a resident's risk, read from the model's features by a classifier trained
on a twin's planted causes.

Summing a risk model's SHAP values per cause says which features moved *the score*; it names the
twin's planted dominant cause for 0.68-0.79 of high-band fall rows, because a feature of one cause
also stands in for others (falls on record are partly the mark of the frailty or the dementia
that caused them). A twin knows each resident's dominant cause, so a classifier of the model's own
features can learn what the evidence says of it: a `CauseReader`. Trained on one twin, it names
the dominant cause of other twins' high-band residents (`benchmarks/bench_quality.py`); in a real
community it is as right as the twin's mechanisms are, which is why the service names its
source and keeps the SHAP sums beside it.

Stored as one JSON file beside a model version (`READER_FILE`, its digest in the registry): the
risk model it reads for, its causes, its input names and order, what it was trained on, and the
LightGBM multiclass booster as text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.base import BoosterParams, fit_booster

READER_FILE = "cause_reader.json"
READER_FORMAT = 1
# how a cause reader is fitted (small: it is loaded with every model version): 15-leaf trees on
# every row and input, no penalty, at most 200 rounds per cause, early-stopped after 20
READER_BOOSTER = BoosterParams(num_trees=200, num_leaves=15, learning_rate=0.1, min_data_in_leaf=50,
                               feature_fraction=1.0, bagging_fraction=1.0, bagging_freq=0, lambda_l2=0.0,
                               early_stopping_rounds=20, num_threads=0)


class CauseReaderError(ValueError):
    """A cause reader's file cannot be used: it names what is wrong."""


@dataclass(frozen=True)
class CauseReader:
    """A classifier from a risk model's features to the planted cause that dominates."""

    model: str
    causes: tuple[str, ...]
    feature_names: tuple[str, ...]
    booster: Any  # lightgbm.Booster, multiclass over `causes`
    trained_on: Mapping[str, Any] = field(default_factory=dict)

    def probabilities(self, matrix: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """(n, len(causes)): each row's probability of each cause being the dominant one.
        `matrix` holds the model's inputs in `feature_names` order (NaN: unknown)."""
        matrix = np.asarray(matrix, dtype="float64")
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names):
            raise ValueError(f"cause reader of {self.model}: expected {len(self.feature_names)} feature columns, "
                             f"got shape {matrix.shape}")
        if not len(matrix):
            return np.zeros((0, len(self.causes)))
        p = self.booster.predict(matrix, num_threads=num_threads)
        return np.asarray(p, dtype="float64").reshape(len(matrix), len(self.causes))

    def likely(self, matrix: np.ndarray, num_threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Each row's most likely cause and its probability."""
        p = self.probabilities(matrix, num_threads)
        if not len(p):
            return np.array([], dtype=object), np.array([], dtype="float64")
        best = p.argmax(axis=1)
        return np.asarray(self.causes, dtype=object)[best], p[np.arange(len(p)), best]

    def to_json(self) -> str:
        return json.dumps({
            "format": READER_FORMAT,
            "model": self.model,
            "causes": list(self.causes),
            "feature_names": list(self.feature_names),
            "trained_on": dict(self.trained_on),
            "booster": self.booster.model_to_string(),
        })

    @classmethod
    def from_json(cls, text: str, *, model: str, feature_names: Sequence[str],
                  causes: Sequence[str] | None = None, where: str = READER_FILE) -> CauseReader:
        """Read a stored reader, refusing one that is not for `model` and its inputs (or names a
        cause outside `causes`), by name."""
        import lightgbm as lgb

        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CauseReaderError(f"{where} is not JSON: {exc}") from None
        if not isinstance(d, dict):
            raise CauseReaderError(f"{where} holds no cause reader (a JSON object is expected)")
        missing = [k for k in ("format", "model", "causes", "feature_names", "booster") if k not in d]
        if missing:
            raise CauseReaderError(f"{where} lacks {', '.join(missing)}")
        if d["format"] != READER_FORMAT:
            raise CauseReaderError(f"{where} has format {d['format']!r}; this service reads {READER_FORMAT}")
        if d["model"] != model:
            raise CauseReaderError(f"{where} reads causes for {d['model']!r}, not {model!r}")
        if list(d["feature_names"]) != list(feature_names):
            raise CauseReaderError(f"{where} reads other inputs than {model}'s "
                                   f"({len(d['feature_names'])} against {len(feature_names)} features)")
        names = d["causes"]
        if not isinstance(names, list) or len(names) < 2 or not all(isinstance(c, str) for c in names):
            raise CauseReaderError(f"{where}: causes must be a list of at least two names")
        if causes is not None and (unknown := sorted(set(names) - set(causes))):
            raise CauseReaderError(f"{where} names causes {model} does not measure: {', '.join(unknown)}")
        try:
            booster = lgb.Booster(model_str=str(d["booster"]))
        except lgb.basic.LightGBMError as exc:
            raise CauseReaderError(f"{where}: its booster cannot be read ({exc})") from None
        if booster.num_feature() != len(feature_names) or booster.num_model_per_iteration() != len(names):
            raise CauseReaderError(f"{where}: its booster reads {booster.num_feature()} inputs into "
                                   f"{booster.num_model_per_iteration()} classes, not {len(feature_names)} into {len(names)}")
        return cls(model, tuple(names), tuple(feature_names), booster, dict(d.get("trained_on") or {}))


def fit_cause_reader(model: str, rows: pd.DataFrame, feature_names: Sequence[str], causes: Sequence[str],
                     *, valid: pd.DataFrame | None = None, params: BoosterParams = READER_BOOSTER,
                     trained_on: Mapping[str, Any] | None = None) -> CauseReader | None:
    """A reader fitted on `rows` (the model's features and the planted dominant `cause` of each),
    early-stopped on `valid` when given (`models.base.fit_booster`); None when the rows hold fewer
    than two of `causes`."""
    rows = rows[rows["cause"].isin(list(causes))]
    present = tuple(c for c in causes if (rows["cause"] == c).any())
    if len(present) < 2:
        return None
    index = {c: i for i, c in enumerate(present)}

    def xy(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return (frame[list(feature_names)].to_numpy(dtype="float64", na_value=np.nan),
                frame["cause"].map(index).to_numpy())

    X_val, y_val = xy(valid[valid["cause"].isin(list(present))]) if valid is not None else (None, None)
    booster = fit_booster(params, "multiclass", *xy(rows), X_val, y_val, feature_names=list(feature_names),
                          num_class=len(present))
    facts = {"rows": int(len(rows)), "trees_per_cause": int(booster.current_iteration()),
             "cause_shares": {c: round(float((rows["cause"] == c).mean()), 4) for c in present},
             **dict(trained_on or {})}
    return CauseReader(model, present, tuple(feature_names), booster, facts)
