"""Score residents with explanations: probability, band and worded TreeSHAP reasons.

Shared by POST /assess (a few residents) and the nightly batch (everyone, in chunks). Each chunk
makes one `RiskSpec.explain` call per model (one TreeSHAP call): the model's own input checks,
calibration and reason rule, so what is served is what the model code and its explanation check
compute. Here the reasons are only worded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from features.explain import cause_text, reason_text
from features.registry import FEATURES
from models.base import LOCAL_KIND, LoadedModel, kind_of
from models.spec import ModelSpec
from serving.store import ScoreRecord

ID_COLUMNS = ("resident_id", "as_of_date")

__all__ = ["Champion", "score_chunk", "score_matrix", "rows_to_features", "score_records"]


class BadFeatures(ValueError):
    """Explicit feature rows that cannot be scored (unknown names, NaN, infinity)."""


@dataclass(frozen=True)
class Champion:
    """A loaded @champion model and its spec (which knows its bands, calibration and reasons)."""

    spec: ModelSpec
    loaded: LoadedModel

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> str:
        return str(self.loaded.version)

    @property
    def feature_names(self) -> list[str]:
        return list(self.loaded.feature_names)


@dataclass
class ModelScores:
    """One model's scores for a chunk of residents (arrays aligned with the chunk's rows)."""

    model: str
    version: str
    probability: np.ndarray
    band: np.ndarray
    top_features: np.ndarray  # (n, k) indices into feature_names, strongest first
    top_contributions: np.ndarray  # (n, k); NaN past a row's last positive reason
    feature_names: list[str]
    # missing data that raised the risk ("no steps data"), apart from the risk reasons; like
    # top_features / top_contributions
    missing_features: np.ndarray
    missing_contributions: np.ndarray
    kind: str = LOCAL_KIND  # local model or the baseline served as a model
    # the planted causes of the model's feature set and each row's log-odds attributed to each
    # (SHAP summed over the features that measure it)
    causes: tuple[str, ...] = ()
    cause_contributions: np.ndarray | None = None  # (n, len(causes))
    # the version's cause reader (models.causes) and the rows it reads: the likely cause is read
    # when first asked for (a reply names it; the nightly batch, which stores none, never pays)
    reader: Any = None
    matrix: np.ndarray | None = None
    _likely: tuple[np.ndarray, np.ndarray] | None = None

    def likely(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Each row's likely cause and its probability, or None without a reader."""
        if self.reader is None:
            return None
        if self._likely is None:
            self._likely = self.reader.likely(self.matrix)
        return self._likely


@dataclass
class ChunkScores:
    """Scores of every requested model for one chunk of residents.

    Reasons are worded from the whole feature row (a reason may compare a feature with a
    companion the model itself does not use, e.g. this week against the usual).
    """

    resident_ids: list[str]
    as_of: list[date | None]  # date the features describe, per resident
    columns: dict[str, int]  # feature name -> column of `values`
    values: np.ndarray  # (n, every feature)
    by_model: dict[str, ModelScores] = field(default_factory=dict)
    _rows: dict[int, dict[str, float]] = field(default_factory=dict, repr=False)
    _reasons: dict[tuple[str, int, bool], list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.resident_ids)

    def _row(self, i: int) -> dict[str, float]:
        row = self._rows.get(i)
        if row is None:
            row = self._rows[i] = dict(zip(self.columns, self.values[i].tolist(), strict=True))
        return row

    def reasons(self, model: str, i: int) -> list[dict[str, Any]]:
        """Worded top reasons of row i for one model (worded once: actions and replies share them)."""
        return self._worded(model, i, missing=False)

    def causes(self, model: str, i: int) -> list[dict[str, Any]]:
        """Row i's log-odds per planted cause that raises its risk (SHAP summed over the features
        measuring each), strongest first: the first is the leading cause."""
        s = self.by_model[model]
        if s.cause_contributions is None:
            return []
        shares = sorted(zip(s.causes, s.cause_contributions[i].tolist(), strict=True), key=lambda x: -x[1])
        return [{"cause": c, "attribution": a, "text": cause_text(c)} for c, a in shares if a > 0]

    def likely_cause(self, model: str, i: int) -> dict[str, Any] | None:
        """Row i's likely cause as the version's cause reader names it, or None without a reader."""
        s = self.by_model[model]
        likely = s.likely()
        if likely is None:
            return None
        cause = str(likely[0][i])
        return {"cause": cause, "probability": float(likely[1][i]), "text": cause_text(cause),
                "learned_from": _learned_from(s.reader)}

    def missing_data(self, model: str, i: int) -> list[dict[str, Any]]:
        """Worded missing data that raised row i's risk for one model (unknown values and
        sensor-gap counts), strongest first; kept apart from the risk reasons."""
        return self._worded(model, i, missing=True)

    def _worded(self, model: str, i: int, missing: bool) -> list[dict[str, Any]]:
        cached = self._reasons.get((model, i, missing))
        if cached is not None:
            return cached
        s = self.by_model[model]
        features, contributions = ((s.missing_features, s.missing_contributions) if missing
                                   else (s.top_features, s.top_contributions))
        row = self._row(i)
        names = s.feature_names
        out = []
        for j, c in zip(features[i].tolist(), contributions[i].tolist(), strict=True):
            if c != c:  # NaN: nothing further raises the risk
                break
            name = names[j]
            v = row[name]
            out.append(
                {
                    "feature": name,
                    "contribution": c,
                    "value": None if v != v else v,  # NaN: unknown
                    "text": reason_text(name, row, c),
                }
            )
        self._reasons[(model, i, missing)] = out
        return out


def score_model(champion: Champion, X: np.ndarray, top_k: int) -> ModelScores:
    """Probability, band and top-k reasons of one model for every row of its matrix X."""
    e = champion.spec.explain(champion.loaded, X, top_k)
    return ModelScores(
        model=champion.name,
        version=champion.version,
        probability=e.probability,
        band=e.band,
        top_features=e.top_features,
        top_contributions=e.top_contributions,
        feature_names=champion.feature_names,
        kind=kind_of(champion.loaded),
        missing_features=e.missing_features,
        missing_contributions=e.missing_contributions,
        causes=e.causes,
        cause_contributions=e.cause_contributions,
        reader=champion.loaded.cause_reader,
        matrix=X if champion.loaded.cause_reader is not None else None,
    )


def _learned_from(reader) -> str:
    """Where a cause reader learned the causes, in words: the twin it was trained on."""
    facts = reader.trained_on
    twin = facts.get("twin_id") or facts.get("history")
    return f"the planted causes of simulated community {twin}" if twin else "a simulated community's planted causes"


@lru_cache(maxsize=64)
def _plan(columns: tuple[str, ...], model_features: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the feature columns in a frame, and of a model's inputs among them."""
    feature_pos = np.array([j for j, c in enumerate(columns) if c not in ID_COLUMNS])
    names = [columns[j] for j in feature_pos]
    index = {n: k for k, n in enumerate(names)}
    return feature_pos, np.array([index[n] for n in model_features])


def _days(values: Any) -> list[date | None]:
    stamps = pd.DatetimeIndex(values)
    return [None if pd.isna(d) else d.date() for d in stamps]


def score_chunk(
    champions: Mapping[str, Champion], features: pd.DataFrame, models: Sequence[str], top_k: int
) -> ChunkScores:
    """Score one chunk of feature rows (columns of `build_features`) with every requested model."""
    cols = tuple(features.columns)
    feature_pos, _ = _plan(cols, ())
    return score_matrix(
        champions,
        resident_ids=features["resident_id"].tolist(),
        as_of=_days(features["as_of_date"].to_numpy()),
        columns=tuple(cols[j] for j in feature_pos),
        values=features.iloc[:, feature_pos].to_numpy(dtype=np.float64, na_value=np.nan),
        models=models,
        top_k=top_k,
    )


def score_matrix(
    champions: Mapping[str, Champion],
    *,
    resident_ids: list[str],
    as_of: list[date | None],
    columns: tuple[str, ...],
    values: np.ndarray,
    models: Sequence[str],
    top_k: int,
) -> ChunkScores:
    """Score rows given as a float matrix whose columns are every feature (`columns`)."""
    out = ChunkScores(
        resident_ids=resident_ids,
        as_of=as_of,
        columns={c: k for k, c in enumerate(columns)},
        values=values,
    )
    for m in models:
        champion = champions[m]
        _, model_pos = _plan(columns, tuple(champion.feature_names))
        out.by_model[m] = score_model(champion, values[:, model_pos], top_k)
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
    for m, s in chunk.by_model.items():
        probability, band = s.probability.tolist(), s.band.tolist()
        for i, rid in enumerate(chunk.resident_ids):
            out.append(
                ScoreRecord(
                    resident_id=rid,
                    model=m,
                    model_version=s.version,
                    as_of=chunk.as_of[i],
                    probability=probability[i],
                    band=band[i],
                    reasons=chunk.reasons(m, i),
                    missing_data=chunk.missing_data(m, i),
                    scored_at=scored_at,
                )
            )
    return out
