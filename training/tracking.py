"""MLflow plumbing: experiments per model, run logging, model registration, aliases.

Default store: SQLite backend `sqlite:///DIR/mlflow.db` with artifacts in `DIR/mlartifacts`
(any tracking URI works, e.g. `postgresql+psycopg://...` for a shared backend store; set
TWINCARE_ARTIFACT_ROOT to say where its artifacts go).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.base import LoadedModel
from models.causes import READER_FILE
from models.registry import (
    BOOSTER_FILE,
    CHECKSUM_TAG,
    READER_CHECKSUM_TAG,
    file_sha256,
    model_metadata,
)

CHAMPION = "champion"
CHALLENGER = "challenger"


def artifact_root(tracking_uri: str, env: Mapping[str, str] = os.environ) -> str | None:
    """TWINCARE_ARTIFACT_ROOT if set; `DIR/mlartifacts` next to a SQLite store; else MLflow's default."""
    if env.get("TWINCARE_ARTIFACT_ROOT"):
        return env["TWINCARE_ARTIFACT_ROOT"].rstrip("/")
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return str((db.parent / "mlartifacts").resolve())
    return None


def prepare_store(tracking_uri: str) -> None:
    """Create the folder of a SQLite store (MLflow creates the tables)."""
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def tracking(tracking_uri: str) -> Iterator[Any]:
    """Point MLflow's fluent API at `tracking_uri` for the block; yields a client."""
    import mlflow
    from mlflow.tracking import MlflowClient

    prepare_store(tracking_uri)
    before_t, before_r = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    finally:
        mlflow.set_tracking_uri(before_t)
        mlflow.set_registry_uri(before_r)


def experiment_id(client, name: str, tracking_uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = artifact_root(tracking_uri)
    location = f"{root}/{name}" if root else None
    return client.create_experiment(name, artifact_location=location)


def metric_key(*parts: str) -> str:
    """An MLflow-safe metric name."""
    key = "_".join(p for p in parts if p)
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", key.replace("=", "_").replace("+", "plus"))


def flat_metrics(prefix: str, d: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in d.items():
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int | float | np.floating) and np.isfinite(v):
            out[metric_key(prefix, k)] = float(v)
    return out


def flat_params(prefix: str, d: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flat_params(f"{prefix}{k}.", v))
        else:
            out[f"{prefix}{k}"] = str(v)[:500]
    return out


def read_manifest(history_dir: str | Path) -> dict[str, Any]:
    p = Path(history_dir) / "manifest.json"
    return json.loads(p.read_text()) if p.exists() else {}


def _json_default(o):
    if isinstance(o, np.integer | np.floating):
        return o.item()
    if isinstance(o, pd.Timestamp):
        return str(o.date())
    return str(o)


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2, default=_json_default, sort_keys=True))
    return path


def _requirements() -> list[str]:
    """The packages a loaded model needs, pinned as installed (skips MLflow's slow inference)."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("lightgbm", "numpy", "pandas", "scikit-learn", "mlflow")]


def log_model_run(
    *,
    tracking_uri: str,
    loaded: LoadedModel,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    json_artifacts: Mapping[str, Any],
    files: Mapping[str, Path] | None = None,
    input_example: pd.DataFrame,
    output_example: np.ndarray,
    twin_id: str = "",
) -> dict[str, str]:
    """One run: params, metrics, artifacts, the booster (native flavour) registered under its name.

    Returns run_id, version and model_uri. The version carries the same schema/twin tags.
    """
    import mlflow
    import mlflow.artifacts
    import mlflow.lightgbm
    from mlflow.models import infer_signature

    with tracking(tracking_uri) as client:
        exp = experiment_id(client, loaded.name, tracking_uri)
        all_tags = {"feature_schema_hash": loaded.schema_hash, "twin_id": twin_id, "model": loaded.name,
                    **tags}
        with mlflow.start_run(experiment_id=exp, tags=all_tags) as run:
            mlflow.log_params(dict(params))
            mlflow.log_metrics(dict(metrics))
            with tempfile.TemporaryDirectory() as tmp:
                for name, data in json_artifacts.items():
                    mlflow.log_artifact(str(write_json(Path(tmp) / name, data)))
            for path in (files or {}).values():
                mlflow.log_artifact(str(path))
            if loaded.cause_reader is not None:
                with tempfile.TemporaryDirectory() as tmp:
                    reader = Path(tmp) / READER_FILE
                    reader.write_text(loaded.cause_reader.to_json(), encoding="utf-8")
                    mlflow.log_artifact(str(reader))
            example = input_example[loaded.feature_names].astype("float64")
            info = mlflow.lightgbm.log_model(
                loaded.booster,
                pip_requirements=_requirements(),
                name="model",
                signature=infer_signature(example, output_example),
                input_example=example,
                registered_model_name=loaded.name,
                metadata=model_metadata(
                    loaded.name, loaded.feature_names, loaded.schema_hash, loaded.calibration,
                    loaded.extra, twin_id,
                ),
            )
        version = str(info.registered_model_version)
        for k, v in all_tags.items():
            client.set_model_version_tag(loaded.name, version, k, str(v))
        client.set_model_version_tag(loaded.name, version, "run_id", run.info.run_id)
        # the booster file's digest, kept in the registry apart from the artifacts: serving
        # verifies it before loading, so a truncated or edited file is refused by name
        stored = mlflow.artifacts.download_artifacts(
            artifact_uri=f"runs:/{run.info.run_id}/model/{BOOSTER_FILE}", tracking_uri=tracking_uri)
        client.set_model_version_tag(loaded.name, version, CHECKSUM_TAG, file_sha256(stored))
        if loaded.cause_reader is not None:
            stored = mlflow.artifacts.download_artifacts(
                artifact_uri=f"runs:/{run.info.run_id}/{READER_FILE}", tracking_uri=tracking_uri)
            client.set_model_version_tag(loaded.name, version, READER_CHECKSUM_TAG, file_sha256(stored))
    loaded.version = version
    loaded.run_id = run.info.run_id
    return {"run_id": run.info.run_id, "version": version, "model_uri": f"models:/{loaded.name}/{version}"}


def latest_version(tracking_uri: str, name: str) -> str:
    """Highest registered version number of a model."""
    with tracking(tracking_uri) as client:
        versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise LookupError(f"no registered versions of {name!r} in {tracking_uri}; train it first")
    return str(max(int(v.version) for v in versions))


def model_version_tags(tracking_uri: str, name: str, version: str) -> dict[str, str]:
    """The registry tags of one model version."""
    with tracking(tracking_uri) as client:
        return dict(client.get_model_version(name, str(version)).tags or {})


def alias_version(tracking_uri: str, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    with tracking(tracking_uri) as client:
        try:
            return str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None


def set_alias(tracking_uri: str, name: str, alias: str, version: str) -> None:
    with tracking(tracking_uri) as client:
        client.set_registered_model_alias(name, alias, version)


def delete_alias(tracking_uri: str, name: str, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    with tracking(tracking_uri) as client, contextlib.suppress(MlflowException):
        client.delete_registered_model_alias(name, alias)


def run_of(tracking_uri: str, name: str, version: str):
    """(model version, its run) from the registry."""
    with tracking(tracking_uri) as client:
        mv = client.get_model_version(name, version)
        run = client.get_run(mv.run_id)
    return mv, run


def log_to_run(tracking_uri: str, run_id: str, metrics: Mapping[str, float] | None = None,
               tags: Mapping[str, str] | None = None, json_artifacts: Mapping[str, Any] | None = None) -> None:
    """Add metrics, tags or JSON artifacts to a finished run (e.g. the promotion decision)."""
    with tracking(tracking_uri) as client:
        for k, v in (metrics or {}).items():
            client.log_metric(run_id, k, float(v))
        for k, v in (tags or {}).items():
            client.set_tag(run_id, k, str(v))
        if json_artifacts:
            with tempfile.TemporaryDirectory() as tmp:
                for name, data in json_artifacts.items():
                    client.log_artifact(run_id, str(write_json(Path(tmp) / name, data)))
