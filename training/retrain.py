"""`twincare retrain`: train every registered model, gate it and promote it when it earns it.

What a scheduler runs when the monitor says retrain. Each new version gets its model card; the
running service notices a moved @champion alias and swaps to it. A risk model that fails its gate
while nothing is champion yet (or only its baseline is) gets its baseline registered and served as
a model, so the service always has a champion and says which kind it serves.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.base import BASELINE_KIND, LOCAL_KIND
from models.registry import SPECS
from models.spec import RiskSpec
from training.config import TrainParams
from training.promote import promote
from training.tracking import CHAMPION, alias_version, model_version_tags
from training.train import train, train_baseline


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
        if not decision.promoted and isinstance(SPECS[summary.model], RiskSpec) \
                and _champion_kind(tracking_uri, summary.model) in (None, BASELINE_KIND):
            echo(f"{summary.model}: the trained model did not beat its baseline; serving the baseline ...")
            base = train_baseline(summary.model, history_dir, tracking_uri, params, features_dir=features_dir)
            fallback = promote(summary.model, tracking_uri, base.version, str(history_dir), params)
            echo(fallback.summary())
            out[summary.model]["baseline_version"] = {**base.headline(), "promoted": fallback.promoted,
                                                      "reasons": fallback.reasons}
        out[summary.model]["champion"] = {"version": alias_version(tracking_uri, summary.model, CHAMPION),
                                          "kind": _champion_kind(tracking_uri, summary.model)}
    return out


def _champion_kind(tracking_uri: str, name: str) -> str | None:
    version = alias_version(tracking_uri, name, CHAMPION)
    if version is None:
        return None
    return model_version_tags(tracking_uri, name, version).get("kind", LOCAL_KIND)
