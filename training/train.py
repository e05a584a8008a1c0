"""Train a model on a twin history, evaluate it honestly and log it to MLflow (one run each)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.demand import count_panel, daily_counts
from features.pipeline import load_history
from models.base import LoadedModel
from models.registry import SPECS, get_spec
from models.spec import ForecastSpec, RiskSpec
from training import evaluate as ev
from training.backtest import rolling_origin
from training.config import TrainParams
from training.data import RiskDataset, risk_dataset, risk_spec
from training.risk import (
    explanation_check,
    fit_reader,
    fit_risk,
    keep_reader_if_earned,
    learning_rows,
    naming_check,
    read_causes,
    reader_from_twin,
)
from training.tracking import flat_metrics, flat_params, log_model_run, metric_key, read_manifest
from twin.store import HistoryStore


def model_name(cli_name: str) -> str:
    """The registered name of a model given by its name or command-line name (`fall-risk`)."""
    try:
        return get_spec(cli_name).name
    except KeyError:
        choices = ", ".join(s.cli_name for s in SPECS.values())
        raise ValueError(f"unknown model {cli_name!r}; choose {choices}") from None


@dataclass
class TrainSummary:
    model: str
    version: str
    run_id: str
    metrics: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    def headline(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "run_id": self.run_id,
                "seconds": {k: round(v, 2) for k, v in self.seconds.items()}, **self.metrics}


def history_facts(history_dir: str | Path, features_dir: str | Path | None) -> dict[str, str]:
    """What a run records of its inputs: the history's folder and content fingerprint, and the
    stored feature table it reused (if any)."""
    return {"history_dir": str(Path(history_dir).resolve()),
            "history_fingerprint": HistoryStore(history_dir).fingerprint(),
            "features_dir": str(Path(features_dir).resolve()) if features_dir else ""}


def feature_source(history_dir: str | Path, features_dir: str | Path | None, engine: str = "pandas",
                   scheduler: str | None = None):
    """Feature tables for given as-of dates: the stored table of this very history when
    `features_dir` holds one that covers them (else built and stored there); None: build."""
    if not features_dir:
        return None
    from features.pipeline import cached_features

    return lambda dates: cached_features(history_dir, dates, features_dir, engine=engine, scheduler=scheduler)


def train_risk(model: str, history_dir: str | Path, tracking_uri: str, params: TrainParams,
               engine: str = "pandas", scheduler: str | None = None,
               features_dir: str | Path | None = None, cause_twin: str | Path | None = None) -> TrainSummary:
    """Fit, evaluate and register a risk model (reusing the feature table in `features_dir`).

    With the twin's planted causes at hand (the history's own `truth/`, else `cause_twin`'s), the
    version also gets a cause reader (models.causes) naming each resident's likely cause."""
    t0 = time.perf_counter()
    facts = history_facts(history_dir, features_dir)
    history = load_history(history_dir)
    manifest = read_manifest(history_dir)
    t_load = time.perf_counter()
    ds = risk_dataset(model, history, params.split, engine=engine, scheduler=scheduler,
                      features=feature_source(history_dir, features_dir, engine, scheduler))
    t_feat = time.perf_counter()
    res = fit_risk(ds, params.booster, params.split.capacity_share, engine=engine, scheduler=scheduler)
    t_fit = time.perf_counter()
    causes = read_causes(history_dir)
    t_reader = time.perf_counter()
    naming = None
    if causes is not None:  # a twin: its own planted causes teach the reader, its test window judges it
        res.loaded.cause_reader = fit_reader(ds, causes, res.loaded.feature_names, params.booster.seed,
                                             {"history": str(history_dir),
                                              "twin_id": str(manifest.get("twin_id", "")),
                                              "as_of": ds.plan.describe()["train_as_of"]})
        naming = naming_check(res.loaded, ds.part("test"), causes, params.booster.seed)
    elif cause_twin is not None:  # a real community: the reference twin's, judged on its test window
        res.loaded.cause_reader, naming = reader_from_twin(res.loaded, cause_twin, params.split, params.booster.seed)
        naming["judged_on"] = str(cause_twin)
    if naming is not None:
        keep_reader_if_earned(res.loaded, naming)
    t_reader = time.perf_counter() - t_reader
    check = (explanation_check(res.loaded, ds.part("test"), causes, params.split.capacity_share)
             if causes is not None else {"rows": 0, "note": "history has no truth/causes.parquet"})
    if naming is not None:
        check["naming"] = naming

    m = res.metrics
    metrics: dict[str, float] = {}
    metrics.update(flat_metrics("test", m["model"]))
    metrics.update(flat_metrics("val", m["model_val"]))
    for base in [k for k in m if k not in ("model", "model_val", "slices", "baseline", "intervals")]:
        metrics.update(flat_metrics(f"test_{base}", m[base]))
    metrics.update(flat_metrics("test_baseline", m["baseline"]))
    for scored, ci in m["intervals"].items():
        metrics.update(flat_metrics(f"test_ci_{scored}", ci))
    for sl, sm in m["slices"].items():
        for k in ("auroc", "brier", "prevalence", "rows"):
            if sm.get(k) is not None:
                metrics[metric_key("test", k, sl)] = float(sm[k])
    if check.get("hit_rate") is not None:
        metrics["explanation_top3_hit_rate"] = check["hit_rate"]
        metrics["explanation_top3_chance_rate"] = check["chance_rate"]
        metrics["explanation_top1_hit_rate"] = check["top1_hit_rate"]
    if check.get("naming", {}).get("rows"):
        n = check["naming"]
        prefix = "cause_twin_" if n.get("judged_on") else "cause_"  # judged on the reference twin's rows
        metrics[f"{prefix}named_right"] = n["named_right"]
        metrics[f"{prefix}largest_attribution_right"] = n["largest_attribution_right"]
        metrics[f"{prefix}most_common_share"] = n["most_common_share"]
    t_check = time.perf_counter()
    seconds = {"load": t_load - t0, "features": t_feat - t_load, "fit": res.fit_seconds,
               "baselines": res.facts["baseline_seconds"], "shap_summary": res.facts["shap_seconds"],
               "cause_reader": t_reader, "explanation_check": t_check - t_fit - t_reader}

    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "reliability": ev.plot_reliability(res.curves, Path(tmp) / "reliability.png",
                                               f"{model}: test window"),
            "shap": ev.plot_importance(res.importance, Path(tmp) / "shap_summary.png",
                                       f"{model}: mean |SHAP| on the test window"),
        }
        test_example = ds.part("test").head(5)
        logged = log_model_run(
            tracking_uri=tracking_uri,
            loaded=res.loaded,
            params={**flat_params("booster.", params.booster.to_dict()),
                    **flat_params("split.", {**params.to_dict()["split"], **res.facts["split"]}),
                    "engine": engine, **facts,
                    "rows_train": str(res.facts["rows_train"]), "rows_val": str(res.facts["rows_val"]),
                    "rows_test": str(res.facts["rows_test"]), "trees": str(res.facts["trees"])},
            metrics=metrics,
            tags={"test_window": ",".join(res.facts["split"]["test_as_of"]), **facts},
            json_artifacts={
                "metrics.json": m,
                "calibration.json": res.loaded.calibration,
                "splits.json": res.facts["split"],
                "reliability.json": {k: v.to_dict(orient="list") for k, v in res.curves.items()},
                "shap_importance.json": res.importance.to_dict(),
                "explanation_check.json": check,
                "params.json": params.to_dict(),
            },
            files=files,
            input_example=test_example,
            output_example=risk_spec(model).predict_proba(res.loaded, test_example),
            twin_id=str(manifest.get("twin_id", "")),
        )
    seconds["mlflow_logging"] = time.perf_counter() - t_check
    seconds["total"] = time.perf_counter() - t0
    headline = {
        "test": {k: m["model"].get(k) for k in ("auroc", "auprc", "brier", "recall_at_capacity", "calibration_error")},
        "baseline": {k: m["baseline"].get(k) for k in ("auroc", "auprc", "brier", "recall_at_capacity")},
        "explanation_check": {k: check.get(k) for k in ("rows", "hit_rate", "top1_hit_rate", "chance_rate", "selection",
                                                        "naming")},
        "split": res.facts["split"],
    }
    if "logistic" in m:
        headline["logistic"] = {k: m["logistic"].get(k) for k in ("auroc", "auprc", "brier")}
    return TrainSummary(model, logged["version"], logged["run_id"], headline, seconds)


def train_baseline(model: str, history_dir: str | Path, tracking_uri: str, params: TrainParams,
                   features_dir: str | Path | None = None) -> TrainSummary:
    """Register the gate's baseline served as a model (`kind` tag `baseline`), evaluated on the
    same frozen test window as the local model, for a community whose own model cannot beat it."""
    from models.base import BASELINE_KIND
    from training.risk import fit_baseline_model

    t0 = time.perf_counter()
    name = model_name(model)
    ds = risk_dataset(name, load_history(history_dir), params.split,
                      features=feature_source(history_dir, features_dir))
    loaded = fit_baseline_model(ds, seed=params.booster.seed)
    first = risk_spec(name).baselines[0].name
    return register_scored(loaded, ds, history_dir, tracking_uri, params, features_dir,
                           {"kind": BASELINE_KIND, "baseline": first}, {"baseline_served": first}, t0)


def register_scored(loaded: LoadedModel, ds: RiskDataset, history_dir: str | Path, tracking_uri: str, params: TrainParams,
                    features_dir: str | Path | None, tags: dict[str, str], facts: dict[str, Any],
                    t0: float) -> TrainSummary:
    """Register a model that needs no fitting here (the baseline served as a model, a reference
    community's champion), scored on this history's frozen test window against the fitted first
    baseline with paired 95% intervals, as `train_risk` scores the local model; `tags` (with its
    `kind`) go on the run and the version."""
    spec = risk_spec(loaded.name)
    history_tags = history_facts(history_dir, features_dir)
    train_rows, test = learning_rows(ds, params.booster), ds.part("test")
    y = test["label"].to_numpy(int)
    first = spec.baselines[0]
    p_base = first.make(params.booster.seed).fit(first.inputs(train_rows), train_rows["label"].to_numpy(int)) \
        .predict_proba(first.inputs(test))
    p = spec.predict_proba(loaded, test)
    m = {"model": ev.binary_metrics(y, p), "baseline": ev.binary_metrics(y, p_base),
         "intervals": ev.resident_bootstrap(test["resident_id"].to_numpy(), y, {"model": p, "baseline": p_base},
                                            reference="baseline", seed=params.booster.seed)}
    metrics = {**flat_metrics("test", m["model"]), **flat_metrics("test_baseline", m["baseline"]),
               **flat_metrics("test_ci_model", m["intervals"]["model"])}
    logged = log_model_run(
        tracking_uri=tracking_uri, loaded=loaded,
        params={**tags, **history_tags, "rows_train": str(len(train_rows)), "rows_test": str(len(test))},
        metrics=metrics,
        tags={"test_window": ",".join(ds.plan.describe()["test_as_of"]), **tags, **history_tags},
        json_artifacts={"metrics.json": m, "splits.json": ds.plan.describe(), "params.json": params.to_dict(),
                        "calibration.json": loaded.calibration},
        input_example=test.head(5), output_example=p[:5],
        twin_id=str(read_manifest(history_dir).get("twin_id", "")),
    )
    headline = {"kind": tags["kind"], **facts,
                "test": {k: m["model"].get(k) for k in ("auroc", "auprc", "brier")},
                "baseline": {k: m["baseline"].get(k) for k in ("auroc", "auprc", "brier")},
                "interval": {k: m["intervals"]["model"].get(k)
                             for k in ("auroc_lo", "auroc_hi", "auroc_gain", "auroc_gain_lo", "auroc_gain_hi")}}
    return TrainSummary(loaded.name, logged["version"], logged["run_id"], headline,
                        {"total": time.perf_counter() - t0})


def history_counts(history_dir: str | Path) -> pd.DataFrame:
    """Daily requests per grid and category over the whole simulated period (zero-filled)."""
    store = HistoryStore(history_dir)
    sr = store.read("service_requests", columns=["timestamp", "grid_id", "category"])
    manifest = read_manifest(history_dir)
    start = manifest.get("start")
    end = manifest.get("end")
    end_excl = pd.Timestamp(end) + pd.Timedelta(days=1) if end else None
    return daily_counts(sr, start=start, end=end_excl)


def train_forecast(name: str, history_dir: str | Path | None, tracking_uri: str, params: TrainParams,
                   counts: pd.DataFrame | None = None, engine: str = "pandas",
                   scheduler: str | None = None) -> TrainSummary:
    """Fit a forecaster up to the backtest window, backtest it, register it."""
    spec = get_spec(name)
    if not isinstance(spec, ForecastSpec):
        raise ValueError(f"{name!r} is not a forecaster")
    module = spec.module
    t0 = time.perf_counter()
    if counts is None:
        if history_dir is None:
            raise ValueError("demand training needs a history directory or a count table")
        counts = history_counts(history_dir)
    manifest = read_manifest(history_dir) if history_dir else {}
    panel = count_panel(counts)
    t_load = time.perf_counter()
    cutoff = panel.dates[-1] - pd.Timedelta(days=params.backtest.test_days)
    from models.base import fit_booster
    from training.distributed import dask_fit

    trainer = dask_fit(scheduler) if engine == "dask" else fit_booster
    loaded, facts = module.fit(panel, params.demand, cutoff=cutoff, schema_hash=spec.schema_hash(),
                               trainer=trainer)
    t_fit = time.perf_counter()
    bt, _ = rolling_origin(panel, params.demand, params.backtest, loaded=loaded)
    t_bt = time.perf_counter()
    metrics = flat_metrics("backtest", {k: v for k, v in bt.items() if k != "per_horizon"})
    for scale, sm in bt["simple"].items():
        metrics.update(flat_metrics(f"backtest_{scale}", sm))
    for h, hm in bt["per_horizon"].items():
        metrics.update(flat_metrics(f"backtest_h{int(h):02d}", hm))
    from features.demand import demand_features

    ex_rows = demand_features(panel, [panel.dates[-1]], [1]).head(5)
    logged = log_model_run(
        tracking_uri=tracking_uri,
        loaded=loaded,
        params={**flat_params("booster.", params.demand.booster.to_dict()),
                **flat_params("demand.", {k: v for k, v in params.to_dict()["demand"].items() if k != "booster"}),
                **flat_params("backtest.", params.to_dict()["backtest"]),
                **(history_facts(history_dir, None) if history_dir else {"history_dir": ""}),
                "engine": engine, "cutoff": str(cutoff.date()), **{k: str(v) for k, v in facts.items()}},
        metrics=metrics,
        tags={"test_window": f"{cutoff.date()},{panel.dates[-1].date()}",
              **(history_facts(history_dir, None) if history_dir else {"history_dir": ""})},
        json_artifacts={"backtest.json": bt, "intervals.json": loaded.extra["intervals"],
                        "params.json": params.to_dict()},
        input_example=ex_rows,
        output_example=module.predict_mean(loaded, ex_rows),
        twin_id=str(manifest.get("twin_id", "")),
    )
    seconds = {"load": t_load - t0, "fit": t_fit - t_load, "backtest": t_bt - t_fit,
               "mlflow_logging": time.perf_counter() - t_bt, "total": time.perf_counter() - t0}
    headline = {"backtest": {k: bt[k] for k in ("wape", "wape_naive", "wape_improvement", "mase",
                                                "mase_naive", "coverage", "nominal_coverage", "rows",
                                                "origins", "cutoff")}}
    return TrainSummary(name, logged["version"], logged["run_id"], headline, seconds)


def train(model: str, history_dir: str | Path, tracking_uri: str, params: TrainParams | None = None,
          engine: str = "pandas", scheduler: str | None = None,
          features_dir: str | Path | None = None, cause_twin: str | Path | None = None) -> TrainSummary:
    """Train one model by CLI or registry name (risk models reuse the table in `features_dir`, and
    learn a cause reader from `cause_twin` when the history has no planted causes of its own)."""
    name = model_name(model)
    params = params or TrainParams()
    if isinstance(get_spec(name), RiskSpec):
        summary = train_risk(name, history_dir, tracking_uri, params, engine=engine, scheduler=scheduler,
                             features_dir=features_dir, cause_twin=cause_twin)
    else:
        summary = train_forecast(name, history_dir, tracking_uri, params, engine=engine, scheduler=scheduler)
    from training.model_card import log_model_card

    log_model_card(name, summary.version, tracking_uri)
    return summary


def json_ready(obj: Any) -> Any:
    """Numbers and dates made JSON-safe (NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, pd.Timestamp):
        return str(obj.date())
    return obj
