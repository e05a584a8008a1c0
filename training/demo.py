"""Train and promote all three models into a work directory and fill the online store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from training.config import TrainParams
from training.promote import promote
from training.tracking import default_tracking_uri
from training.train import history_counts, train

DEMO_MODELS = ("fall_risk", "isolation", "demand")


def demo_train(history_dir: str | Path, workdir: str | Path, params: TrainParams | None = None,
               echo: Callable[[str], None] = print) -> dict[str, Any]:
    """WORKDIR/mlflow.db + mlartifacts/ (three trained, gated models) and WORKDIR/online.db."""
    from features.online import COUNT_DAYS, OnlineStore
    from features.pipeline import load_history

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    uri = default_tracking_uri(workdir)
    params = params or TrainParams()
    out: dict[str, Any] = {"tracking_uri": uri}
    for name in DEMO_MODELS:
        echo(f"training {name} ...")
        summary = train(name, history_dir, uri, params)
        decision = promote(name, uri, summary.version, str(history_dir), params)
        echo(decision.summary())
        out[name] = {**summary.headline(), "promoted": decision.promoted, "reasons": decision.reasons}
    echo("materialising the online store ...")
    store = OnlineStore(workdir / "online.db")
    history = load_history(history_dir)
    out["online_residents"] = store.materialise(history)
    counts = history_counts(history_dir)
    last = counts["date"].max()
    recent = counts[counts["date"] > last - pd.Timedelta(days=COUNT_DAYS)]
    out["online_count_rows"] = store.put_counts(recent, replace=True)
    out["online_as_of"] = str(store.as_of.date()) if store.as_of is not None else None
    return out
