"""Prediction quality over several twins and test windows, with intervals and true ceilings.

    python -m benchmarks.bench_quality [--seeds 11 12 13] [--windows 2] [--residents 2000]
                                       [--days 730] [--workdir /tmp/bench-quality] [--boot 200]
                                       [--cause-twin TWIN]   # cause readers learned there, scored here
    python -m benchmarks.bench_quality --merge RUN.json ... [--out FILE]   # join runs, print the table

For each seed a twin is simulated (kept in the workdir); each test window is the latest 12 weeks
of the history cut `12 x k` weeks earlier (k = 0, 1, ...). For every risk model of the registry:
AUROC and Brier of the model, its baselines and the twin's ceilings (knowable at the as-of date,
and the path oracle that sees the label window), each with a 95% interval from resampling
residents; the explanation measured per cause against the truth. For the forecaster: WAPE against
every simple method, daily and on weekly totals. Result: benchmarks/results/quality.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULT = Path(__file__).parent / "results" / "quality.json"
WINDOW_WEEKS = 12


def cause_attribution(spec, loaded, test: pd.DataFrame, train: pd.DataFrame, causes: pd.DataFrame,
                      boot: int = 0, seed: int = 0) -> dict:
    """On high-band test rows: how often the served leading cause (SHAP summed per cause) is the
    truth's dominant cause (the cause lifting the resident most above the community's average,
    the footing of SHAP, which explains a score's deviation from the average score); against
    always naming the cause most common among high-band training rows, and against the best
    constant explanation: with one cause per feature, naming one feature for everyone names one
    cause, so the best constant is the cause most common among the high-band test rows themselves
    (chosen on the rows it is scored on, so it flatters the constant side). The truth's largest
    absolute term (`cause_absolute`, when the twin records it) is scored beside it. With `boot`,
    95% intervals from resampling residents: of the rate, and paired, of its margin over each
    comparison (the best constant chosen again on every draw)."""
    names = loaded.feature_names
    cols = ["resident_id", "date", "cause"] + [c for c in ("cause_absolute",) if c in causes.columns]
    truth = causes.loc[causes["model"] == spec.name, cols].copy()
    truth["resident_id"] = truth["resident_id"].astype(str)
    truth = truth.rename(columns={"date": "as_of_date"})

    def high_rows(frame: pd.DataFrame) -> pd.DataFrame:
        p = spec.predict_proba(loaded, frame)
        rows = frame.loc[spec.bands.bands(p) == "high"].copy()
        rows["resident_id"] = rows["resident_id"].astype(str)
        return rows.merge(truth, how="left", on=["resident_id", "as_of_date"])

    tr, te = high_rows(train), high_rows(test)
    te = te[te["cause"].notna()].reset_index(drop=True)
    if te.empty:
        return {"rows": 0}
    served = spec.explain(loaded, te, k=1, likely=True)  # the served path: reasons and per-cause attributions
    named = served.leading_cause()
    top1 = [names[served.top_features[i, 0]] if served.top_contributions[i, 0] == served.top_contributions[i, 0]
            else None for i in range(len(te))]
    cause = te["cause"].to_numpy()
    common = tr["cause"].mode().iloc[0] if tr["cause"].notna().any() else pd.Series(cause).mode().iloc[0]
    best = pd.Series(cause).mode().iloc[0]
    out = {
        "rows": int(len(te)),
        "per_cause_attribution": float(np.mean(named == cause)),
        "top1_reason_cause_right": float(np.mean([f is not None and c in _causes_of(f)
                                                  for f, c in zip(top1, cause, strict=True)])),
        "most_common_cause": common,
        "most_common_cause_rate": float(np.mean(cause == common)),
        "best_constant_cause": best,
        "best_constant_rate": float(np.mean(cause == best)),
        "truth_causes": pd.Series(cause).value_counts(normalize=True).round(3).to_dict(),
        "per_cause_right": {c: round(float(np.mean(named[cause == c] == c)), 3) for c in sorted(set(cause))},
        "named_causes": pd.Series(named).value_counts(normalize=True).round(3).to_dict(),
    }
    out["over_most_common"] = out["per_cause_attribution"] - out["most_common_cause_rate"]
    out["over_best_constant"] = out["per_cause_attribution"] - out["best_constant_rate"]
    out.update(_attribution_intervals(te["resident_id"].to_numpy(), named, cause, common, boot, seed))
    if served.likely_causes is not None:  # the cause reader's likely cause, as the service names it first
        likely = served.likely_causes
        reader = {"right": float(np.mean(likely == cause)), "learned_from": loaded.cause_reader.trained_on.get("history"),
                  "mean_probability": float(np.mean(served.likely_probability)),
                  "per_cause_right": {c: round(float(np.mean(likely[cause == c] == c)), 3) for c in sorted(set(cause))}}
        reader["over_most_common"] = reader["right"] - out["most_common_cause_rate"]
        reader["over_best_constant"] = reader["right"] - out["best_constant_rate"]
        ci = _attribution_intervals(te["resident_id"].to_numpy(), likely, cause, common, boot, seed)
        reader.update({k.replace("per_cause_attribution", "right"): v for k, v in ci.items()})
        out["cause_reader"] = reader
    tr = tr[tr["cause"].notna()].reset_index(drop=True)
    out["evidence_ceiling"] = evidence_ceiling(spec, loaded, tr, te, served, seed)
    if "cause_absolute" in te.columns:
        absolute = te["cause_absolute"].to_numpy()
        out["per_cause_attribution_vs_absolute"] = float(np.mean(named == absolute))
        out["best_constant_rate_vs_absolute"] = float(pd.Series(absolute).value_counts(normalize=True).iloc[0])
    return out


def evidence_ceiling(spec, loaded, tr: pd.DataFrame, te: pd.DataFrame, served, seed: int) -> dict:
    """How much of the truth's dominant cause the evidence holds, as the knowable ceiling says how
    much of the label it holds: classifiers trained on the truth of the high-band training rows,
    scored on the high-band test rows, reading (a) the model's per-cause attributions (the SHAP
    sums the service serves) or (b) the model's features. Not a naming the service could use:
    outside a twin no truth of causes exists to train one on."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if tr["cause"].nunique() < 2 or len(tr) < 50:
        return {"rows_train": int(len(tr)), "note": "too few high-band training rows with two causes"}
    y_tr, y_te = tr["cause"].to_numpy(), te["cause"].to_numpy()
    a_tr, a_te = spec.explain(loaded, tr, k=1).cause_contributions, served.cause_contributions
    names = loaded.feature_names
    x_tr, x_te = tr[names].to_numpy(float), te[names].to_numpy(float)
    right = {}
    for key, clf, (fit, score) in (
            ("attributions_linear", LogisticRegression(max_iter=2000), (a_tr, a_te)),
            ("attributions_trees", HistGradientBoostingClassifier(learning_rate=0.05, random_state=seed), (a_tr, a_te)),
            ("features_trees", HistGradientBoostingClassifier(learning_rate=0.05, random_state=seed), (x_tr, x_te))):
        right[key] = float(np.mean(clf.fit(fit, y_tr).predict(score) == y_te))
    return {"rows_train": int(len(tr)), **right}


def _attribution_intervals(residents: np.ndarray, named: np.ndarray, cause: np.ndarray, common: str,
                           boot: int, seed: int) -> dict:
    if boot <= 0:
        return {}
    from training.evaluate import resident_draws

    levels, cause_codes = np.unique(cause, return_inverse=True)
    right, is_common = (named == cause).astype(float), (cause == common).astype(float)
    draws = []
    for w in resident_draws(residents, boot, seed):
        rate = np.average(right, weights=w)
        best = np.bincount(cause_codes, weights=w, minlength=len(levels)).max() / w.sum()
        draws.append((rate, rate - np.average(is_common, weights=w), rate - best))
    lo, hi = np.quantile(np.array(draws), [0.025, 0.975], axis=0)
    keys = ("per_cause_attribution", "over_most_common", "over_best_constant")
    return {**{f"{k}_lo": float(v) for k, v in zip(keys, lo, strict=True)},
            **{f"{k}_hi": float(v) for k, v in zip(keys, hi, strict=True)}}


def _causes_of(feature: str) -> tuple[str, ...]:
    from features.registry import get_feature

    return get_feature(feature).causes


def risk_cell(spec, history, history_dir: Path, causes: pd.DataFrame | None, boot: int, seed: int,
              booster_seed: int | None = None, reader=None) -> dict:
    from models.base import BoosterParams
    from training import evaluate as ev
    from training.config import SplitConfig
    from training.data import risk_dataset
    from training.risk import fit_risk
    from twin.truth import knowable_risk, path_oracle

    t = time.perf_counter()
    ds = risk_dataset(spec.name, history, SplitConfig())
    res = fit_risk(ds, BoosterParams(seed=seed if booster_seed is None else booster_seed))
    res.loaded.cause_reader = reader  # a reader learned on another twin (--cause-twin), as a real community's
    test = ds.part("test")
    y = test["label"].to_numpy(int)
    scores = {"model": res.test_scores["model"].to_numpy()}
    for b in spec.baselines:
        scores[b.name] = res.test_scores[b.name].to_numpy()
    for kind, fn in (("ceiling_knowable", knowable_risk), ("ceiling_path_oracle", path_oracle)):
        s = fn(history_dir, spec.name, test)
        if s is not None and np.isfinite(s).all():
            scores[kind] = s
    first = spec.baselines[0].name
    cis = ev.resident_bootstrap(test["resident_id"].to_numpy(), y, scores, reference=first, n_boot=boot, seed=seed)
    # the model against its knowable ceiling, paired on the same draws
    if "ceiling_knowable" in scores:
        gap = ev.resident_bootstrap(test["resident_id"].to_numpy(), y,
                                    {"ceiling_knowable": scores["ceiling_knowable"], "model": scores["model"]},
                                    reference="ceiling_knowable", n_boot=boot, seed=seed)["model"]
        cis["model_minus_knowable_ceiling"] = {k.replace("gain", "diff"): v for k, v in gap.items() if "gain" in k}
    out = {
        "test_window": [str(test["as_of_date"].min().date()), str(test["as_of_date"].max().date())],
        "rows_test": int(len(test)), "residents_test": int(test["resident_id"].nunique()),
        "prevalence": float(y.mean()), "scores": cis,
        "recall_at_capacity": {"model": res.metrics["model"]["recall_at_capacity"],
                               **{b.name: res.metrics[b.name]["recall_at_capacity"] for b in spec.baselines}},
    }
    if causes is not None:
        out["explanation"] = cause_attribution(spec, res.loaded, test, ds.part("train"), causes, boot, seed)
    out["seconds"] = round(time.perf_counter() - t, 1)
    return out


def demand_cell(history_dir: Path, end, seed: int) -> dict:
    """The backtest on the twin's daily counts, and on the same counts logged in weekly batches."""
    from training.backtest import rolling_origin
    from training.train import history_counts
    from twin.batch_logging import batch_logged

    counts = history_counts(history_dir)
    counts = counts[pd.to_datetime(counts["date"]) < end]
    out = {}
    for kind, table in (("daily_logged", counts), ("batch_logged", batch_logged(counts, seed=seed))):
        t = time.perf_counter()
        m, _ = rolling_origin(table)
        out[kind] = {"wape": m["wape"], "wape_naive": m["wape_naive"], "coverage": m["coverage"], **m["simple"],
                     "seconds": round(time.perf_counter() - t, 1)}
    return out


def merge(paths: list[Path]) -> dict:
    """One result from runs of single seeds (run side by side)."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    out = {"config": {**runs[0]["config"], "seeds": [s for r in runs for s in r["config"]["seeds"]]},
           "machine": runs[0]["machine"], "cells": [c for r in runs for c in r["cells"]],
           "seconds_per_run": [r.get("seconds") for r in runs]}
    if runs[0].get("cause_readers"):  # each run learns the same readers from the same twin
        out["cause_readers"] = runs[0]["cause_readers"]
    return out


def _ci(s: dict, key: str, digits: int = 3) -> str:
    if s.get(key) is None:
        return "-"
    lo, hi = s.get(f"{key}_lo"), s.get(f"{key}_hi")
    return f"{s[key]:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None else f"{s[key]:.{digits}f}"


def table(result: dict) -> str:
    """The README table: one line per seed x window x model."""
    lines = ["| seed | window | model | AUROC [95% CI] | gain over baseline | knowable ceiling | model - ceiling "
             "| path oracle | Brier | largest SHAP sum right (most common / best constant) | right - best constant "
             "| likely cause right (reader from another twin) | reader - best constant "
             "| cause the evidence holds: attributions / features |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    kept = {name: g.get("reader_kept") for name, g in (result.get("cause_readers") or {}).items()}
    for c in result["cells"]:
        for name, m in c["models"].items():
            sc = m["scores"]
            e = m.get("explanation") or {}
            expl = (f"{_ci(e, 'per_cause_attribution', 2)} ({e['most_common_cause_rate']:.2f} / "
                    f"{e['best_constant_rate']:.2f}), n={e['rows']}") if e.get("rows") else "-"
            lines.append(
                f"| {c['seed']} | {c['window']} ({m['test_window'][0]}) | {name} | {_ci(sc['model'], 'auroc')} | "
                f"{_ci(sc['model'], 'auroc_gain')} | {_ci(sc.get('ceiling_knowable', {}), 'auroc')} | "
                f"{_ci(sc.get('model_minus_knowable_ceiling', {}), 'auroc_diff')} | "
                f"{_ci(sc.get('ceiling_path_oracle', {}), 'auroc')} | {_ci(sc['model'], 'brier', 4)} | {expl} | "
                f"{_ci(e, 'over_best_constant', 2) if e.get('rows') else '-'} | {_reader(e, 'right', kept.get(name))} | "
                f"{_reader(e, 'over_best_constant')} | {_evidence(e)} |")
    lines += ["", "| seed | window | counts | weekly WAPE model | best simple | model / best simple "
              "| daily WAPE model | daily best simple | naive worse than zero |", "|---|---|---|---|---|---|---|---|---|"]
    for c in result["cells"]:
        for kind, d in (c.get("demand") or {}).items():
            w, dd = d["weekly"], d["daily"]
            lines.append(f"| {c['seed']} | {c['window']} | {kind} | {w['wape_model']:.3f} | {w['best_simple']} "
                         f"{w['wape_best_simple']:.3f} | {w['model_over_best_simple']:.3f} | {dd['wape_model']:.3f} "
                         f"| {dd['best_simple']} {dd['wape_best_simple']:.3f} | {dd['naive_worse_than_zero']} |")
    return "\n".join(lines)


def _reader(e: dict, key: str, kept: bool | None = None) -> str:
    r = e.get("cause_reader")
    return (_ci(r, key, 2) + (" (not served)" if kept is False else "")) if r else "-"


def _evidence(e: dict) -> str:
    ev = e.get("evidence_ceiling") or {}
    if "features_trees" not in ev:
        return "-"
    return f"{max(ev['attributions_linear'], ev['attributions_trees']):.2f} / {ev['features_trees']:.2f}"


def add_twin_args(ap: argparse.ArgumentParser) -> None:
    """The twins and test windows a quality benchmark runs on (shared with bench_isolation_mark)."""
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    ap.add_argument("--windows", type=int, default=2)
    ap.add_argument("--residents", type=int, default=2000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench-quality"))


def twin_windows(args: argparse.Namespace):
    """(seed, twin directory, k, history end) for every seed and test window; a twin missing from
    the workdir is simulated first."""
    from dataclasses import replace

    from twin.dynamics import SimConfig
    from twin.simulate import simulate

    knobs = dict(kv.split("=", 1) for kv in (getattr(args, "sim", None) or []))
    config = replace(SimConfig(), **{k: type(getattr(SimConfig(), k))(v) for k, v in knobs.items()}) if knobs else None
    suffix = "".join(f"-{k}={v}" for k, v in sorted(knobs.items()))
    for seed in args.seeds:
        twin = args.workdir / f"twin-{args.residents}x{args.days}-s{seed}{suffix}"
        if not (twin / "manifest.json").exists():
            simulate(args.residents, args.days, seed, twin, config=config)
        last = pd.Timestamp(json.loads((twin / "manifest.json").read_text())["end"]) + pd.Timedelta(days=1)
        if getattr(args, "scenario", None):  # the drift over the latest test window; the one before is a control
            from twin.scenarios import apply_scenario

            drifted = args.workdir / f"{twin.name}-{args.scenario}"
            if not (drifted / "manifest.json").exists():
                apply_scenario(twin, drifted, args.scenario, last - pd.Timedelta(weeks=WINDOW_WEEKS))
            twin = drifted
        for k in range(args.windows):
            yield seed, twin, k, last - pd.Timedelta(weeks=WINDOW_WEEKS * k)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_twin_args(ap)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--no-demand", action="store_true")
    ap.add_argument("--booster-seed", type=int, default=None,
                    help="LightGBM's own seed (default: the twin's), to see a figure hold over it")
    ap.add_argument("--out", type=Path, default=RESULT)
    ap.add_argument("--sim", nargs="*", default=[], metavar="KNOB=VALUE",
                    help="simulate the seeds' twins with these SimConfig knobs changed (e.g. lhr_dementia=0.26): "
                         "a community whose mechanisms differ from the cause readers' twin")
    ap.add_argument("--scenario", default=None,
                    help="plant this drift (twin.scenarios) in each seed's twin over the latest test window "
                         "(window 1, before it, is the control), e.g. gait_sensor_offset")
    ap.add_argument("--cause-twin", type=Path, default=None,
                    help="a twin history whose planted causes teach each model's cause reader, scored on the "
                         "seeds' twins as a real community's would be (default: no reader)")
    ap.add_argument("--merge", type=Path, nargs="+", help="join single-seed results into --out and print the table")
    args = ap.parse_args(argv)
    if args.merge:
        result = merge(args.merge)
        args.out.write_text(json.dumps(result, indent=2, default=str))
        print(table(result))
        return result

    from features.pipeline import load_history
    from models.registry import risk_specs
    from training.data import risk_dataset
    from training.risk import read_causes

    t0 = time.perf_counter()
    result: dict = {"config": {"seeds": args.seeds, "windows": args.windows, "residents": args.residents,
                               "days": args.days, "window_weeks": WINDOW_WEEKS, "bootstrap": args.boot,
                               "booster_seed": args.booster_seed, "scenario": args.scenario, "sim": args.sim},
                    "machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()[0]},
                    "cells": []}
    causes: dict = {}
    readers: dict = {}
    if args.cause_twin is not None:
        from models.base import BoosterParams
        from training.config import SplitConfig
        from training.risk import fit_risk, reader_from_twin

        for name in risk_specs():
            t = time.perf_counter()
            # the reference twin's own model, to judge the reader on that twin's held-out rows as
            # `twincare train --cause-twin` does (the gate: does it beat the largest SHAP sum?)
            own = fit_risk(risk_dataset(name, load_history(args.cause_twin), SplitConfig()), BoosterParams()).loaded
            readers[name], gate = reader_from_twin(own, args.cause_twin, SplitConfig())
            result.setdefault("cause_readers", {})[name] = {**gate, "trained_on": readers[name].trained_on}
            print(f"{name}: cause reader from {args.cause_twin} in {time.perf_counter() - t:.0f}s: "
                  f"{json.dumps({k: v for k, v in gate.items() if k != 'note'})}", flush=True)
        result["config"]["cause_twin"] = str(args.cause_twin)
    for seed, twin, k, end in twin_windows(args):
        if seed not in causes:
            causes[seed] = read_causes(twin)
        history = load_history(twin, end=end)
        cell = {"seed": seed, "window": k, "history_end": str(end.date()), "models": {}}
        for name, spec in risk_specs().items():
            cell["models"][name] = risk_cell(spec, history, twin, causes[seed], args.boot, seed, args.booster_seed,
                                             readers.get(name))
            print(f"seed {seed} window {k} {name}: {json.dumps(cell['models'][name]['scores']['model'])}",
                  flush=True)
        if not args.no_demand:
            cell["demand"] = demand_cell(twin, end, seed)
        result["cells"].append(cell)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["machine"]["load_avg_at_end"] = os.getloadavg()[0]
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {args.out} in {result['seconds']}s")
    return result


if __name__ == "__main__":
    main()
