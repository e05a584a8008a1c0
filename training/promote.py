"""The promotion gate: a new version becomes @champion only if it earns it.

On the frozen test window of the new version's run it must beat the baseline by the margin its
spec declares (the point gain: the margin is the size of gain asked for), with a 95% interval of
the gain (residents resampled) that lies above zero (the gain is not noise), beat the current
champion (scored on the same rows), and pass behavioural tests:
- invariance: renaming residents (or series) changes no prediction;
- direction: each `BehaviourCheck` of the model's spec (e.g. a fall recorded three days ago raises
  fall risk; more family visits do not raise isolation risk).
Otherwise it gets @challenger and the reasons are printed and logged to its run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.demand import count_panel
from features.pipeline import History, build_features, cached_features, load_history
from models.base import BASELINE_KIND, LOCAL_KIND, LoadedModel, kind_of
from models.registry import ChampionError, check_schema, get_spec, load_version
from models.spec import PromotionRule, RiskSpec
from training import evaluate as ev
from training.backtest import BacktestConfig, rolling_origin
from training.config import PromotionMargins, TrainParams
from training.data import attach_labels, risk_spec
from training.model_card import log_model_card
from training.tracking import (
    CHALLENGER,
    CHAMPION,
    alias_version,
    delete_alias,
    latest_version,
    log_to_run,
    run_of,
    set_alias,
)
from training.train import history_counts
from twin.store import HistoryStore

BEHAVIOUR_RESIDENTS = 200


@dataclass
class Decision:
    model: str
    version: str
    promoted: bool
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    previous_champion: str | None = None

    def summary(self) -> str:
        head = (f"{self.model} v{self.version} -> @{CHAMPION}" if self.promoted
                else f"{self.model} v{self.version} -> @{CHALLENGER} (not promoted)")
        return "\n".join([head, *[f"  - {r}" for r in self.reasons]])


# --------------------------------------------------------------------------------------------
# behavioural tests on a handful of residents at the last test as-of date
# --------------------------------------------------------------------------------------------


def _subset(history: History, ids: set[str]) -> History:
    tables = {}
    for name, df in history.tables().items():
        tables[name] = df[df["resident_id"].astype(str).isin(ids)].copy() if df is not None else None
    return History(**tables)


def _renamed(history: History, prefix: str = "ZZ") -> History:
    tables = {}
    for name, df in history.tables().items():
        if df is None:
            tables[name] = None
            continue
        out = df.copy()
        out["resident_id"] = (prefix + out["resident_id"].astype(str)).astype("str")
        tables[name] = out
    return History(**tables)


def _scores(loaded: LoadedModel, history: History, as_of) -> pd.Series:
    feats = build_features(history, [as_of])
    p = risk_spec(loaded.name).predict_proba(loaded, feats)
    return pd.Series(p, index=feats["resident_id"].astype(str).to_numpy())


def behaviour_checks(loaded: LoadedModel, history: History, as_of, residents: list[str],
                     tolerance: float) -> dict[str, dict[str, Any]]:
    """Run the invariance and direction tests; each result has `passed` and the numbers."""
    as_of = pd.Timestamp(as_of)
    sub = _subset(history, set(residents))
    before = _scores(loaded, sub, as_of)
    out: dict[str, dict[str, Any]] = {}

    renamed = _scores(loaded, _renamed(sub), as_of)
    renamed.index = [i.removeprefix("ZZ") for i in renamed.index]
    diff = float(np.max(np.abs(renamed.reindex(before.index).to_numpy() - before.to_numpy())))
    out["resident_id_invariance"] = {"passed": diff < 1e-9, "max_abs_change": diff}

    for check in risk_spec(loaded.name).behaviour:
        after = _scores(loaded, check.perturb(sub, list(before.index.astype(str)), as_of), as_of)
        change = after.reindex(before.index).to_numpy() - before.to_numpy()
        if check.direction == "raises":
            wrong = float(np.mean(change < -1e-9))
            out[check.name] = {"passed": bool(change.mean() > 0 and wrong <= tolerance),
                               "mean_change": float(change.mean()), "share_lowered": wrong,
                               "residents": len(change)}
        else:
            wrong = float(np.mean(change > 1e-9))
            out[check.name] = {"passed": bool(change.mean() <= 1e-9 and wrong <= tolerance),
                               "mean_change": float(change.mean()), "share_raised": wrong,
                               "residents": len(change)}
    return out


# --------------------------------------------------------------------------------------------
# the gate
# --------------------------------------------------------------------------------------------


def frozen_test_dates(window: str) -> pd.DatetimeIndex:
    first, last = (pd.Timestamp(x) for x in window.split(","))
    return pd.date_range(first, last, freq="7D")


def _champion(name: str, tracking_uri: str, new_version: str) -> tuple[LoadedModel | None, str | None, str]:
    current = alias_version(tracking_uri, name, CHAMPION)
    if current is None or current == new_version:
        return None, current, ""
    try:
        return check_schema(load_version(name, tracking_uri, version=current)), current, ""
    except ChampionError as exc:
        return None, current, str(exc)


def _candidate(d: Decision, tracking_uri: str, history_dir: str | None) -> tuple[LoadedModel, Any, str | None] | None:
    """The version `d` judges, its run and its history folder (the run's own unless one is
    given); None, with the reason in `d`, when its feature schema is not the code's."""
    new = load_version(d.model, tracking_uri, version=d.version)
    try:
        check_schema(new, alias=f"v{d.version}")
    except ChampionError as exc:
        d.reasons.append(str(exc))
        return None
    _, run = run_of(tracking_uri, d.model, d.version)
    history_dir = history_dir or run.data.tags.get("history_dir")
    seen = run.data.tags.get("history_fingerprint")
    if history_dir and seen and Path(history_dir).exists():
        now = HistoryStore(history_dir).fingerprint()
        d.checks["history"] = {"dir": str(history_dir), "fingerprint_at_training": seen,
                               "fingerprint_now": now, "same": now == seen}
        if now != seen:
            d.reasons.append(f"the history has changed since training (fingerprint {seen[:12]} -> "
                             f"{now[:12]}); judged on the history as it is now")
    return new, run, history_dir


def gain_is_sure(what: str, margin: float, lo: float | None, hi: float | None) -> tuple[bool, list[str]]:
    """Is a gain over the baseline real: does its 95% interval (residents resampled) lie above
    zero (or above the margin, when the margin allows a loss)?

    The margin itself is asked of the point gain. Asking the interval's lower end to clear a
    positive margin would ask for a true gain near margin + 2 standard errors (about +0.08 AUROC
    for a +0.05 margin on a 2,000-resident twin, far more on a small one), not the gain the spec
    names. No interval logged (an older run): nothing to judge, so it passes with a note.
    """
    if lo is None:
        return True, [f"{what}: no interval logged"]
    floor = min(margin, 0.0)
    span = f"[{lo:+.4g}, {hi:+.4g}]" if hi is not None else f"from {lo:+.4g}"
    if lo <= floor:
        return False, [f"{what} may be noise: its 95% interval {span} does not lie above {floor:+.2f}"]
    return True, [f"{what} is real: 95% interval {span} lies above {floor:+.2f}"]


def _baseline_reproduced(d: Decision, m_new: dict[str, Any], base_auroc: float | None,
                         metrics: dict[str, float]) -> bool:
    """A baseline served as a model earns no margin; it must not be surely worse than the
    baseline it serves (it differs only where the fitted baseline ranked a "yes" below a "no")."""
    if m_new["auroc"] is None or base_auroc is None:
        d.reasons.append("AUROC undefined on the test window (one class only)")
        return False
    hi = metrics.get("test_ci_model_auroc_gain_hi")
    if hi is not None and hi < 0:
        d.reasons.append(f"as a model the baseline scores AUROC {m_new['auroc']:.3f}, surely below its own "
                         f"{base_auroc:.3f} (the gain's 95% interval ends at {hi:+.3f})")
        return False
    d.reasons.append(f"the baseline served as a model: AUROC {m_new['auroc']:.3f} (baseline {base_auroc:.3f})")
    return True


def _beats_baseline(d: Decision, rule: PromotionRule, m_new: dict[str, Any], base_auroc: float | None,
                    base_brier: float | None, metrics: dict[str, float]) -> bool:
    """The spec's margin over the baseline at the point, and gains whose intervals lie above zero."""
    ok = True
    need = rule.auroc_over_baseline
    if m_new["auroc"] is None or base_auroc is None:
        ok = False
        d.reasons.append("AUROC undefined on the test window (one class only)")
    elif m_new["auroc"] < base_auroc + need:
        ok = False
        d.reasons.append(f"AUROC {m_new['auroc']:.3f} is not >= baseline {base_auroc:.3f} + {need:.2f}")
    else:
        d.reasons.append(f"AUROC {m_new['auroc']:.3f} >= baseline {base_auroc:.3f} + {need:.2f}")
    gain_ok, why = gain_is_sure("AUROC gain over baseline", need,
                                *(metrics.get(f"test_ci_model_auroc_gain_{e}") for e in ("lo", "hi")))
    d.checks["auroc_gain_interval"] = [metrics.get(f"test_ci_model_auroc_gain_{e}") for e in ("lo", "hi")]
    ok = ok and gain_ok
    d.reasons.extend(why)
    if rule.brier_under_baseline is not None and base_brier is not None:
        if m_new["brier"] > base_brier - rule.brier_under_baseline:
            ok = False
            d.reasons.append(f"Brier {m_new['brier']:.4f} is not below baseline {base_brier:.4f}")
        else:
            d.reasons.append(f"Brier {m_new['brier']:.4f} < baseline {base_brier:.4f}")
            gain_ok, why = gain_is_sure("Brier reduction", rule.brier_under_baseline,
                                        *(metrics.get(f"test_ci_model_brier_gain_{e}") for e in ("lo", "hi")))
            ok = ok and gain_ok
            d.reasons.extend(why)
    return ok


def gate_risk(name: str, version: str, tracking_uri: str, margins: PromotionMargins,
              history_dir: str | None) -> Decision:
    d = Decision(name, version, False)
    candidate = _candidate(d, tracking_uri, history_dir)
    if candidate is None:
        return d
    new, run, history_dir = candidate
    window = run.data.tags.get("test_window")
    if not window:
        d.reasons.append(f"run {run.info.run_id} has no test_window tag (not logged by "
                         "`twincare train`); there is no frozen test window to judge it on")
        return d
    if not history_dir or not Path(history_dir).exists():
        d.reasons.append(f"history {history_dir!r} of the run is not available; pass --history")
        return d
    history = load_history(history_dir)
    dates = frozen_test_dates(window)
    features_dir = run.data.tags.get("features_dir")
    feats = (cached_features(history_dir, dates, features_dir) if features_dir
             else build_features(history, dates))  # the run's stored table when it had one
    rows = attach_labels(name, history, feats)
    rows = rows[rows["label"].notna()].reset_index(drop=True)
    y = rows["label"].to_numpy(int)
    spec = risk_spec(name)
    p_new = spec.predict_proba(new, rows)
    m_new = ev.binary_metrics(y, p_new)
    base_auroc = run.data.metrics.get("test_baseline_auroc")
    base_brier = run.data.metrics.get("test_baseline_brier")
    d.checks["test_window"] = window
    d.checks["new"] = m_new
    d.checks["baseline"] = {"auroc": base_auroc, "brier": base_brier}
    kind = run.data.tags.get("kind", LOCAL_KIND)
    d.checks["kind"] = kind
    if kind == BASELINE_KIND:
        ok = _baseline_reproduced(d, m_new, base_auroc, run.data.metrics)
    else:
        ok = _beats_baseline(d, margins.rule_for(spec), m_new, base_auroc, base_brier, run.data.metrics)

    champ, champ_version, note = _champion(name, tracking_uri, version)
    d.previous_champion = champ_version
    if champ_version == version:
        d.reasons.append(f"v{version} is already the champion")
    if champ is not None and kind == BASELINE_KIND and kind_of(champ) != BASELINE_KIND:
        ok = False  # that champion beat this very baseline at its own gate
        d.reasons.append(f"champion v{champ_version} is a {kind_of(champ)} model that beat this baseline; it stays")
    elif champ is not None and kind == BASELINE_KIND:
        d.reasons.append(f"replaces the baseline champion v{champ_version} (the same baseline, refitted)")
    elif champ is not None:
        m_ch = ev.binary_metrics(y, spec.predict_proba(champ, rows))
        d.checks["champion"] = {"version": champ_version, "kind": kind_of(champ), **m_ch}
        if m_ch["auroc"] is not None and m_new["auroc"] is not None and \
                m_new["auroc"] <= m_ch["auroc"] + margins.auroc_over_champion:
            ok = False
            d.reasons.append(f"AUROC {m_new['auroc']:.3f} does not beat champion v{champ_version} "
                             f"({m_ch['auroc']:.3f}) by more than {margins.auroc_over_champion:.3f}")
        else:
            d.reasons.append(f"beats champion v{champ_version} (AUROC {m_ch['auroc']:.3f})")
    elif note:
        d.reasons.append(f"current champion v{champ_version} cannot be compared: {note}")

    last = dates[-1]
    ids = sorted(rows.loc[rows["as_of_date"] == last, "resident_id"].astype(str).unique())
    rng = np.random.default_rng(0)
    ids = list(rng.choice(ids, size=min(BEHAVIOUR_RESIDENTS, len(ids)), replace=False)) if ids else []
    behaviour = behaviour_checks(new, history, last, ids, margins.behaviour_tolerance)
    d.checks["behaviour"] = behaviour
    for test, res in behaviour.items():
        if not res["passed"]:
            ok = False
        d.reasons.append(f"behaviour {test}: {'passed' if res['passed'] else 'FAILED'} "
                         f"({', '.join(f'{k}={v:.4g}' for k, v in res.items() if isinstance(v, float))})")
    d.promoted = ok
    return d


def gate_forecast(name: str, version: str, tracking_uri: str, margins: PromotionMargins,
                  history_dir: str | None) -> Decision:
    d = Decision(name, version, False)
    candidate = _candidate(d, tracking_uri, history_dir)
    if candidate is None:
        return d
    new, run, history_dir = candidate
    if not history_dir or not Path(history_dir).exists():
        d.reasons.append(f"history {history_dir!r} of the run is not available; pass --history")
        return d
    panel = count_panel(history_counts(history_dir))
    test_days = int(float(run.data.params.get("backtest.test_days", BacktestConfig().test_days)))
    step = int(float(run.data.params.get("backtest.step", BacktestConfig().step)))
    cfg = BacktestConfig(test_days=test_days, step=step)
    bt, _ = rolling_origin(panel, config=cfg, loaded=new)
    d.checks["new"] = {k: v for k, v in bt.items() if k != "per_horizon"}
    ok = True
    limit = (1 - margins.wape_under_naive) * bt["wape_naive"]
    if bt["wape"] <= limit:
        d.reasons.append(f"WAPE {bt['wape']:.3f} <= {1 - margins.wape_under_naive:.2f} x naive {bt['wape_naive']:.3f}")
    else:
        ok = False
        d.reasons.append(f"WAPE {bt['wape']:.3f} is not {margins.wape_under_naive:.0%} below naive {bt['wape_naive']:.3f}")
    gap = abs(bt["coverage"] - bt["nominal_coverage"])
    if gap <= margins.coverage_tolerance:
        d.reasons.append(f"interval coverage {bt['coverage']:.3f} near nominal {bt['nominal_coverage']:.2f}")
    else:
        ok = False
        d.reasons.append(f"interval coverage {bt['coverage']:.3f} is off nominal {bt['nominal_coverage']:.2f} by more than {margins.coverage_tolerance:.2f}")
    champ, champ_version, note = _champion(name, tracking_uri, version)
    d.previous_champion = champ_version
    if champ_version == version:
        d.reasons.append(f"v{version} is already the champion")
    if champ is not None:
        bt_ch, _ = rolling_origin(panel, config=cfg, loaded=champ)
        d.checks["champion"] = {"version": champ_version, **{k: v for k, v in bt_ch.items() if k != "per_horizon"}}
        if bt["wape"] >= bt_ch["wape"] - margins.wape_under_champion:
            ok = False
            d.reasons.append(f"WAPE {bt['wape']:.3f} does not beat champion v{champ_version} ({bt_ch['wape']:.3f})")
        else:
            d.reasons.append(f"beats champion v{champ_version} (WAPE {bt_ch['wape']:.3f})")
    elif note:
        d.reasons.append(f"current champion v{champ_version} cannot be compared: {note}")
    # behaviour: renaming series changes nothing; forecasts are finite and non-negative
    forecast = get_spec(name).forecast
    counts = pd.DataFrame({
        "series_id": np.repeat(panel.series, len(panel.dates)),
        "date": np.tile(panel.dates, len(panel.series)),
        "count": panel.values.T.reshape(-1),
    }).dropna()
    f1 = forecast(new, counts, 14)
    f2 = forecast(new, counts.assign(series_id="ZZ" + counts["series_id"]), 14)
    f2["series_id"] = f2["series_id"].str.removeprefix("ZZ")
    f2 = f2.set_index(["series_id", "date"]).reindex(f1.set_index(["series_id", "date"]).index)
    diff = float(np.max(np.abs(f2["forecast"].to_numpy() - f1["forecast"].to_numpy())))
    sane = bool(np.isfinite(f1[["forecast", "lower", "upper"]]).all().all()
                and (f1["lower"] >= 0).all() and (f1["lower"] <= f1["forecast"] + 1e-9).all()
                and (f1["forecast"] <= f1["upper"] + 1e-9).all())
    d.checks["behaviour"] = {"series_id_invariance": {"passed": diff < 1e-9, "max_abs_change": diff},
                             "bounds_ordered_and_non_negative": {"passed": sane}}
    for test, res in d.checks["behaviour"].items():
        ok = ok and res["passed"]
        d.reasons.append(f"behaviour {test}: {'passed' if res['passed'] else 'FAILED'}")
    d.promoted = ok
    return d


def promote(model: str, tracking_uri: str, version: str | None = None,
            history_dir: str | None = None, params: TrainParams | None = None) -> Decision:
    """Decide, move the aliases, and log the decision to the version's run."""
    spec = get_spec(model)
    name = spec.name
    params = params or TrainParams()
    version = str(version) if version is not None else latest_version(tracking_uri, name)
    gate = gate_risk if isinstance(spec, RiskSpec) else gate_forecast
    d = gate(name, version, tracking_uri, params.promotion, history_dir)
    if d.promoted:
        set_alias(tracking_uri, name, CHAMPION, version)
        if alias_version(tracking_uri, name, CHALLENGER) == version:
            delete_alias(tracking_uri, name, CHALLENGER)
    else:
        set_alias(tracking_uri, name, CHALLENGER, version)
    _, run = run_of(tracking_uri, name, version)
    log_to_run(tracking_uri, run.info.run_id,
               tags={"promotion": "champion" if d.promoted else "challenger"},
               json_artifacts={"promotion.json": {"promoted": d.promoted, "reasons": d.reasons,
                                                  "checks": d.checks,
                                                  "previous_champion": d.previous_champion}})
    log_model_card(name, version, tracking_uri)  # the card now holds the gate's decision
    return d
