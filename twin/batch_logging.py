"""Counts as a time-bank coordinator logs them: a week's exchanges entered on one day.

Real time banks rarely log exchanges on the day they happen. A coordinator enters them in
batches, usually once a week and sometimes a week late, so most days of a daily count table read
zero. `batch_logged` turns a simulated daily count table into that shape (the total of every
series is kept; only the day each exchange is recorded on moves later).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def logging_days(first, last, every_days: int = 7, late_share: float = 0.15,
                 seed: int = 0) -> pd.DatetimeIndex:
    """The days the coordinator logs on: one a period, on a weekday that moves from period to
    period; with probability `late_share` a period is skipped (logged with the next)."""
    rng = np.random.default_rng(seed)
    first, last = pd.Timestamp(first).normalize(), pd.Timestamp(last).normalize()
    starts = pd.date_range(first, last, freq=f"{every_days}D")
    days = [s + pd.Timedelta(days=int(rng.integers(0, every_days))) for s in starts
            if rng.random() >= late_share]
    days.append(last)  # everything is logged by the end of the record
    return pd.DatetimeIndex(sorted(set(d for d in days if d <= last)))


def batch_logged(counts: pd.DataFrame, every_days: int = 7, late_share: float = 0.15,
                 seed: int = 0) -> pd.DataFrame:
    """A daily `series_id, date, count` table with each count moved to the next logging day
    on or after it; every other day reads zero (as a real export shows it)."""
    c = counts[["series_id", "date", "count"]].copy()
    c["date"] = pd.to_datetime(c["date"]).dt.normalize()
    first, last = c["date"].min(), c["date"].max()
    logs = logging_days(first, last, every_days, late_share, seed)
    at = np.searchsorted(logs.to_numpy(), c["date"].to_numpy(), side="left")
    c["date"] = logs[np.minimum(at, len(logs) - 1)]
    logged = c.groupby(["series_id", "date"], as_index=False)["count"].sum()
    full = pd.MultiIndex.from_product([sorted(c["series_id"].unique()), pd.date_range(first, last, freq="D")],
                                      names=["series_id", "date"])
    out = logged.set_index(["series_id", "date"]).reindex(full, fill_value=0).reset_index()
    out["count"] = out["count"].astype(float)
    return out
