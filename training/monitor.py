"""`twincare monitor`: is each champion still fit for the community it scores?

For every registered model with a @champion, on the history as known at an as-of date:
- risk models: feature drift per feature and overall (PSI, KS) of the latest weeks against the
  model's training window, like with like (the latest weeks' features are built from a history
  cut to the depth the training window had, so a long window that has filled since is not
  taken for drift), prediction drift, performance estimated without labels (CBPE) on the
  latest weeks and on the frozen test window (where it is checked against the realised figure),
  and the realised performance of the weeks whose labels have matured since the test window;
- forecasters: the error of the forecasts whose actual counts have arrived (WAPE, bias, interval
  coverage) against the model's own backtest and seasonal naive, and series it has never seen.
Each model gets a verdict, ok / watch / retrain, with the reasons that decided it.
"""

from __future__ import annotations

import ast
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.demand import count_panel, daily_counts, demand_features
from features.pipeline import History, build_features, load_history, weekly_as_of
from models.base import LoadedModel
from models.registry import SPECS, ChampionError, load_champion
from models.spec import ForecastSpec, RiskSpec
from training import evaluate as ev
from training.backtest import score as forecast_score
from training.backtest import seasonal_scale
from training.data import attach_labels
from training.drift import estimate_performance, feature_drift, psi
from training.promote import frozen_test_dates
from training.tracking import read_manifest, run_of
from twin.store import HistoryStore

VERDICTS = ("ok", "watch", "retrain")


@dataclass(frozen=True)
class MonitorConfig:
    """Windows and thresholds of the monitor."""

    current_days: int = 14  # the latest weeks: weekly as-of dates in the last `current_days`
    realised_weeks: int = 8  # matured weeks (labels known) used for the realised figure
    bins: int = 10
    psi_minor: float = 0.1
    psi_major: float = 0.25
    # share of the model's importance (gain) carried by features with a major shift it was not
    # tested under; any such feature is worth a watch
    drift_importance_retrain: float = 0.25
    prediction_psi_watch: float = 0.1
    prediction_psi_retrain: float = 0.25
    auroc_drop_watch: float = 0.03
    auroc_drop_retrain: float = 0.06
    min_events: int = 30  # fewer matured events than this: no realised verdict
    wape_ratio_watch: float = 1.25  # forecasters: WAPE against the backtest's
    wape_ratio_retrain: float = 1.6
    bias_watch: float = 0.2  # |forecast total / actual total - 1|
    bias_retrain: float = 0.4
    new_series_share_watch: float = 0.0
    new_series_share_retrain: float = 0.05  # share of current requests in never-seen series
    cbpe_draws: int = 200
    seed: int = 0


@dataclass
class Verdict:
    verdict: str = "ok"
    reasons: list[str] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)  # the tests that raised the verdict

    def raise_to(self, level: str, test: str, reason: str) -> None:
        if VERDICTS.index(level) > VERDICTS.index(self.verdict):
            self.verdict = level
        self.fired.append(f"{test}:{level}")
        self.reasons.append(f"[{level}] {reason}")

    def tiered(self, test: str, value: float, watch: float, retrain: float, reason: str) -> None:
        """Retrain from `retrain` up, watch from `watch` up; an unknown value decides nothing."""
        if np.isfinite(value) and value >= retrain:
            self.raise_to("retrain", test, reason)
        elif np.isfinite(value) and value >= watch:
            self.raise_to("watch", test, reason)


def _dates(value: str | None) -> list[pd.Timestamp]:
    """Dates out of a logged span: "['2024-04-01', '2025-06-30']" or "2024-04-01,2025-06-30"."""
    if not value:
        return []
    try:
        items = ast.literal_eval(value)
        items = items if isinstance(items, list | tuple) else [items]
    except (ValueError, SyntaxError):
        items = [x for x in value.split(",") if x.strip()]
    return [pd.Timestamp(str(x).strip()) for x in items]


def default_as_of(history_dir: str | Path) -> pd.Timestamp:
    """The day after the last recorded sensor day: everything recorded is known."""
    sd = HistoryStore(history_dir).read("sensor_days", ["date"])
    return pd.Timestamp(sd["date"].max()).normalize() + pd.Timedelta(days=1)


def current_dates(as_of: pd.Timestamp, days: int) -> pd.DatetimeIndex:
    """Weekly as-of dates ending at `as_of` and covering the last `days` days."""
    n = max(1, days // 7)
    return pd.DatetimeIndex([as_of - pd.Timedelta(days=7 * k) for k in range(n - 1, -1, -1)])


def _importance(loaded: LoadedModel) -> dict[str, float]:
    gain = np.asarray(loaded.booster.feature_importance(importance_type="gain"), float)
    total = gain.sum()
    share = gain / total if total > 0 else np.zeros_like(gain)
    return dict(zip(loaded.feature_names, share.tolist(), strict=True))


# ---------------------------------------------------------------------------------------------
# risk models
# ---------------------------------------------------------------------------------------------


@dataclass
class RiskWindows:
    reference: pd.DatetimeIndex
    current: pd.DatetimeIndex
    test: pd.DatetimeIndex
    matured: pd.DatetimeIndex


def risk_windows(spec: RiskSpec, run, history: History, as_of: pd.Timestamp,
                 cfg: MonitorConfig) -> RiskWindows:
    """Reference = the training window's weekly dates; current = the latest weeks; matured = the
    weeks after the test window whose whole label window is known by `as_of`."""
    mondays = weekly_as_of(history, warmup_days=0)
    span = _dates(run.data.params.get("split.train_as_of"))
    reference = mondays[(mondays >= span[0]) & (mondays <= span[-1])] if span else mondays[:0]
    test = frozen_test_dates(run.data.tags["test_window"]) if run.data.tags.get("test_window") else mondays[:0]
    after = test[-1] if len(test) else (span[-1] if span else mondays[0])
    matured = mondays[(mondays > after) & (mondays + pd.Timedelta(days=spec.horizon_days) <= as_of)]
    return RiskWindows(reference, current_dates(as_of, cfg.current_days), test,
                       matured[-cfg.realised_weeks:])


# when each table's row was recorded: a history is cut to a depth on these
RECORDED_ON = {"sensor_days": "date", "assessments": "date", "events": "date", "visits": "date",
               "service_requests": "timestamp", "tasks": "completed_at"}


def history_as_deep(history: History, as_of: pd.Timestamp, depths: pd.DatetimeIndex) -> History:
    """The history as it would read at `as_of` had records begun only as long before it as they
    had at the reference dates: resident i keeps the last `depths[i % len(depths)]` days.

    Residents are spread evenly over the reference dates' depths, so the current rows built
    from this history mix depths as the reference rows do."""
    first = history.sensor_days["date"].min().normalize()
    days = np.sort(np.asarray([(d - first).days for d in depths], dtype=np.int64))
    ids = np.sort(history.residents["resident_id"].unique())
    start = pd.Series(as_of - pd.to_timedelta(days[np.arange(len(ids)) % len(days)], unit="D"), index=ids)
    tables = {}
    for name, df in history.tables().items():
        column = RECORDED_ON.get(name)
        if df is None or column is None or df.empty:
            tables[name] = df
            continue
        since = start.reindex(df["resident_id"]).to_numpy()
        when = pd.to_datetime(df[column]).to_numpy()
        keep = ~(when < since)  # undated rows (a task not completed) and unknown residents stay
        tables[name] = df[keep].reset_index(drop=True)
    return History(**tables)


def current_as_deep(history: History, windows: RiskWindows) -> pd.DataFrame:
    """The current weeks' feature rows built from histories as deep as the reference's."""
    if not len(windows.reference):
        return pd.DataFrame()
    parts = [build_features(history_as_deep(history, d, windows.reference), pd.DatetimeIndex([d]))
             for d in windows.current]
    return pd.concat(parts, ignore_index=True)


def monitor_risk(spec: RiskSpec, loaded: LoadedModel, run, history: History, feats: pd.DataFrame,
                 windows: RiskWindows, cfg: MonitorConfig,
                 as_deep: pd.DataFrame | None = None) -> dict[str, Any]:
    """Drift, estimated and realised performance and the verdict of one risk model.

    `as_deep` holds the current rows built from a history no deeper than the reference's
    (`current_as_deep`): drift is judged on those, like with like."""
    names = loaded.feature_names
    at = feats["as_of_date"]
    ref = feats[at.isin(windows.reference)]
    cur = feats[at.isin(windows.current)]
    if ref.empty or cur.empty:
        return {"verdict": "watch", "reasons": ["[watch] no reference or current rows to compare"],
                "fired": ["windows:watch"]}
    v = Verdict()
    validated = feats[at.isin(windows.test)]
    drift = feature_drift(ref, cur, names, _importance(loaded), cfg.bins, cfg.psi_minor, cfg.psi_major,
                          validated=validated,
                          current_as_deep=as_deep if as_deep is not None and len(as_deep) else None)
    major = drift[(drift["drift"] == "major") & drift["new_shift"]]
    minor = drift[drift["drift"] != "none"]
    major_share = float(major["importance"].sum())
    shifted = ", ".join(f"{r.feature} (PSI {r.psi:.2f})" for r in major.head(4).itertuples())
    if major_share >= cfg.drift_importance_retrain:
        v.raise_to("retrain", "feature_drift",
                   f"major shift in {len(major)} feature(s) carrying {major_share:.0%} of the "
                   f"model's importance: {shifted}")
    elif len(major):
        v.raise_to("watch", "feature_drift",
                   f"major shift in {len(major)} feature(s) carrying {major_share:.0%} of the "
                   f"model's importance: {shifted}")

    p_ref = spec.predict_proba(loaded, ref)
    p_cur = spec.predict_proba(loaded, cur)
    pred_psi = psi(p_ref, p_cur, cfg.bins)
    pred = {"psi": pred_psi, "mean_reference": float(np.mean(p_ref)), "mean_current": float(np.mean(p_cur)),
            "high_band_reference": float(np.mean(spec.bands.bands(p_ref) == "high")),
            "high_band_current": float(np.mean(spec.bands.bands(p_cur) == "high"))}
    v.tiered("prediction_drift", pred_psi, cfg.prediction_psi_watch, cfg.prediction_psi_retrain,
             f"predicted risk shifted (PSI {pred_psi:.2f}; mean {pred['mean_reference']:.3f} -> "
             f"{pred['mean_current']:.3f})")

    # performance without labels, on the test window (checked against the realised figure) and now
    test_rows = _labelled(spec, history, feats[at.isin(windows.test)])
    p_test = spec.predict_proba(loaded, test_rows) if len(test_rows) else np.array([])
    est_test = estimate_performance(p_test, cfg.cbpe_draws, cfg.seed)
    realised_test = ev.binary_metrics(test_rows["label"].to_numpy(int), p_test) if len(test_rows) else {}
    est_cur = estimate_performance(p_cur, cfg.cbpe_draws, cfg.seed)
    drop = est_test.auroc - est_cur.auroc
    v.tiered("estimated_performance", drop, cfg.auroc_drop_watch, cfg.auroc_drop_retrain,
             f"estimated AUROC (CBPE) {est_cur.auroc:.3f} is {drop:.3f} below the test window's "
             f"{est_test.auroc:.3f}")

    realised: dict[str, Any] = {"weeks": [str(d.date()) for d in windows.matured]}
    matured_rows = _labelled(spec, history, feats[at.isin(windows.matured)])
    if len(matured_rows):
        y = matured_rows["label"].to_numpy(int)
        p_m = spec.predict_proba(loaded, matured_rows)
        realised.update(ev.binary_metrics(y, p_m))
        realised["estimated_auroc"] = estimate_performance(p_m, cfg.cbpe_draws, cfg.seed).auroc
        realised["events"] = int(y.sum())
        base = realised_test.get("auroc")
        if realised.get("auroc") is not None and base is not None and y.sum() >= cfg.min_events:
            rdrop = base - realised["auroc"]
            realised["drop"] = rdrop
            v.tiered("realised_performance", rdrop, cfg.auroc_drop_watch, cfg.auroc_drop_retrain,
                     f"realised AUROC {realised['auroc']:.3f} on {len(realised['weeks'])} matured "
                     f"week(s) is {rdrop:.3f} below the test window's {base:.3f}")
        else:
            realised["note"] = f"fewer than {cfg.min_events} events have matured; no realised verdict"
    else:
        realised["note"] = f"no week after the test window has its {spec.horizon_days}-day label yet"
    if v.verdict == "ok":
        v.reasons.append("no test fired: inputs, predictions and estimated performance are stable")
    return {
        "kind": "risk",
        "verdict": v.verdict,
        "reasons": v.reasons,
        "fired": v.fired,
        "windows": {k: [str(d.date()) for d in (w[0], w[-1])] if len(w) else []
                    for k, w in asdict_windows(windows).items()},
        "rows": {"reference": len(ref), "current": len(cur), "test": len(test_rows),
                 "matured": len(matured_rows)},
        "feature_drift": {
            "features": len(drift),
            "minor_or_major": int(len(minor)),
            "major": int((drift["drift"] == "major").sum()),
            "major_not_tested_under": int(len(major)),
            "depth_only": int(drift["depth_only"].sum()),
            "share_drifted": float(len(minor) / max(len(drift), 1)),
            "importance_major": major_share,
            "importance_drifted": float(minor["importance"].sum()),
            "per_feature": drift.to_dict(orient="records"),
        },
        "prediction_drift": pred,
        "estimated": {"current": est_cur.to_dict(), "test_window": est_test.to_dict(),
                      "auroc_drop": drop},
        "test_window_check": {"estimated_auroc": est_test.auroc, "realised_auroc": realised_test.get("auroc"),
                              "difference": (est_test.auroc - realised_test["auroc"])
                              if realised_test.get("auroc") is not None else None,
                              "estimated_brier": est_test.brier, "realised_brier": realised_test.get("brier")},
        "realised": realised,
        "_plots": {"drift": drift, "p_reference": p_ref, "p_current": p_cur},
    }


def asdict_windows(w: RiskWindows) -> dict[str, pd.DatetimeIndex]:
    return {"reference": w.reference, "current": w.current, "test": w.test, "matured": w.matured}


def _labelled(spec: RiskSpec, history: History, rows: pd.DataFrame) -> pd.DataFrame:
    if rows.empty:
        return rows.assign(label=pd.Series(dtype=float))
    out = attach_labels(spec.name, history, rows.reset_index(drop=True))
    return out[out["label"].notna()].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# forecasters
# ---------------------------------------------------------------------------------------------


def history_counts_until(history_dir: str | Path, as_of: pd.Timestamp) -> pd.DataFrame:
    """Daily requests per series from the first simulated day up to the day before `as_of`."""
    store = HistoryStore(history_dir)
    sr = store.read("service_requests", columns=["timestamp", "grid_id", "category"], end=as_of)
    start = read_manifest(history_dir).get("start")
    return daily_counts(sr, start=start, end=as_of)


def monitor_forecast(spec: ForecastSpec, loaded: LoadedModel, run, counts: pd.DataFrame,
                     as_of: pd.Timestamp, cfg: MonitorConfig) -> dict[str, Any]:
    """The forecasts of the last `current_days` whose actuals have arrived, against the backtest."""
    panel = count_panel(counts)
    last = panel.dates[-1]
    max_h = int(loaded.extra.get("max_horizon", spec.max_horizon))
    origins = pd.date_range(as_of - pd.Timedelta(days=cfg.current_days), last, freq="7D")
    origins = origins[origins <= last]
    v = Verdict()
    rows = demand_features(panel, origins, range(1, max_h + 1))
    rows = rows[rows["count"].notna() & (rows["date"] <= last)].reset_index(drop=True)
    if rows.empty:
        return {"kind": "forecast", "verdict": "ok", "reasons": ["no actuals have arrived yet"], "fired": []}
    fc = spec.module.forecast_rows(loaded, rows, panel)
    naive = spec.module.seasonal_naive(rows)
    cutoff = pd.Timestamp(run.data.params.get("cutoff") or panel.dates[0])
    scale = seasonal_scale(panel, min(cutoff, last))
    now = forecast_score(rows, fc, naive, scale)
    y, f = rows["count"].to_numpy(float), fc["forecast"].to_numpy(float)
    now["bias"] = float(f.sum() / y.sum() - 1) if y.sum() > 0 else float("nan")
    backtest_wape = run.data.metrics.get("backtest_wape")
    nominal = float(loaded.extra["intervals"]["coverage"])
    ratio = now["wape"] / backtest_wape if backtest_wape else float("nan")

    # series the model never saw: their first request came after its training cutoff
    first_seen = counts[counts["count"] > 0].groupby("series_id")["date"].min()
    new = sorted(first_seen[first_seen > cutoff].index)
    cur_counts = counts[counts["date"] >= as_of - pd.Timedelta(days=cfg.current_days)]
    total = float(cur_counts["count"].sum())
    new_share = float(cur_counts.loc[cur_counts["series_id"].isin(new), "count"].sum() / total) if total else 0.0

    lost_edge = now["wape"] >= now["wape_naive"]  # retraining is due only once naive does as well
    v.tiered("forecast_error", ratio, cfg.wape_ratio_watch, cfg.wape_ratio_retrain if lost_edge else np.inf,
             f"WAPE {now['wape']:.3f} is {ratio:.2f}x the backtest's {backtest_wape:.3f} "
             f"(seasonal naive {now['wape_naive']:.3f})")
    v.tiered("forecast_bias", abs(now["bias"]), cfg.bias_watch, cfg.bias_retrain,
             f"forecasts are {now['bias']:+.0%} off the arrived total ({y.sum():.0f} requests)")
    if new and new_share >= cfg.new_series_share_retrain:
        v.raise_to("retrain", "new_series",
                   f"{len(new)} series never seen in training carry {new_share:.0%} of recent requests "
                   f"({', '.join(new[:5])})")
    elif new and new_share > cfg.new_series_share_watch:
        v.raise_to("watch", "new_series", f"{len(new)} series never seen in training ({', '.join(new[:5])})")
    if now["coverage"] < nominal - 0.15:
        v.raise_to("watch", "interval_coverage",
                   f"interval coverage {now['coverage']:.2f} is well below nominal {nominal:.2f}")
    if v.verdict == "ok":
        v.reasons.append("no test fired: arrived actuals are forecast as well as in the backtest")
    daily = pd.DataFrame({"date": rows["date"].to_numpy(), "actual": y, "forecast": f,
                          "naive": naive}).groupby("date").sum()
    return {
        "kind": "forecast",
        "verdict": v.verdict,
        "reasons": v.reasons,
        "fired": v.fired,
        "origins": [str(d.date()) for d in origins],
        "current": now,
        "backtest": {"wape": backtest_wape, "wape_naive": run.data.metrics.get("backtest_wape_naive"),
                     "coverage": run.data.metrics.get("backtest_coverage"), "nominal_coverage": nominal},
        "wape_ratio": ratio,
        "new_series": new,
        "new_series_share": new_share,
        "_plots": {"daily": daily},
    }


# ---------------------------------------------------------------------------------------------
# all champions
# ---------------------------------------------------------------------------------------------


@dataclass
class MonitorResult:
    as_of: str
    history_dir: str
    models: dict[str, dict[str, Any]]
    seconds: dict[str, float]

    def summary(self) -> dict[str, Any]:
        """JSON-ready, without the plot data."""
        return {"as_of": self.as_of, "history_dir": self.history_dir, "seconds": self.seconds,
                "models": {n: {k: v for k, v in m.items() if not k.startswith("_")}
                           for n, m in self.models.items()},
                "verdicts": {n: m["verdict"] for n, m in self.models.items()}}


def monitor(tracking_uri: str, history_dir: str | Path | None = None, as_of=None,
            cfg: MonitorConfig | None = None) -> MonitorResult:
    """Monitor every registered model's @champion on the history known at `as_of` (default: all
    of it). The history defaults to the one each champion was trained on."""
    cfg = cfg or MonitorConfig()
    t0 = time.perf_counter()
    champions: dict[str, tuple[Any, LoadedModel | None, Any, str]] = {}
    for name, spec in SPECS.items():
        try:
            loaded = load_champion(name, tracking_uri)
        except ChampionError as exc:
            champions[name] = (spec, None, None, str(exc))
            continue
        _, run = run_of(tracking_uri, name, loaded.version)
        champions[name] = (spec, loaded, run, "")
    first_run = next((c[2] for c in champions.values() if c[2] is not None), None)
    history_dir = history_dir or (first_run.data.tags.get("history_dir") if first_run else None)
    if not history_dir or not Path(history_dir).exists():
        raise FileNotFoundError(f"history {history_dir!r} is not available; pass --history")
    as_of = pd.Timestamp(as_of).normalize() if as_of is not None else default_as_of(history_dir)
    seconds: dict[str, float] = {}
    models: dict[str, dict[str, Any]] = {}

    risk = {n: c for n, c in champions.items() if isinstance(c[0], RiskSpec) and c[1] is not None}
    if risk:
        t = time.perf_counter()
        history = load_history(history_dir, end=as_of)
        windows = {n: risk_windows(s, run, history, as_of, cfg) for n, (s, _, run, _) in risk.items()}
        wanted = sorted({d for w in windows.values() for part in asdict_windows(w).values() for d in part})
        feats = build_features(history, pd.DatetimeIndex(wanted))
        as_deep: dict[tuple, pd.DataFrame] = {}  # models trained on the same window share them
        for w in windows.values():
            key = (tuple(w.reference), tuple(w.current))
            if key not in as_deep:
                as_deep[key] = current_as_deep(history, w)
        seconds["features"] = time.perf_counter() - t
        for n, (spec, loaded, run, _) in risk.items():
            t = time.perf_counter()
            w = windows[n]
            models[n] = {"version": loaded.version, "run_id": run.info.run_id,
                         **monitor_risk(spec, loaded, run, history, feats, w, cfg,
                                        as_deep[(tuple(w.reference), tuple(w.current))])}
            seconds[n] = time.perf_counter() - t
    forecasters = {n: c for n, c in champions.items() if isinstance(c[0], ForecastSpec) and c[1] is not None}
    if forecasters:
        counts = history_counts_until(history_dir, as_of)
        for n, (spec, loaded, run, _) in forecasters.items():
            t = time.perf_counter()
            models[n] = {"version": loaded.version, "run_id": run.info.run_id,
                         **monitor_forecast(spec, loaded, run, counts, as_of, cfg)}
            seconds[n] = time.perf_counter() - t
    for n, (_, loaded, _, problem) in champions.items():
        if loaded is None:
            models[n] = {"kind": "missing", "verdict": "retrain", "fired": ["champion:retrain"],
                         "reasons": [f"[retrain] no servable champion: {problem}"]}
    seconds["total"] = time.perf_counter() - t0
    ordered = {n: models[n] for n in SPECS if n in models}
    return MonitorResult(str(as_of.date()), str(Path(history_dir).resolve()), ordered, seconds)


def config_dict(cfg: MonitorConfig) -> dict[str, Any]:
    return asdict(cfg)
