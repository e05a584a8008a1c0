"""The statistics of monitoring, as pure functions on arrays.

- Population stability index (PSI) on the reference's quantile bins, with unknown values as a
  bin of their own (a sensor that stops reporting is drift too); 0.1 is a minor shift, 0.25 a
  major one (the usual credit-scoring reading).
- Two-sample Kolmogorov-Smirnov on the known values (statistic and p-value).
- Confidence-based performance estimation (CBPE, as NannyML's): with calibrated probabilities the
  expected confusion matrix at every threshold is known without labels, and so is the expected
  ROC curve; drawing labels from the probabilities gives the spread a realised AUROC would have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

EPS = 1e-4


def _bin_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    known = reference[np.isfinite(reference)]
    if known.size == 0:
        return np.array([])
    uniq = np.unique(known)
    if uniq.size <= bins:  # discrete: one bin per value seen in the reference
        return (uniq[:-1] + uniq[1:]) / 2
    return np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)[1:-1]))


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    known = np.isfinite(values)
    counts = np.bincount(np.searchsorted(edges, values[known], side="right"), minlength=edges.size + 1)
    out = np.append(counts, (~known).sum()).astype(float)
    return out / max(len(values), 1)


def psi(reference, current, bins: int = 10) -> float:
    """Population stability index of `current` against `reference` (unknown values as a bin)."""
    ref, cur = np.asarray(reference, float), np.asarray(current, float)
    if ref.size == 0 or cur.size == 0:
        return float("nan")
    edges = _bin_edges(ref, bins)
    p, q = np.maximum(_shares(ref, edges), EPS), np.maximum(_shares(cur, edges), EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def ks(reference, current) -> tuple[float, float]:
    """KS statistic and p-value on the known values; NaN when either side has none."""
    from scipy.stats import ks_2samp

    ref, cur = np.asarray(reference, float), np.asarray(current, float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if ref.size < 2 or cur.size < 2:
        return float("nan"), float("nan")
    r = ks_2samp(ref, cur, method="asymp")
    return float(r.statistic), float(r.pvalue)


def feature_drift(reference: pd.DataFrame, current: pd.DataFrame, names: list[str],
                  importance: dict[str, float], bins: int = 10, minor: float = 0.1,
                  major: float = 0.25, validated: pd.DataFrame | None = None,
                  current_as_deep: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per feature: PSI, KS, unknown shares, means, the model's importance, drift level.

    A feature over a long window (a year's mean, days since the last fall, a trend that needs
    three scores) depends on how long records have been kept until its window is full, so the
    training window of a young history and the latest weeks differ without any change in the
    community. With `current_as_deep` (the current rows computed from a history no deeper than
    the reference's) a feature is compared both ways and `psi` is the smaller: a shift counts
    when neither the full history nor one as deep as the reference's explains it (cutting the
    history can itself differ, e.g. a year's mean cut to the winter months). `psi_full_history`
    and `psi_as_deep` keep both; `depth_only` marks a major difference of the full history that
    the depth explains.

    With `validated` (the rows the model was tested on), `psi_vs_validated` says whether the
    current rows also differ from those, and `new_shift` marks a major shift against both: one
    the model was not tested under."""
    rows = []
    like = current if current_as_deep is None else current_as_deep
    for n in names:
        ref, cur = reference[n].to_numpy(float), current[n].to_numpy(float)
        full = psi(ref, cur, bins)
        deep = psi(ref, like[n].to_numpy(float), bins) if current_as_deep is not None else full
        value, compared = (deep, like[n].to_numpy(float)) if deep < full else (full, cur)
        d, p = ks(ref, compared)
        vs_test = psi(validated[n].to_numpy(float), cur, bins) if validated is not None and len(validated) else float("nan")
        rows.append({
            "feature": n,
            "psi": value,
            "psi_full_history": full,
            "psi_as_deep": deep,
            "depth_only": bool(full >= major and value < major),
            "psi_vs_validated": vs_test,
            "new_shift": bool(value >= major and not vs_test < major),
            "ks_statistic": d,
            "ks_pvalue": p,
            "unknown_reference": float(np.mean(~np.isfinite(ref))) if ref.size else float("nan"),
            "unknown_current": float(np.mean(~np.isfinite(cur))) if cur.size else float("nan"),
            "mean_reference": float(np.nanmean(ref)) if np.isfinite(ref).any() else float("nan"),
            "mean_current": float(np.nanmean(cur)) if np.isfinite(cur).any() else float("nan"),
            "importance": float(importance.get(n, 0.0)),
            "drift": "major" if value >= major else "minor" if value >= minor else "none",
        })
    return pd.DataFrame(rows).sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


def expected_auroc(p) -> float:
    """AUROC of the expected ROC curve when each row's label is Bernoulli(p) (CBPE)."""
    p = np.asarray(p, float)
    p = p[np.isfinite(p)]
    if p.size < 2:
        return float("nan")
    # one ROC point per distinct score (ties move together)
    order = np.argsort(-p, kind="stable")
    ps = p[order]
    last_of_group = np.append(ps[1:] != ps[:-1], True)
    tp = np.cumsum(ps)[last_of_group]
    fp = np.cumsum(1 - ps)[last_of_group]
    if tp[-1] <= 0 or fp[-1] <= 0:
        return float("nan")
    tpr = np.concatenate([[0.0], tp / tp[-1]])
    fpr = np.concatenate([[0.0], fp / fp[-1]])
    return float(np.trapezoid(tpr, fpr))


@dataclass(frozen=True)
class PerformanceEstimate:
    """Label-free estimate of a calibrated model's performance on some rows."""

    auroc: float  # expected AUROC (CBPE)
    auroc_low: float  # 5% and 95% of the AUROC realised labels drawn from p would give
    auroc_high: float
    brier: float  # expected Brier score, mean p(1 - p)
    prevalence: float  # expected event rate, mean p
    rows: int

    def to_dict(self) -> dict[str, float]:
        return {"auroc": self.auroc, "auroc_low": self.auroc_low, "auroc_high": self.auroc_high,
                "brier": self.brier, "prevalence": self.prevalence, "rows": self.rows}


def estimate_performance(p, draws: int = 200, seed: int = 0) -> PerformanceEstimate:
    """CBPE: expected AUROC, Brier and prevalence of calibrated probabilities, with the 90% range
    of the AUROC that labels drawn from the probabilities would realise."""
    from scipy.stats import rankdata

    p = np.asarray(p, float)
    p = p[np.isfinite(p)]
    n = p.size
    if n < 2:
        return PerformanceEstimate(float("nan"), float("nan"), float("nan"), float("nan"),
                                   float("nan"), n)
    ranks = rankdata(p)
    rng = np.random.default_rng(seed)
    sims = []
    for _ in range(draws):
        y = rng.random(n) < p
        n1 = int(y.sum())
        if 0 < n1 < n:
            sims.append((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * (n - n1)))
    low, high = (np.quantile(sims, [0.05, 0.95]) if sims else (float("nan"), float("nan")))
    return PerformanceEstimate(expected_auroc(p), float(low), float(high), float(np.mean(p * (1 - p))),
                               float(np.mean(p)), n)
