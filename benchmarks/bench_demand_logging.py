"""Demand forecasts on counts logged as a coordinator logs them, over windows and logging draws.

    python -m benchmarks.bench_demand_logging --history D/history [--windows 3] [--logging-seeds 0 1 2 3 4 5]
                                              [--step 1] [--boot 200] [--choice-weeks N] [--out FILE]

Real time banks enter a week's exchanges on one day, sometimes a week late
(`twin/batch_logging.py`). For each test window (the latest 56 days, then 56-day windows ending
`--window-gap` days earlier, the history cut at the window's end) and each draw of the logging
days, the rolling-origin backtest (`training.backtest.rolling_origin`, origins every `--step`
days, horizons 1-14) is run on the batch-logged counts, and once on the counts as they happened.
Reported on weekly totals (horizons 1-7 summed per series and origin, as the backtest does): the
WAPE of the forecaster, of each simple method (zero, seasonal naive, 91-day mean, median of 8
weekly totals) and of the forecaster's logging-cycle method on its own, the best simple method
chosen in hindsight on the same cell (which flatters the simple side), and the ratio forecaster /
best simple with a 95% interval from resampling origins (all series of a drawn origin together);
and the daily 80% intervals' coverage. Result: benchmarks/results/demand_logging.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULT = Path(__file__).parent / "results" / "demand_logging.json"


def weekly_totals(detail: pd.DataFrame, panel, origins) -> pd.DataFrame:
    """Per (series, origin): the actual weekly total, the forecaster's and each simple method's."""
    from features.demand import demand_features
    from models.demand import CYCLE_METHODS, simple_forecast
    from training.backtest import simple_forecasts

    rows = demand_features(panel, origins, range(1, 8))
    rows = rows[rows["count"].notna()].reset_index(drop=True)
    simple = pd.DataFrame({"series_id": rows["series_id"].astype(str), "origin": rows["origin"],
                           "date": rows["date"], **simple_forecasts(rows),
                           **{m: simple_forecast(m, rows) for m in CYCLE_METHODS}})
    d = detail.loc[detail["horizon"] <= 7, ["series_id", "origin", "date", "actual", "forecast"]].copy()
    d["series_id"] = d["series_id"].astype(str)
    d = d.merge(simple, how="inner", on=["series_id", "origin", "date"], validate="one_to_one")
    if len(d) != int((detail["horizon"] <= 7).sum()):
        raise RuntimeError("simple forecasts do not line up with the backtest's rows")
    return d.drop(columns="date").groupby(["series_id", "origin"], as_index=False).sum()


def cell(totals: pd.DataFrame, boot: int, seed: int) -> dict:
    from models.demand import CYCLE_METHODS, SIMPLE_METHODS
    from training.backtest import wape

    y = totals["actual"].to_numpy(float)
    wapes = {m: wape(y, totals[m].to_numpy(float)) for m in (*SIMPLE_METHODS, *CYCLE_METHODS)}
    best = min(SIMPLE_METHODS, key=lambda m: wapes[m] if np.isfinite(wapes[m]) else np.inf)
    model = wape(y, totals["forecast"].to_numpy(float))
    # resample origins: every series of a drawn origin together
    by_origin = totals.groupby("origin")
    err_m = by_origin.apply(lambda g: np.abs(g["actual"] - g["forecast"]).sum(), include_groups=False).to_numpy()
    err_b = by_origin.apply(lambda g: np.abs(g["actual"] - g[best]).sum(), include_groups=False).to_numpy()
    tot = by_origin["actual"].sum().to_numpy()
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(tot), size=(boot, len(tot)))
    ratios = err_m[draws].sum(axis=1) / np.maximum(err_b[draws].sum(axis=1), 1e-12)
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    return {"origins": int(len(tot)), "series": int(totals["series_id"].nunique()),
            "wape_model": model, **{f"wape_{m}": v for m, v in wapes.items()},
            "best_simple": best, "wape_best_simple": wapes[best],
            "model_over_best_simple": model / wapes[best] if wapes[best] > 0 else float("nan"),
            "ratio_lo": float(lo), "ratio_hi": float(hi)}


def main(argv=None) -> dict:
    from features.demand import count_panel
    from models.demand import DemandParams
    from training.backtest import BacktestConfig, rolling_origin
    from training.train import history_counts
    from twin.batch_logging import batch_logged

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", type=Path, required=True)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--window-gap", type=int, default=84, help="days between the ends of test windows")
    ap.add_argument("--logging-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--step", type=int, default=1, help="days between forecast origins")
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--choice-weeks", type=int, default=None,
                    help="weeks of record the method choice is judged on (default: the forecaster's)")
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args(argv)

    counts = history_counts(args.history)
    counts["date"] = pd.to_datetime(counts["date"])
    last = counts["date"].max()
    config = BacktestConfig(step=args.step)
    params = DemandParams() if args.choice_weeks is None else DemandParams(choice_weeks=args.choice_weeks)
    cells = []
    for w in range(args.windows):
        end = last - pd.Timedelta(days=w * args.window_gap)
        window = counts[counts["date"] <= end]
        tables = [("as_happened", None, window)] + [
            ("batch_logged", s, batch_logged(window, seed=s)) for s in args.logging_seeds]
        for kind, s, table in tables:
            t = time.perf_counter()
            panel = count_panel(table)
            metrics, detail = rolling_origin(panel, params, config)
            origins = pd.DatetimeIndex(sorted(detail["origin"].unique()))
            out = cell(weekly_totals(detail, panel, origins), args.boot, seed=w * 100 + (s or 0))
            out.update({"window_end": str(end.date()), "counts": kind, "logging_seed": s,
                        "daily_wape_model": metrics["wape"],
                        # the forecaster's 80% daily intervals: inside, and missed below or above
                        "daily_coverage": metrics["coverage"],
                        "daily_below": float((detail["actual"] < detail["lower"]).mean()),
                        "daily_above": float((detail["actual"] > detail["upper"]).mean()),
                        "seconds": round(time.perf_counter() - t, 1)})
            cells.append(out)
            print(f"{out['window_end']} {kind:12s} seed={s} weekly WAPE model {out['wape_model']:.3f} "
                  f"(logging cycle alone {out['wape_logging_cycle']:.3f}) "
                  f"best simple {out['best_simple']} {out['wape_best_simple']:.3f} ratio "
                  f"{out['model_over_best_simple']:.3f} [{out['ratio_lo']:.3f}, {out['ratio_hi']:.3f}]; "
                  f"daily 80% intervals cover {out['daily_coverage']:.3f}",
                  flush=True)
    batch = [c for c in cells if c["counts"] == "batch_logged"]
    summary = {
        "batch_logged_ratio_median": float(np.median([c["model_over_best_simple"] for c in batch])),
        "batch_logged_ratio_range": [min(c["model_over_best_simple"] for c in batch),
                                     max(c["model_over_best_simple"] for c in batch)],
        "batch_logged_cells_interval_below_0.9": sum(c["ratio_hi"] < 0.9 for c in batch),
        "batch_logged_cells": len(batch),
        "batch_logged_daily_coverage_range": [min(c["daily_coverage"] for c in batch),
                                              max(c["daily_coverage"] for c in batch)],
        "as_happened_ratio_range": [min(c["model_over_best_simple"] for c in cells if c["counts"] == "as_happened"),
                                    max(c["model_over_best_simple"] for c in cells if c["counts"] == "as_happened")],
    }
    result = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
              "summary": summary, "cells": cells}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(summary, indent=2))
    return result


if __name__ == "__main__":
    main()
