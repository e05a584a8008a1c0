"""What-if speed: one forward run (policy x seed) of the default twin, and how it grows.

    python -m benchmarks.bench_whatif --history DIR --tracking-uri URI [--runs CHECKPOINT.jsonl]
        [--residents 500,1000] [--weeks 4,8,16]

- per policy: seconds of a 2,000-resident x 26-week run and where they go (engine days,
  features as of each week, scoring, the rest of planning and claims), from the experiment's
  checkpoint (`twincare whatif --checkpoint`) when given, else one seed run here;
- growth with weeks: `none` and `model` on the default twin for each of `--weeks`;
- growth with residents: twins of each of `--residents` (730 days, seed 7, simulated here),
  `none` and `model` for 8 weeks, scored with the default twin's champions.
Also the one-off cost of preparing (replaying the recorded history, loading champions, fitting
baselines). Results go to benchmarks/results/whatif.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

RESULT = Path(__file__).parent / "results" / "whatif.json"


def _timed_runs(history: Path, uri: str, weeks: int, policies: tuple[str, ...], seed: int = 1) -> dict:
    from training.whatif import WhatIfConfig, prepare, run_policy

    cfg = WhatIfConfig(weeks=weeks, seeds=1, policies=policies)
    t0 = time.perf_counter()
    ctx = prepare(history, cfg, uri)
    out = {"prepare_s": round(time.perf_counter() - t0, 2), "residents": ctx.twin.engine.cfg.residents, "weeks": weeks,
           "runs": {}}
    for p in policies:
        t = time.perf_counter()
        r = run_policy(ctx, p, seed)
        out["runs"][p] = {"seconds": round(time.perf_counter() - t, 2),
                          "parts": {k: round(v, 2) for k, v in r.seconds.items()}}
    return out


def _from_checkpoint(path: Path) -> dict:
    import numpy as np

    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by: dict[str, list] = {}
    for r in runs:
        by.setdefault(r["policy"], []).append(r["seconds"])
    out = {}
    for p, secs in by.items():
        total = [sum(s.values()) for s in secs]  # parts do not overlap
        parts = {k: round(float(np.mean([s[k] for s in secs])), 2) for k in secs[0]}
        out[p] = {"runs": len(secs), "seconds_mean": round(float(np.mean(total)), 2),
                  "seconds_min": round(float(np.min(total)), 2), "parts_mean": parts}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", type=Path, required=True)
    ap.add_argument("--tracking-uri", required=True)
    ap.add_argument("--runs", type=Path, help="checkpoint of the 26-week experiment")
    ap.add_argument("--residents", default="500,1000")
    ap.add_argument("--weeks", default="4,8,16")
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args()
    from twin.simulate import simulate

    result: dict = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_start": list(os.getloadavg())},
        "what": "seconds of one forward what-if run (one policy, one seed)",
    }
    if args.runs and args.runs.exists():
        result["default_twin_26_weeks"] = {"source": str(args.runs), "by_policy": _from_checkpoint(args.runs)}
    else:
        result["default_twin_26_weeks"] = _timed_runs(args.history, args.tracking_uri, 26,
                                                      ("none", "random", "baseline", "model", "actions", "oracle"))
    growth_weeks = {}
    for w in [int(x) for x in args.weeks.split(",") if x]:
        growth_weeks[str(w)] = _timed_runs(args.history, args.tracking_uri, w, ("none", "model"))
    result["growth_with_weeks"] = growth_weeks
    growth_res = {}
    with tempfile.TemporaryDirectory(prefix="bench_whatif_") as tmp:
        for n in [int(x) for x in args.residents.split(",") if x]:
            h = simulate(n, 730, 7, Path(tmp) / f"h{n}")
            growth_res[str(n)] = _timed_runs(h, args.tracking_uri, 8, ("none", "model"))
    growth_res["2000"] = growth_weeks.get("8") or _timed_runs(args.history, args.tracking_uri, 8, ("none", "model"))
    result["growth_with_residents_8_weeks"] = growth_res
    result["machine"]["load_average_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
