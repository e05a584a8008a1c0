"""Fit and evaluate a risk model (fall risk or isolation) against its baselines."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.registry import get_feature
from models.base import BASELINE_KIND, BoosterParams, LoadedModel, fit_booster, fit_platt, raw_score
from models.explain import contributions
from training import evaluate as ev
from training.data import RiskDataset, risk_spec
from training.distributed import dask_fit


@dataclass
class RiskResult:
    loaded: LoadedModel
    metrics: dict[str, Any]
    curves: dict[str, pd.DataFrame]
    importance: pd.Series
    test_scores: pd.DataFrame  # test rows: ids, label, model and baseline probabilities
    fit_seconds: float
    facts: dict[str, Any] = field(default_factory=dict)


def fit_risk(ds: RiskDataset, params: BoosterParams, capacity_share: float = 0.05,
             engine: str = "pandas", scheduler: str | None = None,
             version: str = "unregistered") -> RiskResult:
    """Fit the booster (early stopping + Platt on validation, then grown again on training +
    validation rows unless `params.refit_with_validation` is off), the baselines, and score the test."""
    spec = risk_spec(ds.model)
    names = ds.feature_names
    train, val, test = ds.part("train"), ds.part("val"), ds.part("test")
    for split, part in (("train", train), ("val", val), ("test", test)):
        if part["label"].nunique() < 2:
            raise ValueError(f"{ds.model}: the {split} split has only one label class "
                             f"({len(part)} rows); the history is too short or too small")
    Xtr, ytr = train[names].to_numpy(float), train["label"].to_numpy(int)
    Xva, yva = val[names].to_numpy(float), val["label"].to_numpy(int)
    t0 = time.perf_counter()
    if engine not in ("pandas", "dask"):
        raise ValueError(f"engine must be pandas or dask, got {engine!r}")
    trainer = dask_fit(scheduler) if engine == "dask" else fit_booster
    booster = trainer(params, spec.objective, Xtr, ytr, Xva, yva, feature_names=names,
                      **spec.fit_extra())
    loaded = LoadedModel(ds.model, version, booster, names, spec.schema_hash(), {})
    loaded.calibration = fit_platt(raw_score(loaded, val, num_threads=params.num_threads), yva)
    p_val = spec.predict_proba(loaded, val, num_threads=params.num_threads)  # before it learns them
    # grown again on the rows every fit learns from; its size and calibration stay those chosen
    # on validation
    fit_rows = learning_rows(ds, params)
    if params.refit_with_validation:
        rounds = booster.current_iteration()
        booster = trainer(replace(params, num_trees=max(rounds, 1)), spec.objective,
                          fit_rows[names].to_numpy(float), fit_rows["label"].to_numpy(int),
                          feature_names=names, **spec.fit_extra())
        loaded.booster = booster
    y_fit = fit_rows["label"].to_numpy(int)
    fit_seconds = time.perf_counter() - t0
    p_test = spec.predict_proba(loaded, test, num_threads=params.num_threads)
    y_test = test["label"].to_numpy(int)

    metrics: dict[str, Any] = {"model": ev.binary_metrics(y_test, p_test),
                               "model_val": ev.binary_metrics(yva, p_val)}
    metrics["model"]["recall_at_capacity"] = ev.recall_at_capacity(test, p_test, capacity_share,
                                                                   seed=params.seed)
    curves = {"model": ev.reliability(y_test, p_test)}
    metrics["model"]["calibration_error"] = ev.calibration_error(curves["model"])
    scores = test[["resident_id", "as_of_date", "label"]].copy()
    scores["model"] = p_test

    t_base = time.perf_counter()
    # baselines, fitted on the same rows as the model; the first is the one the gate compares with
    for b in spec.baselines:
        est = b.make(params.seed).fit(b.inputs(fit_rows), y_fit)
        p_b = est.predict_proba(b.inputs(test))
        metrics[b.name] = ev.binary_metrics(y_test, p_b)
        if b.score is not None:
            metrics[b.name]["auroc_of_score"] = ev.auroc_only(y_test, b.score(test))
        # ties of a screen are broken at random (row order would flatter or punish it)
        metrics[b.name]["recall_at_capacity"] = ev.recall_at_capacity(test, p_b, capacity_share,
                                                                      seed=params.seed)
        curves[b.name] = ev.reliability(y_test, p_b)
        scores[b.name] = p_b
    metrics["baseline"] = metrics[spec.baselines[0].name]
    # 95% intervals over residents; gains are paired against the gate's baseline
    first = spec.baselines[0].name
    boot = ev.resident_bootstrap(test["resident_id"].to_numpy(), y_test,
                                 {"model": p_test, **{b.name: scores[b.name].to_numpy() for b in spec.baselines}},
                                 reference=first, seed=params.seed)
    metrics["intervals"] = boot
    metrics["slices"] = ev.sliced(test, p_test)

    baseline_seconds = time.perf_counter() - t_base
    t_shap = time.perf_counter()
    sample = test.sample(min(len(test), 5000), random_state=params.seed)
    contrib = contributions(loaded, sample, num_threads=params.num_threads)
    importance = contrib.drop(columns=["base_value"]).abs().mean().sort_values(ascending=False)
    facts = {"rows_train": len(train), "rows_val": len(val), "rows_test": len(test),
             "refit_with_validation": params.refit_with_validation,
             "trees": booster.num_trees(), "split": ds.plan.describe(),
             "baseline_seconds": baseline_seconds, "shap_seconds": time.perf_counter() - t_shap}
    return RiskResult(loaded, metrics, curves, importance, scores, fit_seconds, facts)


def learning_rows(ds: RiskDataset, params: BoosterParams) -> pd.DataFrame:
    """The labelled rows a model and the baselines it is judged against learn from: training, and
    validation too when the booster is grown again on them (`refit_with_validation`: the latest
    labelled weeks; the time-based split leaves a label horizon between them and the test weeks)."""
    train = ds.part("train")
    return pd.concat([train, ds.part("val")]) if params.refit_with_validation else train


def fit_baseline_model(ds: RiskDataset, seed: int = 7, version: str = "unregistered") -> LoadedModel:
    """The gate's baseline served as a model: a small tree model over the baseline's own features
    (a screen's questions) that reproduces the fitted baseline's log-odds on the training rows, so
    its calibration is kept. It has the model's feature schema, so it is scored, explained (its
    reasons are the screen's answers) and served like any version; `extra["kind"]` says what it is.
    """
    import lightgbm as lgb

    spec = risk_spec(ds.model)
    base = spec.baselines[0]
    if not base.features:
        raise ValueError(f"{ds.model}: baseline {base.name!r} names no features; it cannot be served as a model")
    names = ds.feature_names
    unknown = [f for f in base.features if f not in names]
    if unknown:
        raise ValueError(f"{ds.model}: baseline {base.name!r} reads {unknown}, not in the model's features")
    train = ds.part("train")
    est = base.make(seed).fit(base.inputs(train), train["label"].to_numpy(int))
    p = np.clip(est.predict_proba(base.inputs(train)), 1e-4, 1 - 1e-4)
    X = train[names].to_numpy(float, copy=True)
    X[:, [j for j, n in enumerate(names) if n not in base.features]] = np.nan  # never split on
    screen = [j for j, n in enumerate(names) if n in base.features]

    def reproduce(monotone: bool):
        # the target is a function of these features: fit it to convergence (small leaves, many rounds)
        params = {"objective": "regression", "learning_rate": 0.5, "num_leaves": 31, "min_data_in_leaf": 5,
                  "min_sum_hessian_in_leaf": 0.0, "lambda_l2": 0.0, "seed": seed, "deterministic": True,
                  "num_threads": 1, "verbose": -1}
        if monotone:
            params |= {"monotone_constraints": [1 if j in screen else 0 for j in range(len(names))],
                       "monotone_constraints_method": "advanced"}
        return lgb.train(params, lgb.Dataset(X, label=np.log(p / (1 - p)), feature_name=names),
                         num_boost_round=150)

    # each answer of a screen can only raise the risk (the behaviour checks hold it to that). A
    # fitted screen already does, and reproduced without constraints its trees give it back
    # exactly; LightGBM's monotone constraints can stop short of it (on a 300-resident twin, 0.35 off
    # in log-odds and 0.012 AUROC below the screen), so they are used only when the free fit is
    # not monotone in every known answer over every combination of answers seen
    booster = reproduce(monotone=False)
    if not _monotone_over_answers(booster, X, screen):
        booster = reproduce(monotone=True)
    return LoadedModel(ds.model, version, booster, names, spec.schema_hash(),
                       {"method": "identity", "slope": 1.0, "intercept": 0.0, "fitted_rows": int(len(train))},
                       {"kind": BASELINE_KIND, "baseline": base.name})


def _monotone_over_answers(booster, X: np.ndarray, screen: list[int], max_cells: int = 20_000) -> bool:
    """Whether `booster` never lowers its output as one known screen answer rises, the others held
    (known or unknown), over the grid of every value each answer takes in X. An unknown answer is
    no answer: it is held, never ranked. Too large a grid is not checked (False)."""
    import itertools

    levels = []
    for j in screen:
        seen = np.unique(X[~np.isnan(X[:, j]), j])
        levels.append(np.r_[np.nan, seen] if np.isnan(X[:, j]).any() else seen)
    if int(np.prod([len(v) for v in levels])) > max_cells:
        return False
    grid = np.full((int(np.prod([len(v) for v in levels])), X.shape[1]), np.nan)
    grid[:, screen] = np.array(list(itertools.product(*levels)), dtype=float)
    out = booster.predict(grid).reshape([len(v) for v in levels])
    known = [np.take(out, range(int(np.isnan(v[0])), len(v)), axis=k) for k, v in enumerate(levels)]
    return all((np.diff(known[k], axis=k) >= -1e-9).all() for k in range(len(screen)))


def explanation_check(loaded: LoadedModel, test: pd.DataFrame, causes: pd.DataFrame,
                      capacity_share: float = 0.05, top: int = 3) -> dict[str, Any]:
    """How often the planted dominant cause is among the top SHAP reasons of high-risk rows.

    High risk = the "high" band, or (if fewer than 30 such rows) the top `capacity_share` per
    week. A reason matches when the feature's declared `causes` include the planted cause.
    Chance = the same rate if the top reasons were drawn at random from the model's features.
    """
    spec = risk_spec(loaded.name)
    p = spec.predict_proba(loaded, test)
    high = spec.bands.bands(p) == "high"
    selection = "band_high"
    if high.sum() < 30:
        rank = pd.Series(p, index=test.index).groupby(test["as_of_date"]).rank(ascending=False)
        size = test.groupby("as_of_date")["as_of_date"].transform("size")
        high = (rank <= np.maximum((size * capacity_share).round(), 1)).to_numpy()
        selection = f"top_{capacity_share:.0%}_per_week"
    rows = cause_rows(test.loc[high], causes, loaded.name)
    if not len(rows):
        return {"rows": 0, "selection": selection, "note": "no planted causes at the test dates"}
    served = spec.explain(loaded, rows, k=top)  # the reasons the service serves
    names = loaded.feature_names
    reasons = [[names[j] for j, _ in served.reasons_of(i)] for i in range(len(rows))]
    cause_sets = {n: set(get_feature(n).causes) for n in names}
    hits, hits1, chance, per_cause = [], [], [], {}
    n = len(names)
    for reason, cause in zip(reasons, rows["cause"], strict=True):
        hit = any(cause in cause_sets[r] for r in reason)
        hits1.append(bool(reason) and cause in cause_sets[reason[0]])
        m = sum(cause in cause_sets[f] for f in names)
        chance.append(1 - math.comb(n - m, top) / math.comb(n, top) if n >= top else 1.0)
        hits.append(hit)
        pc = per_cause.setdefault(cause, [0, 0])
        pc[0] += int(hit)
        pc[1] += 1
    return {
        "rows": len(hits),
        "selection": selection,
        "top": top,
        "hit_rate": float(np.mean(hits)) if hits else None,
        "top1_hit_rate": float(np.mean(hits1)) if hits1 else None,
        "chance_rate": float(np.mean(chance)) if chance else None,
        "per_cause": {c: {"hit_rate": h / t, "rows": t} for c, (h, t) in sorted(per_cause.items())},
    }


def read_causes(history_dir: str | Path) -> pd.DataFrame | None:
    """The planted causes of the twin (truth/causes.parquet), if the history has them; with the
    largest absolute term beside the dominant one when the twin records it."""
    path = Path(history_dir) / "truth" / "causes.parquet"
    if not path.exists():
        return None
    names = set(pq.read_schema(path).names)
    cols = ["resident_id", "date", "model", "cause"] + [c for c in ("cause_absolute",) if c in names]
    return pd.read_parquet(path, columns=cols)


def cause_rows(frame: pd.DataFrame, causes: pd.DataFrame, model: str) -> pd.DataFrame:
    """The rows of `frame` the twin recorded a dominant planted cause for (as of that date), with
    it as `cause`."""
    truth = causes.loc[causes["model"] == model, ["resident_id", "date", "cause"]].copy()
    truth["resident_id"] = truth["resident_id"].astype(str)
    truth["date"] = pd.to_datetime(truth["date"]).astype("datetime64[ns]")
    rows = frame.copy()
    rows["resident_id"] = rows["resident_id"].astype(str)
    rows = rows.merge(truth.rename(columns={"date": "as_of_date"}), how="left", on=["resident_id", "as_of_date"])
    return rows[rows["cause"].notna()].reset_index(drop=True)


READER_HELD_OUT_SHARE = 0.25


def reader_held_out(residents: pd.Series | np.ndarray, share: float = READER_HELD_OUT_SHARE) -> np.ndarray:
    """The residents a cause reader does not learn from (a fixed share, by a stable hash of the id),
    on whose rows it is judged: a community's residents are people it has not seen."""
    h = pd.util.hash_pandas_object(pd.Series(residents).astype(str), index=False).to_numpy()
    return (h % 1000) < share * 1000


def fit_reader(ds: RiskDataset, causes: pd.DataFrame, feature_names: list[str], seed: int = 7,
               trained_on: dict[str, Any] | None = None):
    """A cause reader (models.causes) for `ds.model`, fitted on the training rows' planted causes
    and early-stopped on the validation rows', leaving out the held-out residents
    (`reader_held_out`); None when those rows hold fewer than two causes."""
    from features.registry import feature_set
    from models.causes import READER_BOOSTER, fit_cause_reader

    def learned(frame: pd.DataFrame) -> pd.DataFrame:
        rows = cause_rows(frame, causes, ds.model)
        return rows[~reader_held_out(rows["resident_id"])]

    spec = risk_spec(ds.model)
    return fit_cause_reader(ds.model, learned(ds.part("train")), feature_names,
                            tuple(feature_set(spec.feature_set).causes), valid=learned(ds.part("val")),
                            params=replace(READER_BOOSTER, seed=seed),
                            trained_on={**(trained_on or {}), "held_out_residents": READER_HELD_OUT_SHARE})


def reader_from_twin(loaded: LoadedModel, twin_dir: str | Path, split, seed: int = 7):
    """A cause reader for `loaded` trained on another history that has the twin's planted causes
    (a reference twin), for a community whose own history has none, with its naming check on that
    twin's test window (`naming_check`); refused by name when the twin has no planted causes."""
    from features.pipeline import load_history
    from training.data import risk_dataset
    from training.tracking import read_manifest

    causes = read_causes(twin_dir)
    if causes is None:
        raise ValueError(f"{twin_dir}: no truth/causes.parquet, so no planted causes to learn a cause reader from")
    ds = risk_dataset(loaded.name, load_history(twin_dir), split)
    reader = fit_reader(ds, causes, loaded.feature_names, seed,
                        {"history": str(twin_dir), "twin_id": str(read_manifest(twin_dir).get("twin_id", "")),
                         "as_of": list(ds.plan.describe()["train_as_of"])})
    return reader, naming_check(replace(loaded, cause_reader=reader), ds.part("test"), causes, seed)


def naming_check(loaded: LoadedModel, test: pd.DataFrame, causes: pd.DataFrame, seed: int = 7,
                 n_boot: int = 200) -> dict[str, Any]:
    """On the high-band test rows of the residents no cause reader learned from (`reader_held_out`):
    how often the cause the service names first (the cause reader's, when the version has one) is
    the planted dominant cause, against the largest SHAP sum and always naming the most common
    cause; with a reader, the 95% interval of its margin over the largest SHAP sum (resampling
    residents), and whether it earns its place: the interval's lower end above zero
    (`reader_kept`)."""
    spec = risk_spec(loaded.name)
    sub = test.loc[spec.bands.bands(spec.predict_proba(loaded, test)) == "high"]
    rows = cause_rows(sub, causes, loaded.name)
    rows = rows[reader_held_out(rows["resident_id"])].reset_index(drop=True)
    if not len(rows):
        return {"rows": 0, "note": "no high-band test rows with a planted cause", "reader_kept": False}
    e = spec.explain(loaded, rows, k=1, likely=True)
    truth = rows["cause"].to_numpy()
    named, largest = e.named_cause() == truth, e.leading_cause() == truth
    out = {"rows": int(len(rows)), "named_right": float(np.mean(named)),
           "largest_attribution_right": float(np.mean(largest)),
           "most_common_share": float(rows["cause"].value_counts(normalize=True).iloc[0]),
           "named_by": "cause_reader" if e.likely_causes is not None else "largest_attribution"}
    if e.likely_causes is not None:
        diff = (named.astype(float) - largest.astype(float))
        draws = [np.average(diff, weights=w) for w in ev.resident_draws(rows["resident_id"].to_numpy(), n_boot, seed)]
        lo, hi = np.quantile(draws, [0.025, 0.975]) if draws else (np.nan, np.nan)
        out.update({"reader_right": out["named_right"], "reader_over_largest_attribution": float(diff.mean()),
                    "reader_over_largest_attribution_lo": float(lo), "reader_over_largest_attribution_hi": float(hi),
                    "reader_kept": bool(lo > 0)})
    return out


def keep_reader_if_earned(loaded: LoadedModel, check: dict[str, Any]) -> LoadedModel:
    """Serve the reader only when it named the planted causes better than the largest SHAP sum on
    held-out rows (interval above zero); else the version names causes by the SHAP sums alone."""
    if loaded.cause_reader is not None and not check.get("reader_kept"):
        loaded.cause_reader = None
        check["named_by"] = "largest_attribution"
        check["named_right"] = check.get("largest_attribution_right")
        check["note"] = ("cause reader not kept: it did not name the planted causes better than the largest "
                         "SHAP sum on held-out rows (the 95% interval of its margin reaches zero)")
    return loaded
