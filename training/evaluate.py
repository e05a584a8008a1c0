"""Metrics of a risk score: discrimination, calibration, capacity-limited recall, slices."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SLICE_COLUMNS = ("slice_age_band", "slice_sex", "slice_lives_alone")


def _finite(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """AUROC, AUPRC, Brier and log loss; None when a metric is undefined (one class only)."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    out: dict[str, float | None] = {"rows": float(len(y)), "prevalence": _finite(y.mean()) if len(y) else None}
    if len(np.unique(y)) < 2:
        out.update(auroc=None, auprc=None, brier=_finite(np.mean((p - y) ** 2)) if len(y) else None,
                   log_loss=None)
        return out
    out["auroc"] = float(roc_auc_score(y, p))
    out["auprc"] = float(average_precision_score(y, p))
    out["brier"] = float(brier_score_loss(y, p))
    out["log_loss"] = float(log_loss(y, p))
    return out


def auroc_only(y: np.ndarray, score: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=int)
    return float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else None


def recall_at_capacity(frame: pd.DataFrame, score: np.ndarray, share: float, seed: int = 0) -> float | None:
    """Share of events caught when, each week, the care team sees the top `share` of residents.

    Ties (a screen scores many residents the same) are broken at random, not by row order.
    """
    df = pd.DataFrame({"as_of_date": frame["as_of_date"].to_numpy(), "y": frame["label"].to_numpy(),
                       "s": np.asarray(score, dtype=float)})
    total = df["y"].sum()
    if total == 0:
        return None
    df = df.iloc[np.random.default_rng(seed).permutation(len(df))]
    df["rank"] = df.groupby("as_of_date")["s"].rank(ascending=False, method="first")
    df["k"] = df.groupby("as_of_date")["s"].transform("size") * share
    caught = df.loc[df["rank"] <= np.maximum(df["k"].round(), 1), "y"].sum()
    return float(caught / total)


def resident_draws(residents: np.ndarray, n_boot: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Row weights of `n_boot` resamples of residents: all rows of a drawn resident go in together
    (rows of one resident are not independent), a resident drawn twice counts twice."""
    codes, _ = pd.factorize(pd.Series(residents).astype(str))
    n_res = int(codes.max()) + 1 if len(codes) else 0
    rng = np.random.default_rng(seed)
    for _ in range(n_boot if n_res else 0):
        yield np.bincount(rng.integers(0, n_res, n_res), minlength=n_res)[codes].astype(float)


def resident_bootstrap(residents: np.ndarray, y: np.ndarray, scores: dict[str, np.ndarray],
                       reference: str | None = None, n_boot: int = 200, seed: int = 0,
                       level: float = 0.95) -> dict[str, dict[str, float | None]]:
    """AUROC and Brier of each score with a 95% interval from resampling residents (all rows of a
    drawn resident go in together, as rows of one resident are not independent).

    With `reference`, each other score also gets the paired interval of its AUROC gain over the
    reference (`auroc_gain`) and of its Brier reduction (`brier_gain`), on the same draws.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=int)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2

    def stats(w: np.ndarray | None) -> dict[str, tuple[float, float]]:
        out = {}
        for name, s in scores.items():
            s = np.asarray(s, dtype=float)
            auc = roc_auc_score(y, s, sample_weight=w) if len(np.unique(y if w is None else y[w > 0])) == 2 \
                else np.nan
            brier = float(np.average((s - y) ** 2, weights=w))
            out[name] = (float(auc), brier)
        return out

    point = stats(None)
    draws: dict[str, list[tuple[float, float]]] = {k: [] for k in scores}
    for w in resident_draws(residents, n_boot, seed):
        for k, v in stats(w).items():
            draws[k].append(v)

    def interval(values: np.ndarray) -> tuple[float | None, float | None]:
        values = values[np.isfinite(values)]
        if not len(values):
            return None, None
        return float(np.quantile(values, lo_q)), float(np.quantile(values, hi_q))

    result: dict[str, dict[str, float | None]] = {}
    for name in scores:
        d = np.asarray(draws[name], dtype=float).reshape(-1, 2)
        auc_lo, auc_hi = interval(d[:, 0])
        b_lo, b_hi = interval(d[:, 1])
        r = {"auroc": _finite(point[name][0]), "auroc_lo": auc_lo, "auroc_hi": auc_hi,
             "brier": point[name][1], "brier_lo": b_lo, "brier_hi": b_hi}
        if reference is not None and name != reference:
            ref = np.asarray(draws[reference], dtype=float).reshape(-1, 2)
            r["auroc_gain"] = _finite(point[name][0] - point[reference][0])
            r["auroc_gain_lo"], r["auroc_gain_hi"] = interval(d[:, 0] - ref[:, 0])
            r["brier_gain"] = point[reference][1] - point[name][1]
            r["brier_gain_lo"], r["brier_gain_hi"] = interval(ref[:, 1] - d[:, 1])
        result[name] = r
    return result


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed rate in quantile bins of the prediction."""
    df = pd.DataFrame({"y": np.asarray(y, float), "p": np.asarray(p, float)})
    q = min(bins, max(1, df["p"].nunique()))
    df["bin"] = pd.qcut(df["p"].rank(method="first"), q=q, labels=False)
    return df.groupby("bin").agg(predicted=("p", "mean"), observed=("y", "mean"), rows=("y", "size")).reset_index()


def calibration_error(rel: pd.DataFrame) -> float:
    """Expected calibration error: row-weighted mean |predicted - observed| over the bins."""
    w = rel["rows"] / rel["rows"].sum()
    return float((w * (rel["predicted"] - rel["observed"]).abs()).sum())


def plot_reliability(curves: dict[str, pd.DataFrame], path: Path, title: str) -> Path:
    """Reliability curves (model and baselines) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    hi = max(max(c["predicted"].max(), c["observed"].max()) for c in curves.values())
    ax.plot([0, hi], [0, hi], color="grey", linestyle="--", linewidth=1, label="perfect")
    for name, c in curves.items():
        ax.plot(c["predicted"], c["observed"], marker="o", label=name)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_importance(importance: pd.Series, path: Path, title: str, top: int = 20) -> Path:
    """Mean |SHAP| per feature as a horizontal bar chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = importance.sort_values(ascending=True).tail(top)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(s) + 1.2))
    ax.barh(s.index, s.to_numpy())
    ax.set_xlabel("mean |SHAP contribution| (log-odds)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def sliced(frame: pd.DataFrame, p: np.ndarray) -> dict[str, dict[str, Any]]:
    """The binary metrics per age band, sex and living alone."""
    out: dict[str, dict[str, Any]] = {}
    y = frame["label"].to_numpy()
    for col in SLICE_COLUMNS:
        if col not in frame.columns:
            continue
        for value in sorted(frame[col].astype(str).unique()):
            m = (frame[col].astype(str) == value).to_numpy()
            out[f"{col.removeprefix('slice_')}={value}"] = binary_metrics(y[m], p[m])
    return out
