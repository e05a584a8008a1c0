"""Train and promote every registered model into a work directory and fill the online store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.registry import default_tracking_uri
from training.config import TrainParams
from training.retrain import retrain


def demo_train(history_dir: str | Path, workdir: str | Path, params: TrainParams | None = None,
               echo: Callable[[str], None] = print, features_dir: str | Path | None = None,
               reference: str | Path | None = None) -> dict[str, Any]:
    """WORKDIR/mlflow.db + mlartifacts/ (every registered model, trained and gated, with a
    reference community's champions as candidates when given) and WORKDIR/online.db."""
    from features.online import OnlineStore
    from features.pipeline import load_history

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    uri = default_tracking_uri(workdir)
    params = params or TrainParams()
    out: dict[str, Any] = {"tracking_uri": uri}
    out.update(retrain(history_dir, uri, params, echo=echo, features_dir=features_dir, reference=reference))
    echo("materialising the online store ...")
    store = OnlineStore(workdir / "online.db")
    history = load_history(history_dir)
    out["online_residents"] = store.materialise(history)  # with the demand counts the forecaster needs
    out["online_count_rows"] = len(store.counts())
    out["online_as_of"] = str(store.as_of.date()) if store.as_of is not None else None
    return out
