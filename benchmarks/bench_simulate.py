"""Simulator speed and memory: the default twin and a large community.

    python -m benchmarks.bench_simulate [--skip-big] [--big-residents 50000] [--big-days 365]

Each case runs in its own process (so peak memory is that case's alone) and is timed in two
phases: the day loop, then turning arrays into tables and writing them (validated Parquet). Peak
resident memory comes from `resource.getrusage`, taken before the default twin's calibration
report (also recorded). Results go to benchmarks/results/simulate.json.
Goals (issue 2): the default twin (2,000 x 730) under 2 minutes; 50,000 x 365 within memory.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

RESULT = Path(__file__).parent / "results" / "simulate.json"


def _case(residents: int, days: int, seed: int, with_calibration: bool, queue) -> None:
    from twin.calibrate import calibrate
    from twin.simulate import simulate

    out = Path(tempfile.mkdtemp(prefix="bench_simulate_")) / "history"
    marks: dict[str, float] = {}
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done == total:
            marks["loop_s"] = time.perf_counter() - t0

    try:
        simulate(residents, days, seed, out, progress=progress)
        total = time.perf_counter() - t0
        manifest = json.loads((out / "manifest.json").read_text())
        size = sum(p.stat().st_size for p in out.rglob("*.parquet"))
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        calibration = None
        if with_calibration:
            t1 = time.perf_counter()
            report = calibrate(out)
            calibration = {
                "seconds": round(time.perf_counter() - t1, 2),
                "all_ok": all(m["ok"] for m in report.values()),
                "figures": {
                    k: {"measured": m["measured"], "band": m["band"], "ok": m["ok"]}
                    for k, m in report.items()
                },
            }
        queue.put(
            {
                "twin_id": manifest["twin_id"],
                "residents": residents,
                "days": days,
                "seed": seed,
                "wall_s": round(total, 2),
                "day_loop_s": round(marks.get("loop_s", float("nan")), 2),
                "tables_and_write_s": round(total - marks.get("loop_s", 0.0), 2),
                "peak_rss_mib": round(peak_kib / 1024, 1),
                "parquet_mib": round(size / 2**20, 1),
                "rows": manifest["rows"],
                "resident_days_per_s": round(residents * days / total),
                "calibration": calibration,
            }
        )
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def run_case(residents: int, days: int, seed: int = 7, with_calibration: bool = False) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_case, args=(residents, days, seed, with_calibration, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-big", action="store_true", help="only the default twin")
    ap.add_argument("--big-residents", type=int, default=50_000)
    ap.add_argument("--big-days", type=int, default=365)
    args = ap.parse_args(argv)

    cases = {"default_2000x730": run_case(2000, 730, with_calibration=True)}
    if not args.skip_big:
        cases[f"big_{args.big_residents}x{args.big_days}"] = run_case(
            args.big_residents, args.big_days
        )
    default = cases["default_2000x730"]
    result = {
        "benchmark": "simulate",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "cases": cases,
        "goals": {
            "default_under_120s": default["wall_s"] < 120,
            "big_completed": len(cases) > 1,
        },
    }
    if len(cases) > 1:
        big = next(v for k, v in cases.items() if k.startswith("big_"))
        result["ratios"] = {
            "big_over_default_wall": round(big["wall_s"] / default["wall_s"], 2),
            "big_over_default_resident_days": round(
                big["residents"] * big["days"] / (default["residents"] * default["days"]), 2
            ),
        }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
