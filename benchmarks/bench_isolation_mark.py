"""How far isolation's AUROC can go on what the records tell: a rough mark, not a bound.

    python -m benchmarks.bench_isolation_mark [--seeds 11 12 13] [--windows 2] [--residents 2000]
                                              [--days 730] [--workdir /tmp/bench-quality] [--draws 5]

The knowable ceiling of `twin/truth.py` knows each resident's latent loneliness on the as-of date,
including its day-to-day drift around the resident's own level, which no record shows unless a
score was taken that week. In the twin the latent moves by `L += 0.03 (target - L) + N(0, 0.06)` a
day (`twin/engine.py`), so the drift has a stationary SD of 0.06 / sqrt(1 - 0.97^2) = 0.25 in the
latent's units and about a month's memory. The mark is the AUROC of the latent value with that
much noise added, averaged over draws: what an observer would reach who knew the level exactly but
not the drift. It adds noise to the latent rather than taking the drift off the level, so a model
can reach it where a recent score tells part of the drift. Same twins, windows and test rows as
`bench_quality` (the twins are simulated into the workdir when missing).
Result: benchmarks/results/isolation_mark.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.bench_quality import add_twin_args, twin_windows

RESULT = Path(__file__).parent / "results" / "isolation_mark.json"
DRIFT_PULL, DRIFT_STEP_SD = 0.03, 0.06  # the twin's daily loneliness drift (twin/engine.py)
DRIFT_SD = DRIFT_STEP_SD / float(np.sqrt(1 - (1 - DRIFT_PULL) ** 2))


def cell(twin: Path, end: pd.Timestamp, draws: int, seed: int) -> dict:
    from sklearn.metrics import roc_auc_score

    from features.pipeline import load_history
    from training.config import SplitConfig
    from training.data import risk_dataset
    from twin.truth import knowable_risk

    history = load_history(twin, end=end)
    test = risk_dataset("isolation", history, SplitConfig()).part("test").copy()
    test["resident_id"] = test["resident_id"].astype(str)
    truth = pd.read_parquet(twin / "truth" / "causes.parquet", columns=["resident_id", "date", "model", "loneliness"])
    truth = truth[truth["model"] == "isolation"].drop(columns="model")
    truth["resident_id"] = truth["resident_id"].astype(str)
    rows = test.merge(truth.rename(columns={"date": "as_of_date"}), on=["resident_id", "as_of_date"], how="left")
    y, latent = rows["label"].to_numpy(int), rows["loneliness"].to_numpy(float)
    if np.isnan(latent).any():
        raise ValueError(f"{twin}: {int(np.isnan(latent).sum())} test rows have no latent loneliness in truth/")
    rng = np.random.default_rng(seed)
    marks = [roc_auc_score(y, latent + rng.normal(0, DRIFT_SD, len(latent))) for _ in range(draws)]
    return {"test_rows": len(rows), "positives": int(y.sum()),
            "knowable_ceiling": round(float(roc_auc_score(y, knowable_risk(twin, "isolation", test))), 4),
            "latent_exact": round(float(roc_auc_score(y, latent)), 4),
            "level_known_drift_unknown": round(float(np.mean(marks)), 4),
            "level_known_drift_unknown_spread": [round(float(min(marks)), 4), round(float(max(marks)), 4)]}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_twin_args(ap)
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    result: dict = {"config": {**{k: v for k, v in vars(args).items() if k not in ("workdir", "out")},
                               "drift_sd": round(DRIFT_SD, 4)}, "cells": []}
    for seed, twin, k, end in twin_windows(args):
        c = {"seed": seed, "window": k, "history_end": str(end.date()), **cell(twin, end, args.draws, seed)}
        print(json.dumps(c), flush=True)
        result["cells"].append(c)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out} in {result['seconds']}s")
    return result


if __name__ == "__main__":
    main()
