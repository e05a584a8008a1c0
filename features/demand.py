"""Daily demand series and the point-in-time features of the demand forecaster.

Works on any daily count table `series_id, date, count` (the twin's service requests, or a real
time bank's own exchange history). A forecast is made at an *origin* (the last day whose count is
known) for a target day `origin + horizon`; every feature uses counts up to the origin only.

Missing dates are explicit: a day before a series starts, after it ends, or absent from the table
is unknown (NaN), never an invented zero, unless the caller says gaps mean zero. The twin's request
log is complete, so `daily_counts` zero-fills it: no request that day is a real zero.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.registry import SERIES_FEATURES, Feature
from twin.calendar import public_holidays

# Declared in features/registry.py (compute group "series"); this module computes them.
DEMAND_FEATURES: tuple[Feature, ...] = tuple(SERIES_FEATURES.values())

COUNT_COLUMNS = ("series_id", "date", "count")
GAP_POLICIES = ("missing", "zero")


class CountTableError(ValueError):
    """A daily count table is malformed; the message says what was wrong."""


def daily_counts(service_requests: pd.DataFrame, start=None, end=None) -> pd.DataFrame:
    """Requests per `<grid_id>:<category>` per day, zero-filled over [start, end).

    Every grid seen gets a series for every category seen; the calendar runs from `start` (default
    the first request day) to `end` exclusive (default the day after the last request).
    """
    need = {"timestamp", "grid_id", "category"}
    missing = need - set(service_requests.columns)
    if missing:
        raise CountTableError(f"service_requests lacks column(s) {sorted(missing)}")
    sr = service_requests
    day = pd.to_datetime(sr["timestamp"]).dt.normalize()
    if len(sr) == 0 and (start is None or end is None):
        return pd.DataFrame({"series_id": pd.Series([], dtype="str"),
                             "date": pd.Series([], dtype="datetime64[ns]"),
                             "count": pd.Series([], dtype="float64")})
    start = pd.Timestamp(start).normalize() if start is not None else day.min()
    end = pd.Timestamp(end).normalize() if end is not None else day.max() + pd.Timedelta(days=1)
    keep = (day >= start) & (day < end)
    sid = sr["grid_id"].astype(str) + ":" + sr["category"].astype(str)
    grouped = (
        pd.DataFrame({"series_id": sid[keep], "date": day[keep]})
        .groupby(["series_id", "date"]).size().rename("count")
    )
    grids = sorted(sr["grid_id"].astype(str).unique())
    cats = sorted(sr["category"].astype(str).unique())
    series = [f"{g}:{c}" for g in grids for c in cats]
    dates = pd.date_range(start, end - pd.Timedelta(days=1), freq="D")
    full = pd.MultiIndex.from_product([series, dates], names=["series_id", "date"])
    out = grouped.reindex(full, fill_value=0).astype("float64").reset_index()
    out["series_id"] = out["series_id"].astype("str")
    out["date"] = out["date"].astype("datetime64[ns]")
    return out


def check_counts(counts: pd.DataFrame) -> pd.DataFrame:
    """Validate a `series_id, date, count` table and return it with canonical dtypes."""
    missing = [c for c in COUNT_COLUMNS if c not in counts.columns]
    if missing:
        raise CountTableError(
            f"count table lacks column(s) {missing}; expected columns {list(COUNT_COLUMNS)}"
        )
    out = counts[list(COUNT_COLUMNS)].copy()
    if out["series_id"].isna().any():
        raise CountTableError(f"{int(out['series_id'].isna().sum())} row(s) have no series_id")
    out["series_id"] = out["series_id"].astype(str)
    try:
        out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    except (ValueError, TypeError) as exc:
        raise CountTableError(f"date column is not parseable as dates: {exc}") from exc
    if out["date"].isna().any():
        raise CountTableError(f"{int(out['date'].isna().sum())} row(s) have no date")
    if (out["date"] != out["date"].dt.normalize()).any():
        raise CountTableError("dates must be whole days (daily counts), found times of day")
    cnt = pd.to_numeric(out["count"], errors="coerce")
    bad = cnt.isna() & out["count"].notna()
    if bad.any():
        raise CountTableError(f"{int(bad.sum())} count(s) are not numbers, e.g. {out.loc[bad, 'count'].iloc[0]!r}")
    if np.isinf(cnt).any() or (cnt < 0).any():
        raise CountTableError("counts must be finite and non-negative")
    out["count"] = cnt.astype("float64")
    dup = out.duplicated(["series_id", "date"], keep=False)
    if dup.any():
        ex = out.loc[dup].iloc[0]
        raise CountTableError(
            f"{int(dup.sum())} rows repeat a (series_id, date) pair, e.g. {ex.series_id} "
            f"{ex.date.date()}; a count table has one row per series per day"
        )
    return out.sort_values(["series_id", "date"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class CountPanel:
    """Counts as a day x series matrix; NaN where a count is unknown."""

    dates: pd.DatetimeIndex
    series: list[str]
    values: np.ndarray  # shape (days, series)

    def position(self, day) -> int:
        return int((pd.Timestamp(day) - self.dates[0]).days)


def count_panel(counts: pd.DataFrame, gaps: str = "missing", end=None) -> CountPanel:
    """The day x series matrix of a count table.

    `gaps="missing"`: absent dates inside a series are unknown; `gaps="zero"`: they are zero.
    Days before a series' first row or after its last row are always unknown.
    """
    if gaps not in GAP_POLICIES:
        raise CountTableError(f"gaps must be one of {GAP_POLICIES}, got {gaps!r}")
    c = check_counts(counts)
    if c.empty:
        raise CountTableError("count table is empty")
    first = c["date"].min()
    last = c["date"].max() if end is None else pd.Timestamp(end)
    dates = pd.date_range(first, last, freq="D")
    series = sorted(c["series_id"].unique())
    wide = (
        c.pivot(index="date", columns="series_id", values="count")
        .reindex(index=dates, columns=series)
    )
    values = wide.to_numpy(dtype="float64")
    if gaps == "zero":
        span = c.groupby("series_id")["date"].agg(["min", "max"]).reindex(series)
        pos = np.arange(len(dates))[:, None]
        lo = ((span["min"] - first).dt.days.to_numpy())[None, :]
        hi = ((span["max"] - first).dt.days.to_numpy())[None, :]
        inside = (pos >= lo) & (pos <= hi)
        values = np.where(inside & np.isnan(values), 0.0, values)
    return CountPanel(dates=dates, series=series, values=values)


def _window_mean(cs: np.ndarray, cn: np.ndarray, end_pos: np.ndarray, width: int):
    """Mean of known values over rows (end_pos - width, end_pos] for each origin row and series.

    `end_pos` holds one row position per origin; returns (origins x series) means (NaN where
    nothing is known) and the number of known days.
    """
    hi = end_pos + 1
    lo = np.maximum(hi - width, 0)
    s = cs[hi] - cs[lo]
    n = cn[hi] - cn[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan), n


# How a community's logging cycle is read: the gaps between its logged days over the last year
# (all of its record when that holds fewer than this many gaps); with fewer than two logged days
# it reads as logging every day.
CYCLE_WINDOW_DAYS = 365
CYCLE_MIN_GAPS = 8


def logged_days(panel: CountPanel) -> np.ndarray:
    """Per day of the panel: whether any series of the community had a request logged on it."""
    return (np.nan_to_num(panel.values) > 0).any(axis=1)


def _last_logged(any_logged: np.ndarray) -> np.ndarray:
    """Per day: the position of the last logged day at or before it (-1 before the first)."""
    return np.maximum.accumulate(np.where(any_logged, np.arange(len(any_logged)), -1))


def _known_sums(vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Known-only prefix sums of a (days x series) matrix: row i holds the sum of the known
    counts, and how many were known, over the rows before i."""
    known = ~np.isnan(vals)
    zero = np.zeros((1, vals.shape[1]))
    return (np.vstack([zero, np.cumsum(np.where(known, vals, 0.0), axis=0)]),
            np.vstack([zero, np.cumsum(known, axis=0)]))


def _recent_gaps(logged: np.ndarray, o: int) -> np.ndarray | None:
    """Gaps between the logged days (positions, at or before `o`) that the cycle reads: those of
    the last year, or all of them when the year holds fewer than CYCLE_MIN_GAPS; None with fewer
    than two logged days."""
    if len(logged) < 2:
        return None
    gaps = np.diff(logged)
    recent = gaps[logged[1:] > o - CYCLE_WINDOW_DAYS]
    return recent if len(recent) >= CYCLE_MIN_GAPS else gaps


def logs_in_batches(panel: CountPanel, origins) -> np.ndarray:
    """Whether the community reads as logging in batches at each origin: its typical (median) gap
    between logged days is longer than a day. A sparse community that logs as things happen has
    days without any request, but most of its gaps are one day."""
    any_logged = logged_days(panel)
    T = len(panel.dates)
    out = []
    for d in pd.to_datetime(pd.Index(origins)):
        o = min(panel.position(d), T - 1)
        gaps = _recent_gaps(np.flatnonzero(any_logged[: o + 1]), o)
        out.append(gaps is not None and float(np.median(gaps)) > 1)
    return np.array(out, dtype=bool)


def _cycle_chances(any_logged: np.ndarray, o: int, max_horizon: int):
    """For an origin (row position) `o`: (d, g, surv, first, u) of the community's logging cycle,
    or None while it reads as logging every day (fewer than two logged days known).

    d: days since the last logged day; g[k]: the chance a gap between logged days is k days;
    surv[k]: the chance a gap is longer than k days; first[j]: the chance the next logging day is j + 1 days after the origin (the gap under way
    being longer than d); u[j]: the chance that a logging day (the next or a later one) falls
    j + 1 days after the origin.
    """
    logged = np.flatnonzero(any_logged[: o + 1])
    gaps = _recent_gaps(logged, o)
    if gaps is None:
        return None
    d = int(o - logged[-1])
    top = max(int(gaps.max()), d + 1) + max_horizon + 1
    g = np.bincount(gaps, minlength=top + 1)[: top + 1] / len(gaps)
    surv = 1.0 - np.cumsum(g)  # surv[k]: the chance a gap is longer than k days
    first = g[d + 1: d + max_horizon + 1].copy()
    if surv[d] > 1e-12:
        first /= surv[d]
    else:  # longer than any gap seen: the log is due now
        first[:] = 0.0
        first[0] = 1.0
    u = np.zeros(max_horizon)
    for j in range(max_horizon):
        u[j] = first[j] + sum(u[k] * g[j - k] for k in range(j))
    return d, g, surv, first, u


def _quantile_of(values: np.ndarray, chances: np.ndarray, q: float) -> float:
    order = np.argsort(values, kind="stable")
    cdf = np.cumsum(chances[order])
    return float(values[order][min(int(np.searchsorted(cdf, q * cdf[-1], side="left")), len(cdf) - 1)])


def logging_cycle(any_logged: np.ndarray, origins: np.ndarray, max_horizon: int,
                  quantile: float = 0.5) -> np.ndarray:
    """Days of demand logged by each horizon on the community's typical logging path.

    A coordinator who logs in batches enters everything since the previous logged day at once, so
    what a series logs within the next h days is its daily rate times L_h, the days from the last
    logged day (at or before the origin) to the last logging day within the h days (0 if none
    falls there). Read as a renewal process over the community's own gaps between logged days,
    with the gap under way known to be longer than the days since the last logged day, L_h has an
    exact distribution (first passage, then renewals); this returns its `quantile` for
    h = 0..max_horizon, shape (origins, max_horizon + 1). Its median is the forecast with the
    least absolute error of the h-day total, up to each series' own noise. A community that logs
    every day reads L_h = h.
    """
    out = np.tile(np.arange(max_horizon + 1, dtype=float), (len(origins), 1))
    for i, o in enumerate(origins):
        chances = _cycle_chances(any_logged, int(o), max_horizon)
        if chances is None:
            continue
        d, _, surv, _, u = chances
        for h in range(1, max_horizon + 1):
            # the last logging day within h days falls at origin + j + 1, covering d + j + 1 days
            p_last = np.array([u[j] * surv[h - j - 1] for j in range(h)])
            values = np.concatenate([[0.0], d + 1.0 + np.arange(h)])
            out[i, h] = _quantile_of(values, np.concatenate([[max(1.0 - p_last.sum(), 0.0)], p_last]), quantile)
    return out


def logging_day_chances(any_logged: np.ndarray, origins: np.ndarray, max_horizon: int) -> np.ndarray:
    """The chance that day h's batch covers v days, for each origin, h = 1..max_horizon and
    v = 0, 1, ...: v = 0 when no logging day falls on it, else the days since the logging day
    before it (the first one after the origin covers the days since the last logged day too).
    Shape (origins, max_horizon, longest span + 1); a community that logs every day reads v = 1."""
    rows: list[np.ndarray] = []
    for o in origins:
        chances = _cycle_chances(any_logged, int(o), max_horizon)
        if chances is None:
            one = np.zeros((max_horizon, 2))
            one[:, 1] = 1.0
            rows.append(one)
            continue
        d, g, _, first, u = chances
        out = np.zeros((max_horizon, d + max_horizon + 1))
        for h in range(1, max_horizon + 1):
            out[h - 1, d + h] = first[h - 1]  # the first batch after the origin
            for k in range(1, h):  # a batch after a logging day k days in
                out[h - 1, h - k] += u[k - 1] * g[h - k]
            out[h - 1, 0] = max(1.0 - out[h - 1, 1:].sum(), 0.0)
        rows.append(out)
    width = max(r.shape[1] for r in rows)
    return np.stack([np.pad(r, ((0, 0), (0, width - r.shape[1]))) for r in rows])


def _logged_rate(cs: np.ndarray, cn: np.ndarray, last: np.ndarray, origins: np.ndarray,
                 days: int) -> np.ndarray:
    """Requests a day per series over the days the logging days of the last `days` days cover:
    what they logged over the known days from after the logged day before them to the last
    (`cs`, `cn`: `_known_sums` of the counts; `last`: `_last_logged` of the community)."""
    out = np.full((len(origins), cs.shape[1]), np.nan)
    for i, o in enumerate(origins):
        end = last[o]
        if end < 0:
            continue
        start = last[o - days] if o - days >= 0 else -1  # covered: (start, end]
        logged_sum = cs[o + 1] - cs[max(o + 1 - days, 0)]
        covered = cn[end + 1] - cn[start + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = np.where(covered > 0, logged_sum / np.maximum(covered, 1), np.nan)
    return out


def _row_rates(panel: CountPanel, rows: pd.DataFrame, days: int):
    """(any_logged, origin positions, each row's origin index, each row's logged rate a day)."""
    T = len(panel.dates)
    any_logged = logged_days(panel)
    uniq, oi = np.unique(pd.to_datetime(rows["origin"]).to_numpy(), return_inverse=True)
    opos = np.minimum(np.array([panel.position(d) for d in uniq]), T - 1)
    rate = _logged_rate(*_known_sums(panel.values), _last_logged(any_logged), opos, days)
    si = pd.Index(panel.series).get_indexer(rows["series_id"].astype(str))
    r = np.nan_to_num(np.where(si >= 0, rate[oi, np.maximum(si, 0)], np.nan), nan=0.0)
    return any_logged, opos, oi, r


def logged_rate(panel: CountPanel, rows: pd.DataFrame, days: int = 91) -> np.ndarray:
    """Each feature row's series' requests a day as they occur, read off the counts logged over
    the last `days` days and the days those logging days cover (`_logged_rate`)."""
    return _row_rates(panel, rows, days)[3] if len(rows) else np.zeros(0)


def logging_cycle_bounds(panel: CountPanel, rows: pd.DataFrame, coverage: float,
                         days: int = 91) -> tuple[np.ndarray, np.ndarray]:
    """Central `coverage` bounds of each feature row's count under the community's logging
    cycle: the quantiles of a mixture, over the days that day's batch may cover
    (`logging_day_chances`), of Poisson counts at the series' logged rate (`days`) times those
    days; 0 where no batch is likely."""
    from scipy.stats import poisson

    if rows.empty:
        return np.zeros(0), np.zeros(0)
    any_logged, opos, oi, r = _row_rates(panel, rows, days)
    h = rows["demand_horizon"].to_numpy(dtype=int)
    chances = logging_day_chances(any_logged, opos, int(h.max()))
    out = []
    for q in ((1 - coverage) / 2, 1 - (1 - coverage) / 2):
        bound = np.zeros(len(rows))
        for a in range(0, len(rows), 4096):  # in chunks: rows x spans x steps
            p = chances[oi[a:a + 4096], h[a:a + 4096] - 1]
            lam = r[a:a + 4096, None] * np.arange(p.shape[1])[None, :]
            lo = np.zeros(len(p))
            hi = poisson.ppf(0.99999, np.maximum(lam.max(axis=1), 1e-12)) + 1
            while (hi - lo > 0).any():  # the least count whose mixture CDF reaches q
                mid = np.floor((lo + hi) / 2)
                ok = (p * poisson.cdf(mid[:, None], lam)).sum(axis=1) >= q - 1e-12
                hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid + 1)
            bound[a:a + 4096] = lo
        out.append(bound)
    return out[0], np.maximum(out[1], out[0])


def demand_features(
    counts: pd.DataFrame | CountPanel,
    origins: Iterable,
    horizons: Sequence[int] = tuple(range(1, 15)),
    gaps: str = "missing",
    holidays: Iterable | None = None,
) -> pd.DataFrame:
    """Feature rows for every series x origin x horizon.

    `holidays`: public holiday dates; by default the common European holidays of the period
    (`twin.calendar.public_holidays`); pass an empty list when the calendar is unknown.

    Columns: series_id, origin, date (the forecast day), then DEMAND_FEATURES in order, then
    `count` (the actual count of the forecast day when known, else NaN).
    """
    panel = counts if isinstance(counts, CountPanel) else count_panel(counts, gaps=gaps)
    horizons = [int(h) for h in horizons]
    if not horizons or min(horizons) < 1:
        raise CountTableError(f"horizons must be positive whole days, got {horizons}")
    origin_days = pd.DatetimeIndex(pd.to_datetime(list(origins))).normalize()
    if len(origin_days) == 0:
        raise CountTableError("no forecast origins given")
    opos = np.array([panel.position(d) for d in origin_days])
    if (opos < 0).any():
        raise CountTableError(f"origin {origin_days[opos < 0][0].date()} is before the first count")
    T, S = panel.values.shape
    pad = max(0, int(opos.max()) + max(horizons) - (T - 1))
    vals = np.vstack([panel.values, np.full((pad, S), np.nan)])
    # known-only prefix sums; row i holds the sum over rows < i
    known = ~np.isnan(vals)
    cs, cn = _known_sums(vals)
    cz = np.vstack([np.zeros((1, S)), np.cumsum(known & (vals == 0), axis=0)])
    # origins beyond the data read no counts past the last known row
    last_row = T - 1

    if holidays is None:
        first_day = panel.dates[0].date()
        last_day_ = (origin_days.max() + pd.Timedelta(days=max(horizons))).date()
        holidays = public_holidays(first_day, last_day_)
    holiday_set = {pd.Timestamp(d).normalize() for d in holidays}

    # counts at positions beyond the data (or before it) are unknown
    vals_ext = np.vstack([vals, np.full((1, S), np.nan)])  # row -1 -> the NaN row

    def at(pos: np.ndarray) -> np.ndarray:
        ok = (pos >= 0) & (pos <= last_row)
        return vals_ext[np.where(ok, pos, len(vals_ext) - 1)]

    oc = np.minimum(opos, last_row)
    means: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def mean(days: int) -> tuple[np.ndarray, np.ndarray]:
        """(mean of the known counts over the last `days` days, how many were known)."""
        if days not in means:
            means[days] = _window_mean(cs, cn, oc, days)
        return means[days]

    def zero_share(days: int) -> np.ndarray:
        zeros = cz[oc + 1] - cz[np.maximum(oc + 1 - days, 0)]
        known_days = mean(days)[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(known_days > 0, zeros / np.maximum(known_days, 1), np.nan)

    medians: dict[int, np.ndarray] = {}

    def weekly_median(weeks: int) -> np.ndarray:
        """Median of the last `weeks` weekly totals, per day: robust to a week logged in one day."""
        if weeks not in medians:
            totals = []
            for k in range(weeks):
                hi = np.maximum(oc + 1 - 7 * k, 0)
                lo = np.maximum(hi - 7, 0)
                known_days = cn[hi] - cn[lo]
                totals.append(np.where(known_days > 0, cs[hi] - cs[lo], np.nan))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a series with no known week: NaN
                medians[weeks] = np.nanmedian(np.stack(totals), axis=0) / 7.0
        return medians[weeks]

    # Community-wide logging: the last day at or before each origin on which any series had a
    # request (batch-logged tables read zero on every other day).
    any_logged = logged_days(panel)
    last_logged_at = _last_logged(any_logged)
    last_logged = last_logged_at[oc]
    since_logged = np.where(last_logged >= 0, oc - last_logged, np.nan).astype(float)
    logged_cs = np.concatenate([[0], np.cumsum(any_logged)])

    def logged_day_share(days: int) -> np.ndarray:
        lo = np.maximum(oc + 1 - days, 0)
        return (logged_cs[oc + 1] - logged_cs[lo]) / np.maximum(oc + 1 - lo, 1)

    cycle: dict[int, np.ndarray] = {}  # 0: the path; a window's days: the logged rate over it

    def cycle_share(f, h: int) -> np.ndarray:
        """Requests logged on day h of the community's typical logging path (its `f.days` rate)."""
        if 0 not in cycle:
            cycle[0] = logging_cycle(any_logged, oc, max(horizons))
        if f.days not in cycle:
            cycle[f.days] = _logged_rate(cs, cn, last_logged_at, oc, f.days)
        path = cycle[0]
        return cycle[f.days] * (path[:, h] - path[:, h - 1])[:, None]

    last_day = at(opos)
    n_o = len(opos)
    series = np.array(panel.series, dtype=object)
    per_origin = np.ones((n_o, S))

    columns: dict[str, list[np.ndarray]] = {}

    def put(name: str, block: np.ndarray) -> None:
        columns.setdefault(name, []).append(np.asarray(block).reshape(-1))

    for h in horizons:
        p = opos + h - 7 * int(np.ceil(h / 7))  # latest same weekday at or before the origin
        target_days = origin_days + pd.Timedelta(days=h)

        def same_weekday_mean(weeks: int, p=p) -> np.ndarray:
            stack = np.stack([at(p - 7 * k) for k in range(weeks)])
            known_w = (~np.isnan(stack)).sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(known_w > 0, np.nansum(stack, axis=0) / np.maximum(known_w, 1), np.nan)

        # What each declared family makes of the counts (f.days: the feature's window).
        family = {
            "last_day": lambda f: last_day,
            "mean": lambda f: mean(f.days)[0],
            "same_weekday_last": lambda f, p=p: at(p),
            "same_weekday_mean": lambda f: same_weekday_mean(f.days // 7),
            "zero_share": lambda f: zero_share(f.days),
            "weekly_median": lambda f: weekly_median(f.days // 7),
            "days_known": lambda f: mean(f.days)[1].astype("float64"),
            "days_since_logged": lambda f: per_origin * since_logged[:, None],
            "unlogged_estimate": lambda f: since_logged[:, None] * mean(f.days)[0],
            "logged_day_share": lambda f: per_origin * logged_day_share(f.days)[:, None],
            "logging_cycle": lambda f, h=h: cycle_share(f, h),
            "target_weekday": lambda f, t=target_days: per_origin * t.day_of_week.to_numpy()[:, None],
            "target_month": lambda f, t=target_days: per_origin * t.month.to_numpy()[:, None],
            "horizon": lambda f, h=h: per_origin * float(h),
            "target_holiday": lambda f, t=target_days: per_origin * np.asarray(
                [d in holiday_set for d in t], dtype=float)[:, None],
        }
        put("series_id", np.broadcast_to(series, (n_o, S)))
        put("origin", np.broadcast_to(origin_days.to_numpy()[:, None], (n_o, S)))
        put("date", np.broadcast_to(target_days.to_numpy()[:, None], (n_o, S)))
        for f in DEMAND_FEATURES:
            put(f.name, family[f.family](f))
        put("count", at(opos + h))
    out = pd.DataFrame({k: np.concatenate(v) for k, v in columns.items()})
    out["series_id"] = out["series_id"].astype("str")
    out["origin"] = out["origin"].astype("datetime64[ns]")
    out["date"] = out["date"].astype("datetime64[ns]")
    return out[["series_id", "origin", "date", *(f.name for f in DEMAND_FEATURES), "count"]]


# The seasonal-naive forecast (same weekday, latest known week) is itself a feature.
SEASONAL_NAIVE = "demand_same_weekday_last"
# Fallbacks when that week is unknown, in order.
NAIVE_FALLBACKS = ("demand_same_weekday_mean_4w", "demand_mean_28d", "demand_mean_365d")
