"""Demand: daily requests per series (grid x category, or any count series), 1-14 days ahead.

One global LightGBM model over all series (Poisson objective, horizon as a feature: a direct
multi-horizon model) with prediction intervals from conformal residual quantiles per horizon,
fitted on a calibration window that follows the training window. Baseline: seasonal naive (the
same weekday in the latest known week). At each origin every series is then served by the model,
by a simple method (seasonal naive, 91-day mean, median of 8 weekly totals, and zero in a
series' own choice) or by the community's logging cycle, whichever had the least weekly-total
error on forecasts made without the weeks judged (those made on every day of the last 8 weeks
after the training data known at the origin, the calibration window standing in for the days not
yet known; pooled over series unless `choice_per_series`). Where the community logs in batches
(`features.demand.logs_in_batches`) no choice is made: the logging cycle serves every series,
since eight weeks of weekly errors on such counts follow where the logging days fell.

Counts logged in batches (a week entered on one day, sometimes a week late) defeat a daily model:
the logging cycle (`features.demand.logging_cycle`) forecasts them as what the community's own
gaps between logged days leave to be logged by each day, on the median path, at the rate of the
days logged; on counts logged every day it is the 91-day average. Where it serves, a day's
interval is the cycle's own (`features.demand.logging_cycle_bounds`: a batch lands on one day,
which the booster's residual widths do not model). The choice reads counts, never
a series' name, so a renamed series, or one the model never saw, is forecast the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.demand import (
    NAIVE_FALLBACKS,
    SEASONAL_NAIVE,
    CountPanel,
    count_panel,
    demand_features,
    logged_rate,
    logging_cycle_bounds,
    logs_in_batches,
)
from models.base import BoosterParams, LoadedModel, feature_matrix, fit_booster

NAME = "demand"
FEATURE_SET = "requests"
MAX_HORIZON = 14
MIN_TRAIN_ROWS = 200
# The forecaster's trees: 15 leaves, where the risk models grow stumps (`BoosterParams`). Stumps
# here read worse on batch-logged counts (bench_demand_logging on the default twin: median 0.95x
# the best simple method against 0.89x, 3 of 9 cells at or below 0.9 against 5).
DEMAND_BOOSTER = {"num_trees": 200, "num_leaves": 15, "learning_rate": 0.05, "min_data_in_leaf": 40,
                  "early_stopping_rounds": 30}


def demand_booster(**overrides: Any) -> BoosterParams:
    """The forecaster's booster settings, with `overrides` (unknown keys are an error)."""
    return BoosterParams.from_mapping({**DEMAND_BOOSTER, **overrides})


@dataclass(frozen=True)
class DemandParams:
    """How the forecaster is trained."""

    booster: BoosterParams = field(default_factory=demand_booster)
    objective: str = "poisson"  # or "tweedie"
    coverage: float = 0.8  # nominal coverage of the prediction interval
    horizon: int = MAX_HORIZON
    calibration_days: int = 56  # origins whose residuals set the interval widths
    origin_step: int = 1  # days between training origins
    warmup_days: int = 28  # first origin this many days after a panel starts
    max_train_rows: int = 400_000
    choose_method: bool = True  # per series: the model or a simple method, by weekly-total error
    choice_weeks: int = 8  # weeks of record (known at each origin) the choice is judged on
    # False: one method for all series, judged on their pooled errors; True: one per series. Per
    # series, 8 weeks of one series' noise pick a simple method where the model is better (on
    # the default twin daily WAPE 0.557 against 0.519 for the model alone)
    choice_per_series: bool = False

    def __post_init__(self) -> None:
        if self.objective not in ("poisson", "tweedie"):
            raise ValueError(f"objective must be poisson or tweedie, got {self.objective!r}")
        if not 0.5 <= self.coverage < 1:
            raise ValueError(f"coverage must be in [0.5, 1), got {self.coverage}")
        if not 1 <= self.horizon <= MAX_HORIZON:
            raise ValueError(f"horizon must be 1..{MAX_HORIZON}, got {self.horizon}")


class NotEnoughHistory(ValueError):
    """Too few known counts to fit the global model."""


def make_estimator(params: DemandParams) -> dict[str, Any]:
    """LightGBM parameters of the forecaster."""
    extra = {"tweedie_variance_power": 1.3} if params.objective == "tweedie" else {}
    return params.booster.lightgbm(params.objective, **extra)


def _names() -> list[str]:
    from features.registry import feature_names

    return feature_names(FEATURE_SET)


def seasonal_naive(rows: pd.DataFrame) -> np.ndarray:
    """Same weekday in the latest known week; falls back to longer averages when unknown."""
    out = rows[SEASONAL_NAIVE].to_numpy(dtype=float).copy()
    for col in NAIVE_FALLBACKS:
        gap = np.isnan(out)
        if not gap.any():
            break
        out[gap] = rows.loc[gap, col].to_numpy(dtype=float)
    return np.nan_to_num(out, nan=0.0)


# The simple methods a forecaster must beat (and may serve, where they do better)
SIMPLE_METHODS = ("zero", "seasonal_naive", "mean_91d", "median_8w")
# Candidates besides the model and the simple methods: the community's logging cycle (counts
# logged in batches: what its own gaps between logged days leave to be logged by each day)
CYCLE_METHODS = ("logging_cycle",)
CANDIDATES = (*SIMPLE_METHODS, *CYCLE_METHODS)  # in order of simplicity: a tie goes to the first
METHODS = ("model", *CANDIDATES)
# what a forecast row's `method` may say: a method above, or the series' logged rate (requests as
# they arise, where the community logs in batches)
SERVED_BY = (*METHODS, "logged_rate")
_COLUMNS = {"mean_91d": "demand_mean_91d", "median_8w": "demand_weekly_median_8w",
            "logging_cycle": "demand_logging_cycle_91d"}


def simple_forecast(method: str, rows: pd.DataFrame) -> np.ndarray:
    """The daily forecast of a method other than the model (one of `CANDIDATES`), known at each
    row's origin."""
    if method == "zero":
        return np.zeros(len(rows))
    if method == "seasonal_naive":
        return seasonal_naive(rows)
    return np.nan_to_num(rows[_COLUMNS[method]].to_numpy(dtype=float), nan=0.0)


def weekly_errors(rows: pd.DataFrame, forecasts: dict[str, np.ndarray]) -> pd.DataFrame:
    """Absolute error of each method's weekly total (horizons 1-7) per series and origin, with
    the actual total in `actual`; rows of unknown counts are left out."""
    week = (rows["demand_horizon"].to_numpy() <= 7) & rows["count"].notna().to_numpy()
    keys = [rows["series_id"].to_numpy()[week], rows["origin"].to_numpy()[week]]
    y = pd.Series(rows["count"].to_numpy(float)[week]).groupby(keys).sum()
    out = pd.DataFrame({m: (pd.Series(f[week]).groupby(keys).sum() - y).abs() for m, f in forecasts.items()})
    out["actual"] = y
    out.index.names = ["series_id", "origin"]
    return out


def choose_methods(loaded: LoadedModel, panel: CountPanel, origins, weeks: int,
                   per_series: bool = False) -> pd.Series:
    """The method with the least error of weekly totals per origin (index `series_id, origin`;
    series `*` is the pooled choice for every series, never zero), ties going to the simpler method.

    Judged only on forecasts made without the weeks judged: the weekly forecasts made on every
    day of the last `weeks` weeks whose week is over at the origin and lies after the model's
    training data, each from the counts known at its own start; the days of that span not yet
    known count at the calibration window's average (by the booster that did not train on it,
    pooled over series), so the calibration window fades as the record grows. Every day, not one
    a week: counts logged in weekly batches make one week's error depend on where the logging day
    fell, so a choice read off eight weeks alone follows that luck. Per series the record alone
    decides, and a series with none of it gets the pooled choice. At origins at which the
    community reads as logging in batches the logging cycle serves every series, whatever the
    record says.
    """
    order = [*CANDIDATES, "model"]  # on a tie the simpler method wins
    origins = pd.DatetimeIndex(pd.to_datetime(pd.Index(origins).unique())).normalize()
    # where the community logs in batches, its logging cycle serves every series: eight weeks of
    # weekly errors on such counts follow the luck of where the logging days fell, and a choice
    # read off them served worse than the cycle alone (docs/results/models.md)
    batched = logs_in_batches(panel, origins)
    pooled_index = pd.MultiIndex.from_arrays([np.full(len(origins), "*", dtype=object), origins],
                                             names=["series_id", "origin"])
    if batched.all():
        return pd.Series("logging_cycle", index=pooled_index, dtype=object)
    span = 7 * weeks - 6  # the days p with origin - 7 * weeks <= p <= origin - 7
    trained_through = pd.Timestamp(loaded.extra.get("trained_through", panel.dates[0]))
    lo = max(panel.dates[0], trained_through)
    past = pd.date_range(max(origins.min() - pd.Timedelta(days=7 * weeks), lo), origins.max() - pd.Timedelta(days=7))
    record = pd.DataFrame(columns=["series_id", "origin", "day", *order])
    if len(past):
        rows = demand_features(panel, past, range(1, 8))
        rows = rows[rows["count"].notna()].reset_index(drop=True)
        if not rows.empty:
            errors = weekly_errors(rows, {"model": predict_mean(loaded, rows),
                                          **{m: simple_forecast(m, rows) for m in CANDIDATES}})
            errors = errors[order].reset_index()
            # the week judged from past day p counts for the origins p + 7, ..., p + 7 * weeks
            record = pd.concat([errors.assign(day=errors["origin"],
                                              origin=errors["origin"] + pd.Timedelta(days=7 + k))
                                for k in range(span)], ignore_index=True)
            record = record[record["origin"].isin(origins)]
    record[order] = record[order].astype(float)
    prior = loaded.extra.get("choice_prior") or {}
    # the calibration window's average day stands in for the days of the span not yet known
    unknown = span - record.groupby("origin")["day"].nunique().reindex(origins, fill_value=0) if len(record) \
        else pd.Series(span, index=origins)
    pooled = (record.groupby("origin")[order].sum().reindex(origins, fill_value=0.0)
              + np.outer(unknown.to_numpy(float), [float(prior.get(m, 0.0)) for m in order]))
    pooled.index = pooled_index
    # one method for every series: zero for the whole community is what weeks nobody logged look
    # like, and choosing it after a run of them forecasts nothing just before the backlog is
    # entered (where a community truly logs nothing, the 91-day mean is zero too); zero stays a
    # candidate of each series' own choice
    choice = pooled[[m for m in order if m != "zero"]].idxmin(axis=1)
    choice[batched] = "logging_cycle"
    if per_series and not record.empty:
        own = record.assign(series_id=record["series_id"].astype(str)).groupby(["series_id", "origin"])[order].sum()
        own = own[~pd.Series(batched, index=origins).reindex(own.index.get_level_values(1)).to_numpy()]
        choice = pd.concat([choice, own.idxmin(axis=1)])
    return choice


def chosen_methods(loaded: LoadedModel, panel: CountPanel, rows: pd.DataFrame) -> np.ndarray:
    """The method serving each feature row (all `model` when the choice is off)."""
    weeks = int(loaded.extra.get("choice_weeks", 0) or 0)
    if not weeks:
        return np.full(len(rows), "model", dtype=object)
    per_series = bool(loaded.extra.get("choice_per_series", False))
    choice = choose_methods(loaded, panel, rows["origin"], weeks, per_series)
    choice.index = pd.MultiIndex.from_arrays([choice.index.get_level_values(0).astype(str),
                                              pd.to_datetime(choice.index.get_level_values(1))])
    origin = pd.to_datetime(rows["origin"]).to_numpy()
    pooled = choice.reindex(pd.MultiIndex.from_arrays([np.full(len(rows), "*", dtype=object), origin]))
    out = pooled.fillna("model").to_numpy(dtype=object)
    if per_series:
        own = choice.reindex(pd.MultiIndex.from_arrays([rows["series_id"].astype(str).to_numpy(), origin]))
        out = np.where(own.notna().to_numpy(), own.to_numpy(dtype=object), out)
    return out


def _scale(mean: np.ndarray) -> np.ndarray:
    """Residual scale: counts are roughly Poisson, so spread grows like the square root."""
    return np.sqrt(np.maximum(mean, 0.25))


def interval_quantiles(rows: pd.DataFrame, mean: np.ndarray, coverage: float) -> dict[str, Any]:
    """Per-horizon quantiles of scaled residuals (y - mean) / sqrt(mean) on calibration rows."""
    y = rows["count"].to_numpy(dtype=float)
    r = (y - mean) / _scale(mean)
    lo_q, hi_q = (1 - coverage) / 2, 1 - (1 - coverage) / 2
    h = rows["demand_horizon"].to_numpy(dtype=int)
    per = {}
    for hh in sorted(np.unique(h)):
        rr = r[h == hh]
        per[str(int(hh))] = [float(np.quantile(rr, lo_q)), float(np.quantile(rr, hi_q))]
    pooled = [float(np.quantile(r, lo_q)), float(np.quantile(r, hi_q))] if len(r) else [-1.3, 1.3]
    return {"method": "conformal_scaled_residuals", "coverage": coverage, "per_horizon": per,
            "pooled": pooled, "calibration_rows": int(len(r))}


def apply_intervals(intervals: dict[str, Any], horizon: np.ndarray, mean: np.ndarray):
    """Lower and upper bounds for predicted means at the given horizons."""
    per = intervals.get("per_horizon", {})
    pooled = intervals.get("pooled", [-1.3, 1.3])
    q = np.array([per.get(str(int(h)), pooled) for h in horizon], dtype=float).reshape(-1, 2)
    s = _scale(mean)
    lower = np.maximum(mean + q[:, 0] * s, 0.0)
    upper = np.maximum(mean + q[:, 1] * s, lower)
    return lower, upper


def predict_mean(loaded: LoadedModel, rows: pd.DataFrame, num_threads: int = 1) -> np.ndarray:
    """Expected count for each feature row."""
    return loaded.booster.predict(feature_matrix(loaded, rows), num_threads=num_threads)


def training_origins(panel: CountPanel, cutoff, params: DemandParams):
    """Origins for fitting and for calibration; all their targets fall on or before `cutoff`."""
    cutoff = pd.Timestamp(cutoff)
    first = panel.dates[0] + pd.Timedelta(days=params.warmup_days)
    cal_last = cutoff - pd.Timedelta(days=params.horizon)
    cal_first = cal_last - pd.Timedelta(days=params.calibration_days - 1)
    fit_last = cal_first - pd.Timedelta(days=params.horizon)
    fit = pd.date_range(first, fit_last, freq=f"{params.origin_step}D") if fit_last >= first else []
    cal = pd.date_range(max(cal_first, first), cal_last, freq="D") if cal_last >= first else []
    return pd.DatetimeIndex(fit), pd.DatetimeIndex(cal)


def _known(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["count"].notna()]


def fit(
    counts: pd.DataFrame | CountPanel,
    params: DemandParams | None = None,
    cutoff=None,
    schema_hash: str = "",
    version: str = "unregistered",
    trainer: Callable[..., Any] = fit_booster,
) -> tuple[LoadedModel, dict[str, Any]]:
    """Fit the forecaster on counts up to `cutoff` (default: the last day) and its intervals.

    `trainer` has the signature of `models.base.fit_booster` (e.g. a lightgbm.dask version).
    Returns the model and a dict of fit facts (rows, trees, series).
    """
    params = params or DemandParams()
    panel = counts if isinstance(counts, CountPanel) else count_panel(counts)
    cutoff = pd.Timestamp(cutoff) if cutoff is not None else panel.dates[-1]
    names = _names()
    fit_o, cal_o = training_origins(panel, cutoff, params)
    horizons = range(1, params.horizon + 1)
    if len(cal_o) == 0:
        raise NotEnoughHistory(
            f"need at least {params.warmup_days + params.horizon} days of counts before {cutoff.date()}"
        )
    cal_rows = _known(demand_features(panel, cal_o, horizons))
    fit_rows = _known(demand_features(panel, fit_o, horizons)) if len(fit_o) else cal_rows.iloc[:0]
    if len(fit_rows) > params.max_train_rows:
        fit_rows = fit_rows.sample(params.max_train_rows, random_state=params.booster.seed)
    if len(fit_rows) + len(cal_rows) < MIN_TRAIN_ROWS:
        raise NotEnoughHistory(
            f"only {len(fit_rows) + len(cal_rows)} known (series, day, horizon) rows; "
            f"need {MIN_TRAIN_ROWS} to fit the global model"
        )
    if fit_rows["count"].sum() + cal_rows["count"].sum() <= 0:
        raise NotEnoughHistory(f"every known count up to {cutoff.date()} is zero; nothing to fit the global model on")
    lgb_extra = {"tweedie_variance_power": 1.3} if params.objective == "tweedie" else {}
    if len(fit_rows) >= MIN_TRAIN_ROWS and fit_rows["count"].sum() > 0:
        first = trainer(
            params.booster, params.objective,
            fit_rows[names].to_numpy(float), fit_rows["count"].to_numpy(float),
            cal_rows[names].to_numpy(float), cal_rows["count"].to_numpy(float),
            feature_names=names, **lgb_extra,
        )
        trees = first.num_trees()
        probe = LoadedModel(NAME, version, first, names, schema_hash, {})
        intervals = interval_quantiles(cal_rows, predict_mean(probe, cal_rows, 2), params.coverage)
    else:
        # short history: no separate calibration window, fit once and read residuals in-sample
        first, trees, intervals = None, min(params.booster.num_trees, 100), None
    all_rows = pd.concat([fit_rows, cal_rows], ignore_index=True)
    refit_params = BoosterParams(**{**params.booster.to_dict(), "num_trees": max(trees, 1)})
    booster = trainer(
        refit_params, params.objective,
        all_rows[names].to_numpy(float), all_rows["count"].to_numpy(float),
        feature_names=names, **lgb_extra,
    )
    loaded = LoadedModel(NAME, version, booster, names, schema_hash, {"method": "none"})
    if intervals is None:
        intervals = interval_quantiles(cal_rows, predict_mean(loaded, cal_rows, 2), params.coverage)
    loaded.extra = {"intervals": intervals, "max_horizon": params.horizon,
                    "objective": params.objective}
    if params.choose_method:
        # the calibration window's weekly-total errors per origin, pooled over series, by the
        # booster that did not train on it (when there is one): the choice's out-of-sample prior
        judge = LoadedModel(NAME, version, first, names, schema_hash, {}) if first is not None else loaded
        errors = weekly_errors(cal_rows, {"model": predict_mean(judge, cal_rows, 2),
                                          **{m: simple_forecast(m, cal_rows) for m in CANDIDATES}})
        per_origin = errors.drop(columns="actual").groupby(level="origin").sum().mean()
        loaded.extra.update({"choice_weeks": int(params.choice_weeks),
                             "choice_per_series": bool(params.choice_per_series),
                             "choice_prior": {m: float(v) for m, v in per_origin.items()},
                             "trained_through": str(cutoff.date())})
    facts = {"fit_rows": int(len(fit_rows)), "calibration_rows": int(len(cal_rows)),
             "trees": int(booster.num_trees()), "series": len(panel.series)}
    return loaded, facts


BASES = ("logged", "occurring")


def forecast_rows(loaded: LoadedModel, rows: pd.DataFrame, panel: CountPanel,
                  basis: str = "logged") -> pd.DataFrame:
    """Forecast, lower and upper bound for feature rows prepared from `panel` (whose record
    at each row's origin picks the method serving that series), and `method`: which served it
    (one of `SERVED_BY`).

    `basis="logged"`: the counts the record will show, on the days it will show them (what the
    backtest scores). `basis="occurring"`: the requests that will arise each day, for planning
    who helps when: where the community logs in batches (`features.demand.logs_in_batches`), a
    batch entered on one day holds requests that arose on every day it covers, so each day gets
    the series' logged rate (with Poisson bounds), whichever method forecasts the record; where
    it logs as things happen, the two bases are the same.
    """
    if basis not in BASES:
        raise ValueError(f"basis must be one of {BASES}, got {basis!r}")
    chosen = chosen_methods(loaded, panel, rows)
    mean = np.zeros(len(rows))
    for m in METHODS:  # each row from the method serving it: no booster where the cycle serves all
        use = chosen == m
        if use.any():
            mean[use] = predict_mean(loaded, rows.loc[use]) if m == "model" else simple_forecast(m, rows.loc[use])
    coverage = float(loaded.extra["intervals"]["coverage"])
    lower, upper = apply_intervals(loaded.extra["intervals"], rows["demand_horizon"].to_numpy(), mean)
    batched = _as_arising(panel, rows, basis, mean, lower, upper, coverage)
    cycle = (chosen == "logging_cycle") & ~batched
    if cycle.any():  # a batch lands on one day: bounds from the cycle, not the booster's residuals
        lower[cycle], upper[cycle] = logging_cycle_bounds(panel, rows.loc[cycle], coverage)
    return pd.DataFrame({
        "series_id": rows["series_id"].to_numpy(),
        "date": rows["date"].to_numpy(),
        "horizon": rows["demand_horizon"].to_numpy(dtype=int),
        "forecast": mean,
        "lower": lower,
        "upper": upper,
        "method": np.where(batched, "logged_rate", np.asarray(chosen, dtype=object)),
    })


def _as_arising(panel: CountPanel, rows: pd.DataFrame, basis: str, mean: np.ndarray, lower: np.ndarray,
                upper: np.ndarray, coverage: float) -> np.ndarray:
    """With `basis="occurring"`, the rows of series logged in batches get the series' logged rate
    and its Poisson bounds (in place). Returns which rows those are."""
    batched = np.zeros(len(rows), dtype=bool)
    if basis == "occurring" and len(rows):
        origins = pd.to_datetime(rows["origin"])
        uniq = origins.unique()
        batched = pd.Series(logs_in_batches(panel, uniq), index=uniq).reindex(origins).to_numpy()
        if batched.any():
            mean[batched] = logged_rate(panel, rows.loc[batched])
            lower[batched], upper[batched] = poisson_bounds(mean[batched], coverage)
    return batched


def forecast(loaded: LoadedModel, counts: pd.DataFrame | CountPanel, horizon: int = MAX_HORIZON,
             gaps: str = "missing", basis: str = "logged") -> pd.DataFrame:
    """Forecasts with intervals for the `horizon` days after the last day in `counts`, as the
    record will show them (`basis="logged"`) or as the requests will arise (`"occurring"`; see
    `forecast_rows`).

    Returns DataFrame(series_id, date, horizon, forecast, lower, upper).
    """
    max_h = int(loaded.extra.get("max_horizon", MAX_HORIZON))
    if not 1 <= int(horizon) <= max_h:
        raise ValueError(f"horizon must be 1..{max_h} days, got {horizon}")
    panel = counts if isinstance(counts, CountPanel) else count_panel(counts, gaps=gaps)
    rows = demand_features(panel, [panel.dates[-1]], range(1, int(horizon) + 1))
    return forecast_rows(loaded, rows, panel, basis).sort_values(["series_id", "date"]).reset_index(drop=True)


def poisson_bounds(mean: np.ndarray, coverage: float) -> tuple[np.ndarray, np.ndarray]:
    """The central `coverage` interval of Poisson counts with these means (0 where the mean is)."""
    from scipy.stats import poisson

    lam = np.maximum(mean, 1e-9)
    lower = np.where(mean > 0, poisson.ppf((1 - coverage) / 2, lam), 0.0)
    upper = np.where(mean > 0, poisson.ppf(1 - (1 - coverage) / 2, lam), 0.0)
    return lower, upper


def naive_forecast(rows: pd.DataFrame, coverage: float = 0.8, panel: CountPanel | None = None,
                   basis: str = "logged") -> pd.DataFrame:
    """Seasonal naive with Poisson intervals: the fallback when history is too short to fit.
    With `panel` and `basis="occurring"`, a series logged in batches gets its logged rate each
    day instead, as `forecast_rows` gives it."""
    if basis not in BASES:
        raise ValueError(f"basis must be one of {BASES}, got {basis!r}")
    mean = seasonal_naive(rows)
    lower, upper = poisson_bounds(mean, coverage)
    batched = np.zeros(len(rows), dtype=bool)
    if panel is not None:
        batched = _as_arising(panel, rows, basis, mean, lower, upper, coverage)
    return pd.DataFrame({
        "series_id": rows["series_id"].to_numpy(),
        "date": rows["date"].to_numpy(),
        "horizon": rows["demand_horizon"].to_numpy(dtype=int),
        "forecast": mean,
        "lower": lower.astype(float),
        "upper": upper.astype(float),
        "method": np.where(batched, "logged_rate", "seasonal_naive").astype(object),
    })


def _spec():
    import sys

    from models.spec import ForecastSpec

    return ForecastSpec(
        name=NAME,
        title="Service demand",
        description="Daily service requests per series (grid x category), 1-14 days ahead, with intervals.",
        feature_set=FEATURE_SET,
        max_horizon=MAX_HORIZON,
        module=sys.modules[__name__],
    )


SPEC = _spec()
