"""Training time per model on the default twin, with the quality figures of the same run.

    python -m benchmarks.bench_train [--history DIR] [--residents 2000] [--days 730] [--seed 7]
                                     [--workdir DIR] [--engine pandas|dask]

Simulates the twin when DIR has none, then trains, evaluates and registers each model (fall
risk, isolation, demand) into a fresh SQLite-backed MLflow store, and promotes each through the
gate. Reports wall-clock seconds per stage and per model, the ratio of fitting time to feature
building time, and the headline metrics, as JSON in benchmarks/results/train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

RESULT = Path(__file__).parent / "results" / "train.json"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", type=Path, default=Path("/tmp/twin-default"))
    ap.add_argument("--residents", type=int, default=2000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--engine", choices=("pandas", "dask"), default="pandas")
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args(argv)

    from models.registry import default_tracking_uri
    from training.config import TrainParams
    from training.promote import promote
    from training.train import json_ready, train

    if not (args.history / "manifest.json").exists():
        from twin.simulate import simulate

        t = time.perf_counter()
        simulate(args.residents, args.days, args.seed, args.history)
        print(f"simulated {args.history} in {time.perf_counter() - t:.1f}s")
    manifest = json.loads((args.history / "manifest.json").read_text())
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-train-"))
    if (workdir / "mlflow.db").exists():
        shutil.rmtree(workdir)
    uri = default_tracking_uri(workdir)
    params = TrainParams()
    result: dict = {
        "twin": {k: manifest.get(k) for k in ("twin_id", "residents", "days", "seed", "start", "end")},
        "engine": args.engine,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_at_start": os.getloadavg()[0]},
        "models": {},
    }
    for name in ("fall_risk", "isolation", "demand"):
        t = time.perf_counter()
        summary = train(name, args.history, uri, params, engine=args.engine)
        wall = time.perf_counter() - t
        t = time.perf_counter()
        decision = promote(name, uri, summary.version, str(args.history), params)
        gate = time.perf_counter() - t
        entry = summary.headline()
        entry["seconds"]["train_wall"] = round(wall, 2)
        entry["seconds"]["promote_wall"] = round(gate, 2)
        if "features" in summary.seconds and summary.seconds["features"] > 0:
            entry["fit_over_features"] = round(summary.seconds["fit"] / summary.seconds["features"], 3)
        entry["promoted"] = decision.promoted
        entry["promotion_reasons"] = decision.reasons
        result["models"][name] = entry
        print(f"{name}: train {wall:.1f}s, promote {gate:.1f}s, promoted={decision.promoted}")
    result["machine"]["load_avg_at_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(json_ready(result), indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
