"""`twincare retrain`: train every registered model, gate it and promote it when it earns it.

What a scheduler runs when the monitor says retrain. Each new version gets its model card; the
running service notices a moved @champion alias and swaps to it.

A risk model has up to three candidates: the local model trained here; with a reference (another
community's MLflow store or work directory), that community's champion, registered here as a
`kind=reference` version with its calibration kept; and the baseline served as a model. The
passing candidates (`training.candidates.choose`: the margin at the point, gains whose intervals
lie above zero) go through the gate best first, then the others, so each version gets its logged
decision and the best that earns it becomes @champion. When none does while nothing is champion
yet (or only the baseline is), the baseline is registered and served as a model, so the service
always has a champion and says which kind it serves.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.base import BASELINE_KIND, LOCAL_KIND, REFERENCE_KIND
from models.registry import SPECS
from models.spec import RiskSpec
from training.candidates import choose, run_intervals
from training.config import TrainParams
from training.promote import Decision, promote
from training.reference import ReferenceRefused, register_reference
from training.tracking import CHAMPION, alias_version, model_version_tags, run_of
from training.train import TrainSummary, train, train_baseline


def retrain(history_dir: str | Path, tracking_uri: str, params: TrainParams | None = None,
            models: list[str] | None = None, echo: Callable[[str], None] = print,
            features_dir: str | Path | None = None, reference: str | Path | None = None) -> dict[str, Any]:
    """Train, gate and promote every (or each named) registered model; model -> outcome.

    With `reference`, each risk model's champion there is a further candidate (refused by name,
    and left out, when its feature schema is not the code's)."""
    params = params or TrainParams()
    out: dict[str, Any] = {}
    for name in models or list(SPECS):
        echo(f"training {name} ...")
        summary = train(name, history_dir, tracking_uri, params, features_dir=features_dir)
        spec = SPECS[summary.model]
        if not isinstance(spec, RiskSpec):
            decision = promote(name, tracking_uri, summary.version, str(history_dir), params)
            echo(decision.summary())
            out[summary.model] = _outcome(summary, decision)
        else:
            out[summary.model] = _gate_candidates(summary, spec, history_dir, tracking_uri, params, echo,
                                                  features_dir, reference)
        out[summary.model]["champion"] = {"version": alias_version(tracking_uri, summary.model, CHAMPION),
                                          "kind": _champion_kind(tracking_uri, summary.model)}
    return out


def _gate_candidates(local: TrainSummary, spec: RiskSpec, history_dir: str | Path, tracking_uri: str,
                     params: TrainParams, echo: Callable[[str], None], features_dir: str | Path | None,
                     reference: str | Path | None) -> dict[str, Any]:
    name = local.model
    candidates = {LOCAL_KIND: local}
    refused = None
    if reference is not None:
        echo(f"{name}: registering the reference community's champion ...")
        try:
            candidates[REFERENCE_KIND] = register_reference(name, reference, history_dir, tracking_uri, params,
                                                            features_dir)
        except ReferenceRefused as exc:
            refused = str(exc)
            echo(f"{name}: reference refused: {refused}")
    choice = choose(params.promotion.rule_for(spec),
                    {k: run_intervals(run_of(tracking_uri, name, s.version)[1].data.metrics)
                     for k, s in candidates.items()})
    decisions: dict[str, Decision] = {}
    for kind in [*choice.passing, *(k for k in candidates if k not in choice.passing)]:
        decisions[kind] = promote(name, tracking_uri, candidates[kind].version, str(history_dir), params)
        echo(f"[{kind}] {decisions[kind].summary()}")
    result = _outcome(local, decisions[LOCAL_KIND])
    result["passing"] = choice.passing
    if REFERENCE_KIND in candidates:
        result["reference_version"] = _outcome(candidates[REFERENCE_KIND], decisions[REFERENCE_KIND])
    if refused:
        result["reference_refused"] = refused
    if not any(d.promoted for d in decisions.values()) \
            and _champion_kind(tracking_uri, name) in (None, BASELINE_KIND):
        echo(f"{name}: no trained model beat its baseline; serving the baseline ...")
        base = train_baseline(name, history_dir, tracking_uri, params, features_dir=features_dir)
        fallback = promote(name, tracking_uri, base.version, str(history_dir), params)
        echo(fallback.summary())
        result["baseline_version"] = _outcome(base, fallback)
    return result


def _outcome(summary: TrainSummary, decision: Decision) -> dict[str, Any]:
    return {**summary.headline(), "promoted": decision.promoted,
            "previous_champion": decision.previous_champion, "reasons": decision.reasons}


def _champion_kind(tracking_uri: str, name: str) -> str | None:
    version = alias_version(tracking_uri, name, CHAMPION)
    if version is None:
        return None
    return model_version_tags(tracking_uri, name, version).get("kind", LOCAL_KIND)
