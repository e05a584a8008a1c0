"""Which candidate a community's champion should be: its local model, a reference community's
model, or the baseline served as a model.

A candidate passes the gate's rule when its AUROC gain over the baseline reaches the rule's margin
at the point and the gain's 95% interval (residents resampled) lies above zero, and, for a
Brier-gated model, the same holds for its Brier reduction. The best passing candidate by AUROC is
the one to serve; with none passing, the baseline served as a model. `twincare retrain` and
`benchmarks/bench_small_community.py` both choose with `choose`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models.base import BASELINE_KIND
from models.spec import PromotionRule
from training.promote import gain_is_sure

INTERVAL_KEYS = ("auroc", "auroc_lo", "auroc_hi", "brier", "auroc_gain", "auroc_gain_lo", "auroc_gain_hi",
                 "brier_gain", "brier_gain_lo", "brier_gain_hi")


def passes(rule: PromotionRule, m: Mapping[str, Any]) -> bool:
    """Does a candidate's scoring (`resident_bootstrap`'s entry, gains against the baseline) pass
    the rule: the margin at the point, and gains whose intervals lie above zero?"""
    gain = m.get("auroc_gain")
    auroc_ok = gain is not None and gain >= rule.auroc_over_baseline \
        and gain_is_sure("AUROC gain", rule.auroc_over_baseline, m.get("auroc_gain_lo"), m.get("auroc_gain_hi"))[0]
    brier_ok = rule.brier_under_baseline is None or (
        m.get("brier_gain") is not None and m["brier_gain"] >= rule.brier_under_baseline
        and gain_is_sure("Brier reduction", rule.brier_under_baseline,
                         m.get("brier_gain_lo"), m.get("brier_gain_hi"))[0])
    return bool(auroc_ok and brier_ok)


@dataclass(frozen=True)
class Choice:
    passing: list[str]  # candidates that pass the rule, best first
    best: str  # the candidate to serve, or BASELINE_KIND when none passes


def choose(rule: PromotionRule, candidates: Mapping[str, Mapping[str, Any]]) -> Choice:
    """The passing candidates (by AUROC, best first) and the one to serve."""
    passing = sorted((k for k, m in candidates.items() if passes(rule, m)),
                     key=lambda k: -float(candidates[k]["auroc"]))
    return Choice(passing, passing[0] if passing else BASELINE_KIND)


def run_intervals(metrics: Mapping[str, float]) -> dict[str, float | None]:
    """A registered version's scoring against the baseline, read back from its run's metrics
    (`test_ci_model_*`, logged by training); a missing figure reads None."""
    return {k: metrics.get(f"test_ci_model_{k}") for k in INTERVAL_KEYS}
