"""Load a registered model by alias from MLflow and check it fits the code's feature schema.

The booster is stored with MLflow's native LightGBM flavour; its calibration, feature order and
schema hash travel as JSON metadata in the model's MLmodel file (no pickles).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.base import LoadedModel

MODEL_NAMES = ("fall_risk", "isolation", "demand")
METADATA_KEY = "twincare"


class ChampionError(RuntimeError):
    """The model to serve is missing or does not fit the code; the message says which and why."""


def model_metadata(
    name: str,
    feature_names: list[str],
    schema_hash: str,
    calibration: dict[str, Any],
    extra: dict[str, Any] | None = None,
    twin_id: str = "",
) -> dict[str, Any]:
    """The JSON block written into the MLmodel file when a model is logged."""
    return {
        METADATA_KEY: {
            "model": name,
            "feature_names": list(feature_names),
            "feature_schema_hash": schema_hash,
            "calibration": calibration,
            "extra": extra or {},
            "twin_id": twin_id,
        }
    }


def load_version(name: str, tracking_uri: str, alias: str = "champion",
                 version: str | None = None) -> LoadedModel:
    """Load `models:/<name>@<alias>` (or a given version) without checking the schema."""
    import lightgbm as lgb
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        mv = (client.get_model_version(name, str(version)) if version is not None
              else client.get_model_version_by_alias(name, alias))
    except MlflowException as exc:
        if version is not None:
            raise ChampionError(f"model {name!r}: no version {version} in {tracking_uri}") from exc
        raise ChampionError(
            f"model {name!r}: no version has the alias @{alias} in {tracking_uri} "
            f"(train and promote it first: `twincare train` then `twincare promote {name}`)"
        ) from exc
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(name, mv.version),
            tracking_uri=tracking_uri,
        )
    except (MlflowException, OSError) as exc:
        raise ChampionError(
            f"model {name!r} version {mv.version} (@{alias}): artifacts cannot be read: {exc}"
        ) from exc
    meta = (Model.load(local).metadata or {}).get(METADATA_KEY)
    if not meta:
        raise ChampionError(
            f"model {name!r} version {mv.version} (@{alias}): no {METADATA_KEY!r} metadata "
            "(feature names, schema hash, calibration); it was not logged by twincare"
        )
    booster_file = Path(local) / "model.lgb"
    if not booster_file.exists():
        raise ChampionError(f"model {name!r} version {mv.version} (@{alias}): model.lgb missing")
    booster = lgb.Booster(model_file=str(booster_file))
    return LoadedModel(
        name=name,
        version=str(mv.version),
        booster=booster,
        feature_names=list(meta["feature_names"]),
        schema_hash=str(meta["feature_schema_hash"]),
        calibration=dict(meta.get("calibration") or {}),
        extra=dict(meta.get("extra") or {}),
        run_id=mv.run_id,
    )


def check_schema(loaded: LoadedModel, alias: str = "champion") -> LoadedModel:
    """Raise ChampionError when the model was trained on a feature set the code no longer has."""
    from features.registry import feature_names, schema_hash
    from models import demand, fall_risk, isolation

    feature_set = {m.NAME: m.FEATURE_SET for m in (fall_risk, isolation, demand)}[loaded.name]
    code_hash = schema_hash(feature_set)
    if loaded.schema_hash != code_hash:
        code_names = feature_names(feature_set)
        added = [n for n in code_names if n not in loaded.feature_names]
        removed = [n for n in loaded.feature_names if n not in code_names]
        detail = []
        if added:
            detail.append(f"code adds {', '.join(added[:5])}")
        if removed:
            detail.append(f"code drops {', '.join(removed[:5])}")
        if not detail:
            detail.append("same names, different order, dtype or window")
        raise ChampionError(
            f"model {loaded.name!r} version {loaded.version} (@{alias}): feature schema hash "
            f"{loaded.schema_hash} differs from the code's {code_hash} ({'; '.join(detail)}); "
            "retrain and promote it"
        )
    return loaded


def load_champion(name: str, tracking_uri: str, alias: str = "champion") -> LoadedModel:
    """The `@champion` version of a registered model, checked against the code's feature schema."""
    if name not in MODEL_NAMES:
        raise ChampionError(f"unknown model {name!r}; registered models are {', '.join(MODEL_NAMES)}")
    return check_schema(load_version(name, tracking_uri, alias), alias)
