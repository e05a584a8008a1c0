"""Forecast any daily count table: fit, backtest against seasonal naive, forecast with intervals."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from features.demand import count_panel, demand_features
from models import demand
from training.backtest import BacktestConfig, rolling_origin


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = df.copy()
    out["date"] = pd.to_datetime(out["date"]).dt.strftime("%Y-%m-%d")
    for c in ("forecast", "lower", "upper"):
        out[c] = out[c].astype(float).round(3)
    return out.to_dict(orient="records")


def forecast_table(counts: pd.DataFrame, horizon: int = 14, params: demand.DemandParams | None = None,
                   backtest: BacktestConfig | None = None, gaps: str = "missing",
                   basis: str = "logged") -> dict[str, Any]:
    """Forecasts for `horizon` days after the last date, and a backtest of the same method.

    `basis`: the counts as the record will show them, or as the requests will arise
    (`models.demand.forecast_rows`); the backtest scores the record.

    Short tables still work: the backtest window shrinks to a quarter of the span (at least 14
    days), and when too little is known to fit the global model the forecast is seasonal naive
    with Poisson intervals (`method` says which forecaster was fitted), or on the occurring
    basis a batch-logged series' logged rate. Each forecast's own `method` says what served that
    day (`models.demand.SERVED_BY`: the booster, a simple method, the logging cycle or the
    logged rate).
    """
    params = params or demand.DemandParams()
    backtest = backtest or BacktestConfig()
    panel = count_panel(counts, gaps=gaps)
    span = len(panel.dates)
    test_days = min(backtest.test_days, max(14, span // 4))
    cfg = replace(backtest, test_days=test_days)
    try:
        bt, _ = rolling_origin(panel, params, cfg)
    except demand.NotEnoughHistory as exc:
        bt = {"note": f"no backtest: {exc}"}
    try:
        loaded, facts = demand.fit(panel, params)
        fc = demand.forecast(loaded, panel, horizon, basis=basis)
        method = "lightgbm_global"
    except demand.NotEnoughHistory as exc:
        rows = demand_features(panel, [panel.dates[-1]], range(1, horizon + 1))
        fc = demand.naive_forecast(rows, params.coverage, panel, basis).sort_values(["series_id", "date"])
        method = "seasonal_naive"
        facts = {"note": str(exc)}
    return {
        "method": method,
        "basis": basis,
        "horizon": horizon,
        "coverage": params.coverage,
        "series": len(panel.series),
        "last_date": str(panel.dates[-1].date()),
        "fit": facts,
        "backtest": bt,
        "forecasts": _records(fc),
    }
