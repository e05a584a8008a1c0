"""A reference community's champion as a candidate for this community's champion.

A small community's own model is often no better than its baseline; a model trained on a larger
community (a reference twin, or pooled communities) may be. `register_reference` takes the
reference's @champion of a risk model, refuses it by name when its feature schema is not the
code's (or when it is only that community's baseline), and registers it here as a version tagged
`kind=reference` with its calibration kept and its source recorded, scored on this history's
frozen test window against this community's baseline with paired 95% intervals, as the local
model is. The gate then judges it like any version.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from features.pipeline import load_history
from models.base import BASELINE_KIND, REFERENCE_KIND, kind_of
from models.registry import ChampionError, check_schema, default_tracking_uri, load_version
from training.config import TrainParams
from training.data import risk_dataset
from training.train import TrainSummary, feature_source, model_name, register_scored


class ReferenceRefused(ValueError):
    """The reference community's model cannot be a candidate here (the message says why)."""


def reference_uri(reference: str | Path) -> str:
    """The tracking URI of a reference given as a URI or as a work directory (`WORKDIR/mlflow.db`)."""
    text = str(reference)
    if "://" in text:
        return text
    path = Path(text)
    if not (path / "mlflow.db").is_file():
        raise ReferenceRefused(f"reference {text!r}: no mlflow.db in that folder (give a `twincare "
                               "demo-train` work directory or an MLflow tracking URI)")
    return default_tracking_uri(path)


def register_reference(model: str, reference: str | Path, history_dir: str | Path, tracking_uri: str,
                       params: TrainParams | None = None,
                       features_dir: str | Path | None = None) -> TrainSummary:
    """Register the reference's @champion of `model` here as a `kind=reference` version scored
    on this history's test window; ReferenceRefused (naming the model and the reason) when it
    cannot be a candidate."""
    t0 = time.perf_counter()
    params = params or TrainParams()
    name = model_name(model)
    source = reference_uri(reference)
    if source == tracking_uri:
        raise ReferenceRefused(f"{name}: the reference {source} is this community's own registry")
    try:
        loaded = check_schema(load_version(name, source), alias=f"champion of the reference {source}")
    except ChampionError as exc:
        why = str(exc).removesuffix("; retrain and promote it")
        raise ReferenceRefused(f"{name}: the reference's champion is not a candidate here: {why}; the "
                               "reference community must retrain it on this code's features") from None
    if kind_of(loaded) == BASELINE_KIND:
        raise ReferenceRefused(f"{name}: the reference's champion v{loaded.version} is its own baseline "
                               "served as a model, not a model trained there")
    origin = {"reference": str(loaded.extra.get("reference", source)),
              "reference_version": str(loaded.extra.get("reference_version", loaded.version))}
    candidate = replace(loaded, extra={**loaded.extra, "kind": REFERENCE_KIND, **origin},
                        calibration=dict(loaded.calibration))
    ds = risk_dataset(name, load_history(history_dir), params.split,
                      features=feature_source(history_dir, features_dir))
    return register_scored(candidate, ds, history_dir, tracking_uri, params, features_dir,
                           {"kind": REFERENCE_KIND, **origin}, origin, t0)
