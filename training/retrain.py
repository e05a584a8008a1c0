"""`twincare retrain`: train every registered model, gate it and promote it when it earns it.

What a scheduler runs when the monitor says retrain. Each new version gets its model card; the
running service notices a moved @champion alias and swaps to it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.registry import SPECS
from training.config import TrainParams
from training.promote import promote
from training.train import train


def retrain(history_dir: str | Path, tracking_uri: str, params: TrainParams | None = None,
            models: list[str] | None = None, echo: Callable[[str], None] = print,
            features_dir: str | Path | None = None) -> dict[str, Any]:
    """Train, gate and promote every (or each named) registered model; model -> outcome."""
    params = params or TrainParams()
    out: dict[str, Any] = {}
    for name in models or list(SPECS):
        echo(f"training {name} ...")
        summary = train(name, history_dir, tracking_uri, params, features_dir=features_dir)
        decision = promote(name, tracking_uri, summary.version, str(history_dir), params)
        echo(decision.summary())
        out[summary.model] = {**summary.headline(), "promoted": decision.promoted,
                              "previous_champion": decision.previous_champion,
                              "reasons": decision.reasons}
    return out
