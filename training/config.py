"""Typed training configuration, loaded once from a TOML or JSON file at the edge.

A file holds optional tables `[booster]`, `[split]`, `[demand]`, `[backtest]`, `[promotion]`;
anything not given keeps its default. Unknown keys are an error.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from models.base import BoosterParams
from models.demand import DemandParams, demand_booster
from models.spec import PromotionRule, RiskSpec
from training.backtest import BacktestConfig


@dataclass(frozen=True)
class SplitConfig:
    """Time-based splits of weekly as-of dates.

    Test is the latest `test_weeks` as-of dates; validation the `val_weeks` before it; train
    everything earlier. Between splits, as-of dates whose label window would reach into the next
    split are dropped (a gap of at least the label horizon). When too few dates remain for a
    time-based validation split, validation holds out `val_resident_share` of residents instead
    (grouped by resident) within the training period.
    """

    warmup_days: int = 90
    test_weeks: int = 12
    val_weeks: int = 8
    min_train_weeks: int = 4
    val_resident_share: float = 0.2
    capacity_share: float = 0.05  # share of residents the care team can visit per week (top-k)
    seed: int = 7


@dataclass(frozen=True)
class PromotionMargins:
    """What a new version must show on the frozen test window to become champion.

    A risk model's margin over its baseline is its spec's `PromotionRule`; `models` overrides it
    per model (`[promotion.models.<name>]` in the params file, keys of `PromotionRule`).
    """

    wape_under_naive: float = 0.10  # forecasters, relative: WAPE <= (1 - margin) x naive WAPE
    coverage_tolerance: float = 0.10  # forecasters: |coverage - nominal| allowed
    auroc_over_champion: float = 0.0  # new AUROC must be > champion's + this
    wape_under_champion: float = 0.0  # new WAPE must be < champion's - this
    behaviour_tolerance: float = 0.10  # share of residents allowed to move the wrong way
    models: Mapping[str, PromotionRule] = field(default_factory=dict)

    def rule_for(self, spec: RiskSpec) -> PromotionRule:
        return self.models.get(spec.name, spec.promotion)


def _promotion(values: Mapping[str, Any] | None) -> PromotionMargins:
    from models.registry import risk_specs

    values = dict(values or {})
    per_model = dict(values.pop("models", None) or {})
    unknown = sorted(set(per_model) - set(risk_specs()))
    if unknown:
        raise ValueError(f"[promotion.models]: unknown model(s) {unknown}; risk models: {sorted(risk_specs())}")
    rules = {}
    for name, table in per_model.items():
        _build(PromotionRule, table, f"promotion.models.{name}")  # unknown keys are an error
        rules[name] = PromotionRule(**{**asdict(risk_specs()[name].promotion), **table})
    return _build(PromotionMargins, {**values, "models": rules}, "promotion")


@dataclass(frozen=True)
class TrainParams:
    booster: BoosterParams = field(default_factory=BoosterParams)
    split: SplitConfig = field(default_factory=SplitConfig)
    demand: DemandParams = field(default_factory=DemandParams)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    promotion: PromotionMargins = field(default_factory=PromotionMargins)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _build(cls, values: dict[str, Any] | None, where: str):
    values = dict(values or {})
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"[{where}]: unknown key(s) {unknown}; known: {sorted(known)}")
    return cls(**values)


def load_params(path: str | Path | None) -> TrainParams:
    """Parameters from a .toml or .json file (None: all defaults)."""
    if path is None:
        return TrainParams()
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"params file {p} does not exist")
    text = p.read_text()
    if p.suffix == ".toml":
        raw = tomllib.loads(text)
    elif p.suffix == ".json":
        raw = json.loads(text)
    else:
        raise ValueError(f"params file must be .toml or .json, got {p.name}")
    allowed = {"booster", "split", "demand", "backtest", "promotion"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"{p}: unknown table(s) {unknown}; allowed: {sorted(allowed)}")
    booster = BoosterParams.from_mapping(raw.get("booster"))
    demand_raw = dict(raw.get("demand") or {})
    demand = _build(DemandParams, {**demand_raw, "booster": demand_booster(**demand_raw.pop("booster", {}))},
                    "demand")
    return TrainParams(
        booster=booster,
        split=_build(SplitConfig, raw.get("split"), "split"),
        demand=demand,
        backtest=_build(BacktestConfig, raw.get("backtest"), "backtest"),
        promotion=_promotion(raw.get("promotion")),
    )
