"""Score residents with explanations: probability, band and worded TreeSHAP reasons.

Shared by POST /assess (a few residents) and the nightly batch (everyone, in chunks). Each chunk
makes one `predict(pred_contrib=True)` call per model; the probability is the calibrated
transform of the same raw score, so explanation and score always agree.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from features.explain import reason_text
from features.registry import FEATURES
from models.base import apply_calibration
from models.registry import ChampionError, load_champion
from serving.store import ScoreRecord

ID_COLUMNS = ("resident_id", "as_of_date")

__all__ = ["ChampionError", "Champion", "load_champions", "score_chunk", "rows_to_features", "score_records"]


class BadFeatures(ValueError):
    """Explicit feature rows that cannot be scored (unknown names, NaN, infinity)."""


@dataclass(frozen=True)
class Champion:
    """A loaded @champion model and the code module that knows its bands and calibration."""

    name: str
    loaded: Any  # models.registry.LoadedModel
    module: ModuleType

    @property
    def version(self) -> str:
        return str(self.loaded.version)

    @property
    def feature_names(self) -> list[str]:
        return list(self.loaded.feature_names)


def load_champions(names: Sequence[str], tracking_uri: str) -> dict[str, Champion]:
    """Load the @champion of every model.

    Raises ChampionError naming the model, version and what is wrong (no @champion alias,
    unreadable artifacts, feature schema hash different from the code's).
    """
    return {
        name: Champion(name, load_champion(name, tracking_uri), importlib.import_module(f"models.{name}"))
        for name in names
    }


class _RowView(Mapping[str, float]):
    """A read-only feature-name -> value view of one row, without building a dict."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: Mapping[str, int], values: np.ndarray):
        self._index = index
        self._values = values

    def __getitem__(self, key: str) -> float:
        return float(self._values[self._index[key]])

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


@dataclass
class ModelScores:
    """One model's scores for a chunk of residents (arrays aligned with the chunk's rows)."""

    model: str
    version: str
    probability: np.ndarray
    band: np.ndarray
    top_features: np.ndarray  # (n, k) indices into feature_names, strongest first
    top_contributions: np.ndarray  # (n, k)
    feature_names: list[str]


@dataclass
class ChunkScores:
    """Scores of every requested model for one chunk of residents.

    Reasons are worded from the whole feature row (a reason may compare a feature with a
    companion the model itself does not use, e.g. this week against the usual).
    """

    frame: pd.DataFrame  # resident_id, as_of_date
    columns: dict[str, int]  # feature name -> column of `values`
    values: np.ndarray  # (n, every feature)
    by_model: dict[str, ModelScores] = field(default_factory=dict)

    def reasons(self, model: str, i: int) -> list[dict[str, Any]]:
        """Worded top reasons of row i for one model."""
        s = self.by_model[model]
        row = _RowView(self.columns, self.values[i])
        out = []
        for j, c in zip(s.top_features[i], s.top_contributions[i], strict=True):
            name = s.feature_names[j]
            v = self.values[i, self.columns[name]]
            out.append(
                {
                    "feature": name,
                    "contribution": float(c),
                    "value": None if np.isnan(v) else float(v),
                    "text": reason_text(name, row, float(c)),
                }
            )
        return out


def _bands(module: ModuleType, probability: np.ndarray) -> np.ndarray:
    bands = getattr(module, "BANDS", None)
    if bands is not None and hasattr(bands, "bands"):
        return np.asarray(bands.bands(probability), dtype=object)
    return np.array([module.band(float(p)) for p in probability], dtype=object)


def score_model(champion: Champion, X: np.ndarray, top_k: int) -> ModelScores:
    """Probability, band and top-k contributions of one model for every row of its matrix X."""
    contrib = np.asarray(champion.loaded.booster.predict(X, pred_contrib=True, num_threads=1))
    shap = contrib[:, :-1]
    # contributions plus base value add up to the raw score (log-odds): calibrate that sum
    probability = apply_calibration(champion.loaded.calibration, contrib.sum(axis=1))
    n_features = shap.shape[1]
    k = min(top_k, n_features)
    if k < n_features:
        part = np.argpartition(-shap, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n_features), shap.shape).copy()
    part_vals = np.take_along_axis(shap, part, axis=1)
    order = np.argsort(-part_vals, axis=1, kind="stable")  # strongest push towards risk first
    return ModelScores(
        model=champion.name,
        version=champion.version,
        probability=probability,
        band=_bands(champion.module, probability),
        top_features=np.take_along_axis(part, order, axis=1),
        top_contributions=np.take_along_axis(part_vals, order, axis=1),
        feature_names=champion.feature_names,
    )


def score_chunk(
    champions: Mapping[str, Champion], features: pd.DataFrame, models: Sequence[str], top_k: int
) -> ChunkScores:
    """Score one chunk of feature rows (columns of `build_features`) with every requested model."""
    names = [c for c in features.columns if c not in ID_COLUMNS]
    values = features[names].to_numpy(dtype=np.float64, na_value=np.nan)
    columns = {n: j for j, n in enumerate(names)}
    out = ChunkScores(
        frame=features[list(ID_COLUMNS)].reset_index(drop=True), columns=columns, values=values
    )
    for m in models:
        champion = champions[m]
        X = values[:, [columns[n] for n in champion.feature_names]]
        out.by_model[m] = score_model(champion, X, top_k)
    return out


def rows_to_features(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Explicit feature rows -> the online store's frame layout (unknown values NaN).

    Names the models do not know and non-finite values are refused with what was wrong.
    """
    known = list(FEATURES)
    known_set = set(known)
    unknown = sorted({k for r in rows for k in r["features"] if k not in known_set})
    if unknown:
        more = f" (and {len(unknown) - 20} more)" if len(unknown) > 20 else ""
        raise BadFeatures(f"unknown feature names: {', '.join(unknown[:20])}{more}")
    data = {name: np.full(len(rows), np.nan) for name in known}
    for i, r in enumerate(rows):
        for k, v in r["features"].items():
            if v is None:
                continue
            if not np.isfinite(v):
                raise BadFeatures(f"row {i} ({r['resident_id']}): feature {k} is {v}; values must be finite")
            data[k][i] = v
    frame = pd.DataFrame(
        {
            "resident_id": pd.Series([r["resident_id"] for r in rows], dtype="str"),
            "as_of_date": pd.to_datetime([r.get("as_of_date") for r in rows]).astype("datetime64[ns]"),
        }
    )
    return pd.concat([frame, pd.DataFrame(data)], axis=1)


def score_records(chunk: ChunkScores, scored_at: datetime | None = None) -> list[ScoreRecord]:
    """The chunk's scores as records for the store's score history (one per resident and model)."""
    out: list[ScoreRecord] = []
    ids = chunk.frame["resident_id"].tolist()
    days = [None if pd.isna(d) else pd.Timestamp(d).date() for d in chunk.frame["as_of_date"]]
    for m, s in chunk.by_model.items():
        for i, rid in enumerate(ids):
            out.append(
                ScoreRecord(
                    resident_id=rid,
                    model=m,
                    model_version=s.version,
                    as_of=days[i],
                    probability=float(s.probability[i]),
                    band=str(s.band[i]),
                    reasons=chunk.reasons(m, i),
                    scored_at=scored_at,
                )
            )
    return out
