"""The monitor: its run time on the default twin, and what it sees on planted drifts.

    python -m benchmarks.bench_monitor [--history DIR] [--residents 2000] [--days 730] [--seed 7]
        -> benchmarks/results/monitor.json: seconds per stage of `twincare monitor` over every
           champion (median of --repeats runs), logging included, and the verdicts.

    python -m benchmarks.bench_monitor --drift [--seeds 1 2 3 4 5] [--residents 2000] [--days 730]
        -> benchmarks/results/monitor_drift.json: per seed, champions trained on the clean twin;
           each planted drift (twin.scenarios) starts 28 days before the end of the history and
           the monitor is run 7 days before it (control), and 7 and 14 days after it; the clean
           twin is monitored at the same three dates. Records each verdict with the tests that
           fired, and the label-free AUROC estimate against the realised one on the test window.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SCENARIO_LEAD_DAYS = 28  # a drift starts this many days before the end of the history


def _twin(path: Path, residents: int, days: int, seed: int) -> Path:
    if not (path / "manifest.json").exists():
        from twin.simulate import simulate

        t = time.perf_counter()
        simulate(residents, days, seed, path)
        print(f"simulated {path} in {time.perf_counter() - t:.1f}s")
    return path


def _train_all(history: Path, workdir: Path) -> tuple[str, dict]:
    from models.registry import default_tracking_uri
    from training.retrain import retrain

    if workdir.exists():
        shutil.rmtree(workdir)
    uri = default_tracking_uri(workdir)
    t = time.perf_counter()
    out = retrain(history, uri, echo=lambda _: None)
    return uri, {"seconds": round(time.perf_counter() - t, 1),
                 "promoted": {n: o["promoted"] for n, o in out.items()}}


def _champions_everywhere(uri: str) -> None:
    """A model the gate kept as challenger is still monitored: the latest version becomes champion."""
    from models.registry import SPECS
    from training.tracking import CHAMPION, alias_version, latest_version, set_alias

    for name in SPECS:
        if alias_version(uri, name, CHAMPION) is None:
            set_alias(uri, name, CHAMPION, latest_version(uri, name))


def _verdicts(result) -> dict:
    out = {}
    for n, m in result.models.items():
        out[n] = {"verdict": m["verdict"], "fired": m.get("fired", [])}
        if m.get("kind") == "risk":
            fd = m["feature_drift"]
            out[n]["top_psi"] = {r["feature"]: round(r["psi"], 3) for r in fd["per_feature"][:3]}
            out[n]["importance_major"] = round(fd["importance_major"], 3)
            out[n]["prediction_psi"] = round(m["prediction_drift"]["psi"], 3)
            out[n]["estimated_auroc_drop"] = round(m["estimated"]["auroc_drop"], 4)
        elif m.get("kind") == "forecast":
            out[n].update({k: round(m["current"][k], 3) for k in ("wape", "wape_naive", "bias", "coverage")})
            out[n]["wape_ratio"] = round(m["wape_ratio"], 3)
            out[n]["new_series_share"] = round(m["new_series_share"], 3)
    return out


def run_time(args) -> dict:
    from training.monitor import monitor
    from training.monitor_report import log_monitor, render_html
    from training.train import json_ready

    history = _twin(args.history, args.residents, args.days, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    uri, trained = _train_all(history, workdir / "home")
    _champions_everywhere(uri)
    runs, last = [], None
    for _ in range(args.repeats):
        t = time.perf_counter()
        last = monitor(uri, str(history))
        mid = time.perf_counter()
        render_html(last)
        log_monitor(last, uri)
        runs.append({"monitor": mid - t, "report_and_logging": time.perf_counter() - mid,
                     "total": time.perf_counter() - t, **{f"stage_{k}": v for k, v in last.seconds.items()}})
    keys = runs[0].keys()
    result = {
        "command": "python -m benchmarks.bench_monitor",
        "twin": {"residents": args.residents, "days": args.days, "seed": args.seed, "history": str(history)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_at_start": os.getloadavg()[0]},
        "training": trained,
        "repeats": args.repeats,
        "seconds_median": {k: statistics.median(r[k] for r in runs) for k in keys},
        "seconds_min": {k: min(r[k] for r in runs) for k in keys},
        "seconds_max": {k: max(r[k] for r in runs) for k in keys},
        "verdicts": _verdicts(last),
        "test_window_check": {n: m["test_window_check"] for n, m in last.models.items() if m.get("kind") == "risk"},
    }
    result["machine"]["load_avg_at_end"] = os.getloadavg()[0]
    shutil.rmtree(workdir, ignore_errors=True)
    out = args.out or RESULTS / "monitor.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(json_ready(result), indent=2))
    print(json.dumps(json_ready({k: result[k] for k in ("seconds_median", "verdicts")}), indent=2))
    print(f"wrote {out}")
    return result


def drift(args) -> dict:
    import pandas as pd

    from training.monitor import default_as_of, monitor
    from training.train import json_ready
    from twin.scenarios import SCENARIOS, ScenarioKnobs, apply_scenario

    root = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    per_seed = {}
    t_all = time.perf_counter()
    for seed in args.seeds:
        t_seed = time.perf_counter()
        clean = _twin(root / f"twin-{seed}", args.residents, args.days, seed)
        uri, trained = _train_all(clean, root / f"home-{seed}")
        _champions_everywhere(uri)
        end = default_as_of(clean)  # the day after the last recorded day
        start = end - pd.Timedelta(days=SCENARIO_LEAD_DAYS)
        checks = {"before_start_minus_7": start - pd.Timedelta(days=7),
                  "start_plus_7": start + pd.Timedelta(days=7),
                  "start_plus_14": start + pd.Timedelta(days=14)}
        seed_out: dict = {"training": trained, "drift_start": str(start.date()), "stable": {}, "scenarios": {}}
        for label, as_of in checks.items():
            r = monitor(uri, str(clean), as_of)
            seed_out["stable"][label] = _verdicts(r)
            if label == "start_plus_14":
                seed_out["test_window_check"] = {n: m["test_window_check"] for n, m in r.models.items()
                                                 if m.get("kind") == "risk"}
        for scenario in SCENARIOS:
            drifted = apply_scenario(clean, root / f"{scenario}-{seed}", scenario, start, ScenarioKnobs(seed=seed))
            seed_out["scenarios"][scenario] = {
                label: _verdicts(monitor(uri, str(drifted), as_of)) for label, as_of in checks.items()}
            shutil.rmtree(drifted, ignore_errors=True)
        seed_out["seconds"] = round(time.perf_counter() - t_seed, 1)
        per_seed[str(seed)] = seed_out
        print(f"seed {seed}: {seed_out['seconds']}s", json.dumps(json_ready(
            {s: {k: {n: v['verdict'] for n, v in d.items()} for k, d in c.items()}
             for s, c in seed_out["scenarios"].items()})))

    summary = _drift_summary(per_seed)
    result = {
        "command": "python -m benchmarks.bench_monitor --drift --seeds " + " ".join(map(str, args.seeds)),
        "twin": {"residents": args.residents, "days": args.days, "seeds": args.seeds,
                 "drift_starts_days_before_end": SCENARIO_LEAD_DAYS},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seconds": round(time.perf_counter() - t_all, 1),
        "summary": summary,
        "per_seed": per_seed,
    }
    out = args.out or RESULTS / "monitor_drift.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(json_ready(result), indent=2))
    print(json.dumps(json_ready(summary), indent=2))
    print(f"wrote {out}")
    shutil.rmtree(root, ignore_errors=True)
    return result


def _drift_summary(per_seed: dict) -> dict:
    """Detection per scenario (any model not ok by 7 / 14 days after the start), which tests
    fired, false alarms before the start and on the clean twin, and the CBPE check."""
    import numpy as np

    def flagged(v: dict) -> bool:
        return any(m["verdict"] != "ok" for m in v.values())

    out: dict = {"scenarios": {}, "stable": {}, "test_window_check": {}}
    scenarios = next(iter(per_seed.values()))["scenarios"].keys()
    for s in scenarios:
        rows = [seed["scenarios"][s] for seed in per_seed.values()]
        fired: dict[str, int] = {}
        for r in rows:
            for label in ("start_plus_7", "start_plus_14"):
                for name, m in r[label].items():
                    for f in m["fired"]:
                        fired[f"{name}/{f}"] = fired.get(f"{name}/{f}", 0) + 1
        out["scenarios"][s] = {
            "seeds": len(rows),
            "flagged_by_day_7": sum(flagged(r["start_plus_7"]) for r in rows),
            "flagged_by_day_14": sum(flagged(r["start_plus_7"]) or flagged(r["start_plus_14"]) for r in rows),
            "retrain_by_day_14": sum(any(m["verdict"] == "retrain" for lab in ("start_plus_7", "start_plus_14")
                                         for m in r[lab].values()) for r in rows),
            "flagged_before_start": sum(flagged(r["before_start_minus_7"]) for r in rows),
            "tests_fired_after_start": dict(sorted(fired.items(), key=lambda kv: -kv[1])),
        }
    stable = [seed["stable"] for seed in per_seed.values()]
    checks = [c for s in stable for c in s.values()]
    out["stable"] = {
        "monitor_runs": len(checks),
        "retrain_verdicts": sum(m["verdict"] == "retrain" for c in checks for m in c.values()),
        "watch_verdicts": sum(m["verdict"] == "watch" for c in checks for m in c.values()),
        "tests_fired": sorted({f"{n}/{f}" for c in checks for n, m in c.items() for f in m["fired"]}),
    }
    for name in next(iter(per_seed.values())).get("test_window_check", {}):
        diffs = [seed["test_window_check"][name]["difference"] for seed in per_seed.values()
                 if seed.get("test_window_check", {}).get(name, {}).get("difference") is not None]
        if diffs:
            d = np.asarray(diffs, float)
            out["test_window_check"][name] = {
                "estimated_minus_realised_auroc": [round(float(x), 4) for x in d],
                "mean": float(d.mean()), "sd": float(d.std(ddof=1)) if len(d) > 1 else None,
                "max_abs": float(np.abs(d).max()), "within_0.03": int((np.abs(d) <= 0.03).sum()),
            }
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", type=Path, default=Path("/tmp/twin-default"))
    ap.add_argument("--residents", type=int, default=2000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--drift", action="store_true", help="the planted-drift and stable-seed experiment")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    return drift(args) if args.drift else run_time(args)


if __name__ == "__main__":
    main()
