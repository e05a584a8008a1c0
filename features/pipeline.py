"""Point-in-time feature pipeline: one code path for training tables and the online store.

"Strictly before" — the features of a resident at as-of date T describe what was known at
00:00 of day T. A row counts at T only when its time is before T 00:00:
- a sensor day, event, visit or assessment dated d counts when d < T (so the last sensor day
  counted is T-1, and an assessment recorded on T counts from T+1 onwards);
- a service request or a completed time-bank task counts when its timestamp is < T 00:00.
A window "last w days" at T covers days T-w .. T-1. Nothing on or after T is ever read.

How it stays fast: every table is reduced to rows sorted by (resident, day); prefix sums of
count, value, value^2 and day*value (values as exact integers of each signal's resolution) turn
any window at any as-of date into two binary searches and a difference, vectorised over every
(resident, as-of) pair. Integer sums make a window's value independent of which other dates or
residents are computed with it, so the online vector equals the training row bit for bit.

The same `features_for_partition` runs on the whole history (pandas engine, in resident
chunks) or on resident partitions with Dask `map_partitions`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.registry import (
    ASSESSMENT_NAMES,
    FEATURES,
    MIN_DAYS_SD,
    MIN_DAYS_TREND,
    MIN_DAYS_Z_BASELINE,
    MIN_DAYS_Z_RECENT,
    RESIDENT_SETS,
    SD_DAYS,
    SIGNALS,
    TREND_DAYS,
    Z_BASELINE_DAYS,
    Z_RECENT_DAYS,
    Feature,
    schema_hash,
    table_schema_hash,
)
from twin.store import HistoryStore

ENGINES = ("pandas", "dask")
_DAY_BITS = 21  # day numbers since 1970 fit in 21 bits until the year 7700
_DAY_MASK = (1 << _DAY_BITS) - 1

# Columns each table contributes (column-selective reads).
COLUMNS: dict[str, tuple[str, ...]] = {
    "residents": ("resident_id", *dict.fromkeys(f.basis for f in FEATURES.values() if f.compute == "static")),
    "sensor_days": ("resident_id", "date", *(s.column for s in SIGNALS)),
    "assessments": ("resident_id", "date", *ASSESSMENT_NAMES),
    "events": ("resident_id", "date", "type", "injury"),
    "visits": ("resident_id", "date", "source", "hours"),
    "service_requests": ("resident_id", "grid_id", "timestamp", "category"),
    "tasks": ("resident_id", "kind", "status", "completed_at"),
}


@dataclass
class History:
    """The twin tables features are built from. A table that is None was not recorded at all:
    its features are unknown (NaN); an empty table means nothing happened (counts are 0)."""

    residents: pd.DataFrame
    sensor_days: pd.DataFrame | None = None
    assessments: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    visits: pd.DataFrame | None = None
    service_requests: pd.DataFrame | None = None
    tasks: pd.DataFrame | None = None

    def tables(self) -> dict[str, pd.DataFrame | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def load_history(directory: str | os.PathLike, end=None) -> History:
    """Read the columns the features need from a history directory (never truth/).

    `end` (exclusive) drops rows recorded on or after it, e.g. to replay the past.
    """
    store = HistoryStore(Path(directory))
    if not store.has("residents"):
        raise FileNotFoundError(f"{directory}: no residents table; is this a history directory?")
    tables: dict[str, pd.DataFrame | None] = {}
    for table, cols in COLUMNS.items():
        if not store.has(table):
            tables[table] = None
            continue
        bound = end if table != "residents" else None
        tables[table] = store.read(table, columns=list(cols), end=bound)
    if end is not None and store.has("events"):
        # a resident who moves in on or after `end` is not yet in the community then; their
        # `move_in` event lies past the cut, so without this they would read as having lived
        # here from the start, with no data
        ev = store.read("events", columns=["resident_id", "type"], start=end)
        later = ev.loc[ev["type"].astype(str) == "move_in", "resident_id"]
        residents = tables["residents"]
        tables["residents"] = residents[~residents["resident_id"].astype(str).isin(set(later.astype(str)))]
    return History(**tables)


def weekly_as_of(history: History, warmup_days: int = 90) -> pd.DatetimeIndex:
    """Mondays from `warmup_days` after the first sensor day up to the day after the last one."""
    sd = history.sensor_days
    if sd is None or sd.empty:
        raise ValueError("weekly as-of dates need sensor_days; the history has none")
    first, last = sd["date"].min(), sd["date"].max()
    start = (first + pd.Timedelta(days=warmup_days)).normalize()
    stop = (last + pd.Timedelta(days=1)).normalize()
    return pd.date_range(start, stop, freq="W-MON")


# ---------------------------------------------------------------------------------------------
# Small vectorised helpers
# ---------------------------------------------------------------------------------------------


def _day_numbers(values) -> np.ndarray:
    """Day numbers since 1970-01-01, int64; NaT (and days before 1970) count as unknown (-1)."""
    arr = pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[ns]")
    nat = np.isnat(arr)
    days = arr.astype("datetime64[D]").astype(np.int64)
    days[nat] = -1
    return days


def _resident_codes(ids: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each id in `index` (sorted resident ids), -1 when not there."""
    if isinstance(ids.dtype, pd.CategoricalDtype):
        cat_pos = index.get_indexer(ids.cat.categories)
        codes = ids.cat.codes.to_numpy()
        return np.where(codes >= 0, cat_pos[np.maximum(codes, 0)], -1).astype(np.int64)
    # Arrow's hash lookup is several times faster than pandas' on millions of string ids.
    found = pc.index_in(pa.array(ids.astype("str"), type=pa.large_string()),
                        value_set=pa.array(index.to_numpy(dtype=object), type=pa.large_string()))
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _is(values: pd.Series, label: str) -> np.ndarray:
    """values == label as a plain bool array (vectorised for Arrow strings and categoricals)."""
    return values.eq(label).to_numpy(dtype=bool, na_value=False)


@dataclass
class _Rows:
    """Rows of one table reduced to sorted keys (resident code << 21 | day)."""

    keys: np.ndarray
    order: np.ndarray | None  # positions in the source frame in key order; None: the same rows

    @classmethod
    def of(cls, codes: np.ndarray, days: np.ndarray, keep: np.ndarray | None = None) -> _Rows:
        ok = (codes >= 0) & (days >= 0)
        if keep is not None:
            ok &= keep
        if ok.all():
            pos, keys = None, (codes << _DAY_BITS) | days
        else:
            pos = np.flatnonzero(ok)
            keys = (codes[pos] << _DAY_BITS) | days[pos]
        if len(keys) > 1 and not np.all(keys[1:] >= keys[:-1]):
            o = np.argsort(keys, kind="stable")
            keys, pos = keys[o], (o if pos is None else pos[o])
        return cls(keys=keys, order=pos)

    def where(self, mask: np.ndarray) -> _Rows:
        """The rows (still sorted) whose source-frame `mask` is true: one sort serves many subsets."""
        keep = self.take(mask)
        pos = np.flatnonzero(keep) if self.order is None else self.order[keep]
        return _Rows(keys=self.keys[keep], order=pos)

    def take(self, values: np.ndarray) -> np.ndarray:
        """Source-frame values in key order."""
        return values if self.order is None else values[self.order]

    def source(self, i: np.ndarray) -> np.ndarray:
        """Source-frame positions of key positions `i`."""
        return i if self.order is None else self.order[i]

    def bound(self, q_code: np.ndarray, q_day: np.ndarray) -> np.ndarray:
        """Number of rows strictly before day `q_day` of each resident (a prefix index)."""
        return np.searchsorted(self.keys, (q_code << _DAY_BITS) | np.maximum(q_day, 0), side="left")

    def count(self, q_code, q_day, window: int) -> np.ndarray:
        return (self.bound(q_code, q_day) - self.bound(q_code, q_day - window)).astype(np.float64)

    def last_before(self, q_code, q_day) -> tuple[np.ndarray, np.ndarray]:
        """(position in `order` of the last row before q_day, or -1; its day)."""
        i = self.bound(q_code, q_day) - 1
        safe = np.maximum(i, 0)
        hit = (i >= 0) & (len(self.keys) > 0)
        if len(self.keys):
            hit &= (self.keys[safe] >> _DAY_BITS) == q_code
        day = np.where(hit, self.keys[safe] & _DAY_MASK if len(self.keys) else 0, -1)
        return np.where(hit, i, -1), day


def _prefix(a: np.ndarray) -> np.ndarray:
    out = np.zeros(len(a) + 1, dtype=a.dtype)
    np.cumsum(a, out=out[1:])
    return out


def _window(prefix: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return prefix[hi] - prefix[lo]


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.shape(num), np.nan)
    ok = den != 0
    np.divide(num, den, out=out, where=ok)
    return out


# ---------------------------------------------------------------------------------------------
# Feature families: each takes its table, resident index and the (code, day) pairs
# ---------------------------------------------------------------------------------------------


def _static_features(residents: pd.DataFrame, index: pd.Index, q_code, q_day) -> dict:
    codes = _resident_codes(residents["resident_id"], index)
    n = len(index)
    row_of = np.full(n, -1, dtype=np.int64)
    row_of[codes[codes >= 0]] = np.flatnonzero(codes >= 0)
    r = row_of[q_code]
    known = r >= 0
    rs = np.maximum(r, 0)

    def col(name: str, fn: Callable[[pd.Series], np.ndarray] | None = None) -> np.ndarray:
        s = residents[name]
        vals = fn(s) if fn else s.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.where(known, vals[rs], np.nan) if len(vals) else np.full(len(r), np.nan)

    def flag(s: pd.Series) -> np.ndarray:
        return s.astype("boolean").astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)

    def age() -> np.ndarray:
        as_of_year = (q_day.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970).astype(np.float64)
        return as_of_year - col("birth_year")

    def female() -> np.ndarray:
        sex = residents["sex"]
        is_f = np.where(sex.isna(), np.nan, (sex == "F").to_numpy(dtype=bool, na_value=False)).astype(np.float64)
        return np.where(known, is_f[rs], np.nan) if len(is_f) else np.full(len(r), np.nan)

    # Columns that are not read as they are: birth year gives the age at T, sex a "woman" flag.
    derived = {"birth_year": age, "sex": female}
    out = {}
    for f in _group("static"):
        if f.basis in derived:
            out[f.name] = derived[f.basis]()
        else:
            out[f.name] = col(f.basis, flag if f.dtype == "bool" else None)
    return out


SENSOR_BLOCK_ROWS = 1 << 19  # rows per block: small arrays stay in cache and reuse memory


def _sensor_features(sensor: pd.DataFrame | None, index: pd.Index, q_code, q_day, wanted) -> Iterator:
    """Rolling, deviation and missingness features; `q_code` must be sorted (resident-major).

    Rows and pairs are both sorted by resident, so the work runs over blocks of whole residents
    with contiguous slices of each: same sums, much less memory traffic. Yields
    (first pair, end pair, task) per block; calling the task computes {feature: values}.
    """
    if sensor is None:
        return  # not recorded at all: every sensor feature stays NaN
    days = _day_numbers(sensor["date"])
    longest = max((FEATURES[n].days for n in wanted
                   if FEATURES[n].compute == "sensor" and FEATURES[n].family in ("level", "missing")), default=0)
    reach = max(90, Z_RECENT_DAYS + Z_BASELINE_DAYS, TREND_DAYS, SD_DAYS, longest)
    in_reach = (days >= q_day.min() - reach) & (days < q_day.max())  # no window sees other days
    rows = _Rows.of(_resident_codes(sensor["resident_id"], index), days, in_reach)
    columns = {s.column: sensor[s.column].to_numpy(dtype=np.float64, na_value=np.nan) for s in SIGNALS}
    needed = {n for n in wanted if FEATURES[n].compute == "sensor"}

    # Block boundaries: resident codes where the row count passes each multiple of the block size.
    row_codes = rows.keys >> _DAY_BITS
    cuts = np.unique(row_codes[::SENSOR_BLOCK_ROWS]) if len(row_codes) else np.array([], dtype=np.int64)
    bounds = np.concatenate([[0], cuts[1:], [len(index)]]).astype(np.int64)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        r0, r1 = np.searchsorted(row_codes, [a, b])
        p0, p1 = np.searchsorted(q_code, [a, b])
        if p0 == p1:
            continue
        pos = slice(r0, r1) if rows.order is None else rows.order[r0:r1]
        yield p0, p1, functools.partial(_sensor_block_of, columns, pos, rows.keys[r0:r1],
                                        q_code[p0:p1], q_day[p0:p1], needed)


def _sensor_block_of(columns: dict[str, np.ndarray], pos, keys, q_code, q_day, needed) -> dict:
    return _sensor_block({c: v[pos] for c, v in columns.items()}, keys, q_code, q_day, needed)


class _SignalWindows:
    """Window sums of one signal (exact integers), each computed once and reused."""

    def __init__(self, prefixes: dict[str, np.ndarray], at: dict[int, np.ndarray], scale: float):
        self.prefixes, self.at, self.scale = prefixes, at, scale
        self._memo: dict[tuple[str, int, int], np.ndarray] = {}

    def win(self, name: str, first: int, end: int = 0) -> np.ndarray:
        """Sum of `name` over days T-first .. T-end-1 of each pair."""
        key = (name, first, end)
        if key not in self._memo:
            self._memo[key] = _window(self.prefixes[name], self.at[first], self.at[end])
        return self._memo[key]

    def mean(self, first: int, end: int = 0) -> np.ndarray:
        n = self.win("n", first, end).astype(np.float64)
        return _safe_div(self.win("x", first, end).astype(np.float64), n) / self.scale

    def var(self, first: int, end: int = 0) -> np.ndarray:
        """Sample variance (ddof=1); NaN under two days."""
        n, sx, sxx = self.win("n", first, end), self.win("x", first, end), self.win("xx", first, end)
        num = (n * sxx - sx * sx).astype(np.float64)
        return np.maximum(_safe_div(num, (n * (n - 1)).astype(np.float64)), 0.0) / (self.scale * self.scale)


def _sensor_block(values: dict[str, np.ndarray], keys: np.ndarray, q_code, q_day, needed: set[str]) -> dict:
    """Sensor features of the pairs of one block of residents from that block's sorted rows.

    A window is named by its first and end day before the as-of date: (7, 0) is the last week,
    (97, 7) the 90 days before it. Each window sum is computed once per signal and reused.
    """
    rows = _Rows(keys=keys, order=None)
    day = (keys & _DAY_MASK).astype(np.int64)
    wanted = [f for f in _group("sensor") if f.name in needed]
    windowed = [f.days for f in wanted if f.family in ("level", "missing")]
    windowed += [f.recent_days for f in wanted if f.family == "deviation"]
    starts = {0, 7, 30, 90, TREND_DAYS, SD_DAYS, Z_RECENT_DAYS, Z_RECENT_DAYS + Z_BASELINE_DAYS, *windowed}
    at = {w: rows.bound(q_code, q_day - w) for w in starts}  # prefix index of day T-w
    T = q_day.astype(np.int64)
    out: dict[str, np.ndarray] = {}

    present = np.zeros(len(keys), dtype=bool)
    for s in SIGNALS:
        v = values[s.column]
        ok = ~np.isnan(v)
        present |= ok
        mine = [f for f in wanted if f.basis == s.column]
        if not mine:
            continue
        c = ok.astype(np.int64)
        x = np.rint(np.where(ok, v, 0.0) * s.scale).astype(np.int64)
        prefixes = {"n": _prefix(c), "x": _prefix(x), "xx": _prefix(x * x)}
        if any(f.family == "trend" for f in mine):
            prefixes.update(tx=_prefix(day * x), t=_prefix(day * c), tt=_prefix(day * day * c))
        sw = _SignalWindows(prefixes, at, float(s.scale))
        for f in mine:
            out[f.name] = _SIGNAL_FAMILIES[f.family](sw, f, s, T)

    pp = _prefix(present.astype(np.int64))
    for f in wanted:
        if f.family == "missing":
            out[f.name] = (f.days - _window(pp, at[f.days], at[0])).astype(np.float64)
    return out


def _level(sw: _SignalWindows, f, s, T) -> np.ndarray:
    return sw.mean(f.days)


def _trend(sw: _SignalWindows, f, s, T) -> np.ndarray:
    """Least-squares weekly slope over the window; NaN under MIN_DAYS_TREND days."""
    win, w = sw.win, f.days
    n, sx, stc = win("n", w), win("x", w), win("t", w)
    # Days relative to the as-of date keep every product small and exact.
    stx = win("tx", w) - T * sx
    st = stc - T * n
    stt = win("tt", w) - 2 * T * stc + T * T * n
    num = (n * stx - st * sx).astype(np.float64)
    den = (n * stt - st * st).astype(np.float64)
    slope = _safe_div(num, den) / sw.scale * 7.0
    return np.where(n >= MIN_DAYS_TREND, slope, np.nan)


def _variability(sw: _SignalWindows, f, s, T) -> np.ndarray:
    return np.where(sw.win("n", f.days) >= MIN_DAYS_SD, np.sqrt(sw.var(f.days)), np.nan)


def _baseline(sw: _SignalWindows, f, s, T) -> np.ndarray:
    recent, base = Z_RECENT_DAYS, Z_RECENT_DAYS + Z_BASELINE_DAYS
    return np.where(sw.win("n", base, recent) >= MIN_DAYS_Z_BASELINE, sw.mean(base, recent), np.nan)


def _deviation(sw: _SignalWindows, f, s, T) -> np.ndarray:
    """z-score of the feature's recent span (the last week, or the last `Z_FRESH_DAYS` days)
    against the 90 days before the last week (spread floored at `z_floor`)."""
    recent, base = Z_RECENT_DAYS, Z_RECENT_DAYS + Z_BASELINE_DAYS
    fresh = f.recent_days
    n, nb = sw.win("n", fresh), sw.win("n", base, recent)
    mb = sw.mean(base, recent)
    sd = np.maximum(np.sqrt(sw.var(base, recent)), s.z_floor)
    known = (n >= min(MIN_DAYS_Z_RECENT, fresh - 1)) & (nb >= MIN_DAYS_Z_BASELINE)
    return np.where(known, (sw.mean(fresh) - mb) / sd, np.nan)


# Sensor features by family: (signal windows, feature, signal, as-of days) -> values.
_SIGNAL_FAMILIES = {
    "level": _level, "trend": _trend, "variability": _variability,
    "baseline": _baseline, "deviation": _deviation,
}


def _event_features(events: pd.DataFrame | None, index: pd.Index, q_code, q_day) -> dict:
    if events is None:
        return {}
    codes = _resident_codes(events["resident_id"], index)
    days = _day_numbers(events["date"])
    falls = _is(events["type"], "fall")
    injured = falls & events["injury"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    all_rows = _Rows.of(codes, days)
    # The events a feature's basis names: an event type, or a fall with an injury.
    kinds = {"fall": all_rows.where(falls), "injurious_fall": all_rows.where(injured)}
    out = {}
    for f in _group("events"):
        if f.basis not in kinds:
            kinds[f.basis] = all_rows.where(_is(events["type"], f.basis))
        rows = kinds[f.basis]
        if f.family == "recency":
            out[f.name] = _days_since_last(rows, q_code, q_day)
        else:
            out[f.name] = rows.count(q_code, q_day, f.days)
    return out


def _days_since_last(rows: _Rows, q_code, q_day) -> np.ndarray:
    """Days since the last row before the as-of date; NaN when there is none."""
    _, last_day = rows.last_before(q_code, q_day)
    return np.where(last_day >= 0, q_day - last_day, np.nan).astype(np.float64)


def _assessment_features(assess: pd.DataFrame | None, index: pd.Index, q_code, q_day) -> dict:
    out: dict[str, np.ndarray] = {}
    if assess is None:
        return out
    all_rows = _Rows.of(_resident_codes(assess["resident_id"], index), _day_numbers(assess["date"]))
    declared = _group("assessments")
    for col in dict.fromkeys(f.basis for f in declared):
        value_name = next(f.name for f in declared if f.basis == col and f.family == "assessment")
        age_name = next(f.name for f in declared if f.basis == col and f.family == "assessment_age")
        s = assess[col]
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            s = s.astype("boolean").astype("Float64")
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
        rows = all_rows.where(~np.isnan(vals))
        i, last_day = rows.last_before(q_code, q_day)
        hit = i >= 0
        picked = vals[rows.source(np.maximum(i, 0))] if len(rows.keys) else np.zeros(len(i))
        out[value_name] = np.where(hit, picked, np.nan)
        out[age_name] = np.where(hit, q_day - last_day, np.nan).astype(np.float64)
        history_of = [f for f in declared if f.basis == col and f.family in ("assessment_mean", "assessment_trend")]
        if history_of:
            out.update(_assessment_history(rows, rows.take(vals), history_of, q_code, q_day))
    return out


def _assessment_history(rows: _Rows, v: np.ndarray, declared: list[Feature], q_code, q_day) -> dict:
    """Mean and least-squares drift (per 90 days) of an assessment's scores in a window.

    Scores are small numbers and days integers, so the float sums are exact."""
    day = (rows.keys & _DAY_MASK).astype(np.float64)
    p = {"n": _prefix(np.ones(len(v))), "x": _prefix(v), "t": _prefix(day), "tt": _prefix(day * day),
         "tx": _prefix(day * v)}
    out = {}
    hi = rows.bound(q_code, q_day)
    T = q_day.astype(np.float64)
    for f in declared:
        lo = rows.bound(q_code, q_day - f.days)
        n, sx = _window(p["n"], lo, hi), _window(p["x"], lo, hi)
        if f.family == "assessment_mean":
            out[f.name] = _safe_div(sx, n)
            continue
        st = _window(p["t"], lo, hi) - T * n
        stt = _window(p["tt"], lo, hi) - 2 * T * _window(p["t"], lo, hi) + T * T * n
        stx = _window(p["tx"], lo, hi) - T * sx
        slope = _safe_div(n * stx - st * sx, n * stt - st * st) * 90.0
        out[f.name] = np.where(n >= 3, slope, np.nan)
    return out


def _social_features(history: History, index: pd.Index, q_code, q_day) -> dict:
    out: dict[str, np.ndarray] = {}
    declared = _group("social")
    visits = history.visits
    if visits is not None:
        codes = _resident_codes(visits["resident_id"], index)
        days = _day_numbers(visits["date"])
        rows = _Rows.of(codes, days)
        for f in declared:
            if f.family == "visit_count":  # basis: who visited
                out[f.name] = rows.where(_is(visits["source"], f.basis)).count(q_code, q_day, f.days)
            elif f.family == "visit_hours":
                minutes = np.rint(visits["hours"].to_numpy(dtype=np.float64, na_value=0.0) * 60).astype(np.int64)
                pm = _prefix(rows.take(minutes))
                out[f.name] = _window(pm, rows.bound(q_code, q_day - f.days), rows.bound(q_code, q_day)) / 60.0
            elif f.family == "recency":
                out[f.name] = _days_since_last(rows, q_code, q_day)
    tasks = history.tasks
    if tasks is not None:
        done = _is(tasks["status"], "completed") & tasks["completed_at"].notna().to_numpy()
        rows = _Rows.of(_resident_codes(tasks["resident_id"], index), _day_numbers(tasks["completed_at"]), done)
        for f in declared:
            if f.family == "task_count":
                out[f.name] = rows.count(q_code, q_day, f.days)
            elif f.family == "task_recency":  # basis: the task kind
                out[f.name] = _days_since_last(rows.where(_is(tasks["kind"], f.basis)), q_code, q_day)
    requests = history.service_requests
    if requests is not None:
        codes = _resident_codes(requests["resident_id"], index)
        days = _day_numbers(requests["timestamp"])
        rows = _Rows.of(codes, days)
        for f in declared:
            if f.family == "request_count":  # basis: a request category, or any
                of_kind = rows if f.basis == "any" else rows.where(_is(requests["category"], f.basis))
                out[f.name] = of_kind.count(q_code, q_day, f.days)
    return out


def _group(name: str) -> list[Feature]:
    """The declared resident features that the compute group `name` makes, in registry order."""
    return [f for f in FEATURES.values() if f.compute == name]


# ---------------------------------------------------------------------------------------------
# The per-partition function (the unit both engines run)
# ---------------------------------------------------------------------------------------------


# The code of each compute group named in the registry ("sensor" runs in blocks of residents).
COMPUTE_GROUPS: dict[str, Callable[..., dict]] = {
    "static": lambda h, ids, q_code, q_day: _static_features(h.residents, ids, q_code, q_day),
    "events": lambda h, ids, q_code, q_day: _event_features(h.events, ids, q_code, q_day),
    "assessments": lambda h, ids, q_code, q_day: _assessment_features(h.assessments, ids, q_code, q_day),
    "social": _social_features,
    "sensor": lambda h, ids, q_code, q_day: _sensor_features(h.sensor_days, ids, q_code, q_day, FEATURES),
}


def feature_columns() -> list[str]:
    """Output columns of `build_features`, in order."""
    return ["resident_id", "as_of_date", *FEATURES]


def empty_features() -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype=np.float64) for c in feature_columns()})
    out["resident_id"] = out["resident_id"].astype("str")
    out["as_of_date"] = out["as_of_date"].astype("datetime64[ns]")
    return out


def _write(matrix: np.ndarray, rows_out: np.ndarray, values: dict[str, np.ndarray], position: dict[str, int]) -> None:
    for name, v in values.items():
        matrix[rows_out, position[name]] = v


def features_for_partition(history: History, pairs: pd.DataFrame, threads: int = 1) -> pd.DataFrame:
    """Features of every (resident_id, as_of_date) pair in `pairs` from `history`.

    Pure: reads only rows recorded strictly before each pair's as-of date. Rows of other
    residents are ignored, so it can run on any resident partition of the history.
    """
    if pairs.empty:
        return empty_features()
    ids = pd.Index(np.sort(pairs["resident_id"].astype("str").unique()))
    q_code = _resident_codes(pairs["resident_id"].astype("str"), ids)
    q_day = _day_numbers(pairs["as_of_date"])
    # Work in resident-major order: lookups then walk each table's sorted rows forwards.
    order = np.lexsort((q_day, q_code))
    q_code, q_day = q_code[order], q_day[order]
    names = list(FEATURES)
    position = {name: j for j, name in enumerate(names)}
    matrix = np.full((len(pairs), len(names)), np.nan, order="F")  # column-major, as pandas stores it
    tasks: list[tuple[np.ndarray, Callable[[], dict]]] = [
        (order, functools.partial(COMPUTE_GROUPS[g], history, ids, q_code, q_day))
        for g in ("static", "events", "assessments", "social")
    ]
    tasks += [(order[p0:p1], block) for p0, p1, block in
              COMPUTE_GROUPS["sensor"](history, ids, q_code, q_day)]

    def run(task):
        rows_out, compute = task
        return rows_out, compute()

    # numpy releases the GIL in the heavy calls, so threads share the work of one partition;
    # every task writes its own cells, and the result does not depend on the thread count.
    if threads > 1 and len(tasks) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for rows_out, values in pool.map(run, tasks):
                _write(matrix, rows_out, values, position)
    else:
        for task in tasks:
            _write(matrix, *run(task), position)
    out = pd.DataFrame(matrix, columns=names, copy=False)
    out.insert(0, "as_of_date", pd.to_datetime(pairs["as_of_date"]).to_numpy(dtype="datetime64[ns]"))
    out.insert(0, "resident_id", pairs["resident_id"].astype("str").reset_index(drop=True))
    return out


# ---------------------------------------------------------------------------------------------
# Wiring: as-of pairs, resident partitions, engines
# ---------------------------------------------------------------------------------------------


def as_of_pairs(history: History, as_of) -> pd.DataFrame:
    """Normalise `as_of` (dates for every resident, or a frame of pairs) to sorted unique pairs."""
    if isinstance(as_of, pd.DataFrame):
        missing = {"resident_id", "as_of_date"} - set(as_of.columns)
        if missing:
            raise ValueError(f"as_of frame needs columns resident_id, as_of_date; missing {sorted(missing)}")
        pairs = as_of[["resident_id", "as_of_date"]].copy()
        pairs["as_of_date"] = pd.to_datetime(pairs["as_of_date"])
    else:
        if isinstance(as_of, str | pd.Timestamp) or not isinstance(as_of, Sequence | pd.Index | np.ndarray):
            as_of = [as_of]
        dates = pd.DatetimeIndex(pd.to_datetime(list(as_of))).unique().sort_values()
        ids = np.sort(history.residents["resident_id"].astype("str").unique())
        pairs = pd.DataFrame({
            "resident_id": pd.array(np.tile(ids, len(dates)), dtype="str"),
            "as_of_date": np.repeat(dates.to_numpy(dtype="datetime64[ns]"), len(ids)),
        })
        _check_midnight(pairs["as_of_date"])
        return pairs  # unique and sorted by construction
    _check_midnight(pairs["as_of_date"])
    pairs["resident_id"] = pairs["resident_id"].astype("str")
    pairs["as_of_date"] = pairs["as_of_date"].astype("datetime64[ns]")
    pairs = pairs.drop_duplicates().sort_values(["as_of_date", "resident_id"], kind="stable")
    return pairs.reset_index(drop=True)


def _check_midnight(dates: pd.Series) -> None:
    if dates.isna().any():
        raise ValueError("as_of dates must not be missing")
    if (dates != dates.dt.normalize()).any():
        raise ValueError("as_of dates must be whole days (midnight): features describe 00:00 of that day")


def split_by_resident(history: History, pairs: pd.DataFrame, n_parts: int) -> list[tuple[History, pd.DataFrame]]:
    """Cut history and pairs into `n_parts` partitions of whole residents (sorted id ranges)."""
    ids = pd.Index(np.sort(pairs["resident_id"].unique()))
    n_parts = max(1, min(n_parts, len(ids)))
    per = -(-len(ids) // n_parts)
    part_of_pair = ids.get_indexer(pairs["resident_id"]) // per
    pieces: dict[str, list] = {}
    for name, df in history.tables().items():
        if df is None:
            pieces[name] = [None] * n_parts
            continue
        # One pass of string hashing: codes via a categorical, reused inside each partition.
        rid = pd.Categorical(df["resident_id"].astype("str"), categories=ids)
        codes = np.asarray(rid.codes, dtype=np.int64)
        part = np.where(codes >= 0, codes // per, -1)
        df = df.assign(resident_id=pd.Series(rid, index=df.index))
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(n_parts + 1))
        pieces[name] = [df.iloc[order[bounds[k]:bounds[k + 1]]] for k in range(n_parts)]
    out = []
    for k in range(n_parts):
        h = History(**{name: pieces[name][k] for name in pieces})
        out.append((h, pairs[part_of_pair == k]))
    return out


def _finish(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """One table sorted by as_of_date then resident_id (partitions come back in resident order)."""
    if not parts:
        return empty_features()
    out = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    keys = out[["as_of_date", "resident_id"]]
    if len(parts) > 1 or not _is_sorted(keys):
        out = out.sort_values(["as_of_date", "resident_id"], kind="stable").reset_index(drop=True)
    else:
        out = out.reset_index(drop=True)
    out["resident_id"] = out["resident_id"].astype("str")
    return out


def _is_sorted(keys: pd.DataFrame) -> bool:
    d = keys["as_of_date"].to_numpy()
    r = keys["resident_id"].to_numpy()
    if len(d) < 2:
        return True
    same = d[1:] == d[:-1]
    return bool(((d[1:] > d[:-1]) | (same & (r[1:] > r[:-1]))).all())


def build_features(
    history: History,
    as_of,
    engine: str = "pandas",
    scheduler: str | None = None,
    *,
    partition_residents: int | None = None,
    n_partitions: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """Feature table: resident_id, as_of_date, then every feature in registry order (float64,
    NaN where unknown), sorted by as_of_date then resident_id.

    `as_of` is a date, a sequence of dates (every resident at each) or a DataFrame of
    (resident_id, as_of_date) pairs. `engine="dask"` runs the same partition function with
    `map_partitions` on a Dask cluster (`scheduler` address, or a LocalCluster). `threads`
    (pandas engine; default: the machine's cores, at most 4) share the work of a partition.
    The table never depends on the engine, partitions or threads.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; engines are {', '.join(ENGINES)}")
    pairs = as_of_pairs(history, as_of)
    if pairs.empty:
        return empty_features()
    n_res = pairs["resident_id"].nunique()
    if n_partitions is None:
        # pandas: one pass over the whole history is fastest; Dask: spread residents over workers.
        per = partition_residents or (100_000 if engine == "pandas" else 5_000)
        n_partitions = max(1, -(-n_res // per))
    if engine == "pandas":
        parts = split_by_resident(history, pairs, n_partitions) if n_partitions > 1 else [(history, pairs)]
        results = []
        for k, (h, p) in enumerate(parts):
            results.append(features_for_partition(h, p, threads=threads or min(4, os.cpu_count() or 1)))
            if progress:
                progress(k + 1, len(parts))
        return _finish(results)
    from features.distributed import build_features_dask

    out = build_features_dask(history, pairs, max(n_partitions, 2), scheduler, progress,
                              compute=features_for_partition, split=split_by_resident,
                              meta=empty_features())
    return _finish([out])



# ---------------------------------------------------------------------------------------------
# Stored feature tables: one step writes the table, the next reuses it
# ---------------------------------------------------------------------------------------------

TABLE_FILE = "features.parquet"
MANIFEST_FILE = "manifest.json"


def table_manifest(table: pd.DataFrame, history_fingerprint: str) -> dict:
    """What a stored feature table was built from: the history's fingerprint, the schema hashes
    of the table and of each resident feature set, and the as-of dates it holds."""
    return {
        "history_fingerprint": history_fingerprint,
        "table_schema_hash": table_schema_hash(),
        "schema_hash": {s: schema_hash(s) for s in RESIDENT_SETS},
        "rows": len(table),
        "residents": int(table["resident_id"].nunique()),
        "as_of": [str(d.date()) for d in sorted({*table["as_of_date"]})],
    }


def write_feature_table(table: pd.DataFrame, out: str | os.PathLike, history_fingerprint: str,
                        **extra) -> dict:
    """Write `features.parquet` and its `manifest.json` (plus `extra` fields) under `out`."""
    import json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # No manifest while the table is replaced: a table is only ever read with its own manifest.
    (out / MANIFEST_FILE).unlink(missing_ok=True)
    tmp = out / f".{TABLE_FILE}.tmp"
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), tmp, compression="zstd")
    os.replace(tmp, out / TABLE_FILE)
    manifest = {**extra, **table_manifest(table, history_fingerprint)}
    tmp = out / f".{MANIFEST_FILE}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, out / MANIFEST_FILE)
    return manifest


def _stored_rows(cache: Path, fingerprint: str, dates: pd.DatetimeIndex) -> pd.DataFrame | None:
    """The stored rows at `dates`, when the table under `cache` was built from the history with
    this fingerprint, by today's feature code, and holds every one of the dates; else None."""
    import json

    try:
        manifest = json.loads((cache / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    if (manifest.get("history_fingerprint") != fingerprint
            or manifest.get("table_schema_hash") != table_schema_hash()
            or not {str(d.date()) for d in dates} <= set(manifest.get("as_of", ()))
            or not (cache / TABLE_FILE).exists()):
        return None
    wanted = pa.array(dates.to_numpy(dtype="datetime64[ns]"), type=pa.timestamp("ns"))
    stored = pq.read_table(cache / TABLE_FILE, filters=pc.field("as_of_date").isin(wanted))
    rows = stored.to_pandas()
    if list(rows.columns) != feature_columns() or set(rows["as_of_date"]) != set(dates):
        return None
    return _finish([rows])


def cached_features(history_dir: str | os.PathLike, as_of_dates, cache_dir: str | os.PathLike,
                    *, engine: str = "pandas", scheduler: str | None = None) -> pd.DataFrame:
    """The feature table of every resident at `as_of_dates`, as `build_features` returns it.

    Reuses the table stored under `cache_dir` (as `twincare features --out` writes it) when it
    was built from this very history (same `HistoryStore.fingerprint()`), by today's feature
    code (same table schema hash) and holds every requested date; otherwise builds the table
    and stores it there. Rows from another history are never returned.
    """
    cache = Path(cache_dir)
    store = HistoryStore(Path(history_dir))
    dates = pd.DatetimeIndex(pd.to_datetime(list(as_of_dates))).unique().sort_values()
    _check_midnight(pd.Series(dates))
    before = store.fingerprint()
    reused = _stored_rows(cache, before, dates)
    if reused is not None:
        return reused
    table = build_features(load_history(history_dir), dates, engine=engine, scheduler=scheduler)
    if store.fingerprint() == before:  # the history did not change while it was read
        write_feature_table(table, cache, before, history=str(Path(history_dir).resolve()))
    return table
