"""Rolling-origin backtest of the demand forecaster against seasonal naive and the other simple
methods (zero, a flat 91-day mean, the median of 8 weekly totals), daily and on weekly totals.

The model is fitted once on counts up to the start of the test window; origins then roll through
the window (every `step` days), each forecasting 1..horizon days ahead from the counts known at
that origin. Metrics pool all (series, origin, horizon) rows whose actual count is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.demand import CountPanel, count_panel, demand_features
from models import demand


@dataclass(frozen=True)
class BacktestConfig:
    test_days: int = 56  # length of the window the origins roll through
    step: int = 7  # days between origins

    def __post_init__(self) -> None:
        if self.test_days < 1 or self.step < 1:
            raise ValueError("test_days and step must be positive")


def wape(y: np.ndarray, f: np.ndarray) -> float:
    """Weighted absolute percentage error: sum |y - f| / sum y."""
    denom = float(np.sum(np.abs(y)))
    return float(np.sum(np.abs(y - f)) / denom) if denom > 0 else float("nan")


def seasonal_scale(panel: CountPanel, cutoff) -> pd.Series:
    """Per-series mean absolute change against the same weekday a week earlier, up to `cutoff`."""
    last = panel.position(cutoff)
    v = panel.values[: last + 1]
    diff = np.abs(v[7:] - v[:-7]) if len(v) > 7 else np.full((0, v.shape[1]), np.nan)
    with np.errstate(invalid="ignore"):
        k = (~np.isnan(diff)).sum(axis=0)
        scale = np.where(k > 0, np.nansum(diff, axis=0) / np.maximum(k, 1), np.nan)
    return pd.Series(scale, index=panel.series)


def score(rows: pd.DataFrame, fc: pd.DataFrame, naive: np.ndarray, scale: pd.Series) -> dict[str, Any]:
    """WAPE, MASE and coverage of the model and of seasonal naive on the same rows."""
    y = rows["count"].to_numpy(float)
    f = fc["forecast"].to_numpy(float)
    s = scale.reindex(rows["series_id"]).to_numpy(float)
    ok = np.isfinite(s) & (s > 0)
    inside = (y >= fc["lower"].to_numpy()) & (y <= fc["upper"].to_numpy())
    out = {
        "rows": int(len(y)),
        "wape": wape(y, f),
        "wape_naive": wape(y, naive),
        "mase": float(np.mean(np.abs(y - f)[ok] / s[ok])) if ok.any() else float("nan"),
        "mase_naive": float(np.mean(np.abs(y - naive)[ok] / s[ok])) if ok.any() else float("nan"),
        "coverage": float(inside.mean()) if len(y) else float("nan"),
        "mean_interval_width": float(np.mean(fc["upper"] - fc["lower"])) if len(y) else float("nan"),
    }
    out["wape_improvement"] = (
        1 - out["wape"] / out["wape_naive"] if out["wape_naive"] and out["wape_naive"] > 0 else float("nan")
    )
    return out


def simple_forecasts(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """The simple methods a forecaster must beat, each known at the row's origin."""
    return {m: demand.simple_forecast(m, rows) for m in demand.SIMPLE_METHODS}


def against_simple(rows: pd.DataFrame, forecast: np.ndarray, simple: dict[str, np.ndarray]) -> dict[str, Any]:
    """WAPE of the forecaster and of each simple method, daily and on weekly totals (horizons
    1-7 summed per series and origin), and the gain over the best simple method."""
    y = rows["count"].to_numpy(float)
    out: dict[str, Any] = {}
    week = rows["demand_horizon"].to_numpy() <= 7
    keys = [rows["series_id"].to_numpy()[week], rows["origin"].to_numpy()[week]]
    for scale in ("daily", "weekly"):
        def total(v: np.ndarray) -> np.ndarray:
            return pd.Series(v[week]).groupby(keys).sum().to_numpy()

        agg = (lambda v: v) if scale == "daily" else total
        wapes = {m: wape(agg(y), agg(f)) for m, f in simple.items()}
        best = min(wapes, key=lambda m: wapes[m] if np.isfinite(wapes[m]) else np.inf)
        model = wape(agg(y), agg(forecast))
        out[scale] = {"wape_model": model, **{f"wape_{m}": v for m, v in wapes.items()},
                      "best_simple": best, "wape_best_simple": wapes[best],
                      "model_over_best_simple": model / wapes[best] if wapes[best] > 0 else float("nan"),
                      # a gain over seasonal naive means little when naive is worse than zero
                      "naive_worse_than_zero": bool(wapes["seasonal_naive"] > wapes["zero"])}
    return out


def rolling_origin(
    counts: pd.DataFrame | CountPanel,
    params: demand.DemandParams | None = None,
    config: BacktestConfig | None = None,
    loaded=None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Backtest; returns (metrics incl. per-horizon, rows with actual, forecast, bounds, naive).

    `loaded` is a model already fitted up to the window start; without it one is fitted here.
    """
    params = params or demand.DemandParams()
    config = config or BacktestConfig()
    panel = counts if isinstance(counts, CountPanel) else count_panel(counts)
    last = panel.dates[-1]
    cutoff = last - pd.Timedelta(days=config.test_days)
    if cutoff <= panel.dates[0]:
        raise demand.NotEnoughHistory(
            f"the series span {len(panel.dates)} days; a {config.test_days}-day backtest needs more"
        )
    if loaded is None:
        loaded, _ = demand.fit(panel, params, cutoff=cutoff)
    horizon = int(loaded.extra.get("max_horizon", params.horizon))
    origins = pd.date_range(cutoff, last - pd.Timedelta(days=1), freq=f"{config.step}D")
    rows = demand_features(panel, origins, range(1, horizon + 1))
    rows = rows[rows["count"].notna() & (rows["date"] <= last)].reset_index(drop=True)
    fc = demand.forecast_rows(loaded, rows, panel)
    naive = demand.seasonal_naive(rows)
    scale = seasonal_scale(panel, cutoff)
    metrics = score(rows, fc, naive, scale)
    metrics["origins"] = len(origins)
    metrics["cutoff"] = str(cutoff.date())
    metrics["nominal_coverage"] = float(loaded.extra["intervals"]["coverage"])
    per_h = {}
    for h, idx in rows.groupby("demand_horizon").groups.items():
        sub = score(rows.loc[idx], fc.loc[idx], naive[idx], scale)
        per_h[str(int(h))] = {k: sub[k] for k in ("wape", "wape_naive", "coverage")}
    metrics["per_horizon"] = per_h
    metrics["simple"] = against_simple(rows, fc["forecast"].to_numpy(float), simple_forecasts(rows))
    detail = fc.assign(origin=rows["origin"].to_numpy(), actual=rows["count"].to_numpy(), naive=naive)
    return metrics, detail
