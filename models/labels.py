"""Point-in-time label helpers shared by the risk models (pure DataFrame functions)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def check_index(index: pd.DataFrame) -> pd.DataFrame:
    """The (resident_id, as_of_date) pairs a label or baseline is computed for."""
    missing = {"resident_id", "as_of_date"} - set(index.columns)
    if missing:
        raise ValueError(f"index lacks column(s) {sorted(missing)}; need resident_id, as_of_date")
    out = index[["resident_id", "as_of_date"]].copy()
    out["resident_id"] = out["resident_id"].astype(str)
    out["as_of_date"] = pd.to_datetime(out["as_of_date"]).astype("datetime64[ns]")
    return out.reset_index(drop=True)


def any_in_window(index: pd.DataFrame, dated: pd.DataFrame, days: int) -> np.ndarray:
    """For each pair: does `dated` (resident_id, date) hold a row in [as_of, as_of + days)?"""
    idx = check_index(index)
    if dated is None or dated.empty:
        return np.zeros(len(idx), dtype=bool)
    d = dated[["resident_id", "date"]].copy()
    d["resident_id"] = d["resident_id"].astype(str)
    d["date"] = pd.to_datetime(d["date"]).astype("datetime64[ns]")
    d = d.sort_values("date")
    left = idx.assign(_row=np.arange(len(idx))).sort_values("as_of_date")
    m = pd.merge_asof(
        left, d.rename(columns={"date": "_next"}), left_on="as_of_date", right_on="_next",
        by="resident_id", direction="forward", allow_exact_matches=True,
    )
    hit = m["_next"].notna() & (m["_next"] < m["as_of_date"] + pd.Timedelta(days=days))
    out = np.zeros(len(idx), dtype=bool)
    out[m["_row"].to_numpy()] = hit.to_numpy()
    return out


def _value_lookup(idx: pd.DataFrame, dated: pd.DataFrame, column: str, *, forward: bool) -> pd.DataFrame:
    """Each checked pair's nearest non-null `column`: the first dated on/after as_of, or the last before it."""
    d = dated.loc[dated[column].notna(), ["resident_id", "date", column]].copy()
    d["resident_id"] = d["resident_id"].astype(str)
    d["date"] = pd.to_datetime(d["date"]).astype("datetime64[ns]")
    d = d.sort_values("date").rename(columns={"date": "_when", column: "_value"})
    left = idx.assign(_row=np.arange(len(idx))).sort_values("as_of_date")
    m = pd.merge_asof(left, d, left_on="as_of_date", right_on="_when", by="resident_id",
                      direction="forward" if forward else "backward", allow_exact_matches=forward)
    return m


def next_value(index: pd.DataFrame, dated: pd.DataFrame, column: str, days: int) -> np.ndarray:
    """For each pair: the first non-null `column` dated in [as_of, as_of + days); NaN if none."""
    idx = check_index(index)
    out = np.full(len(idx), np.nan)
    if dated is None or dated.empty:
        return out
    m = _value_lookup(idx, dated, column, forward=True)
    ok = m["_when"].notna() & (m["_when"] < m["as_of_date"] + pd.Timedelta(days=days))
    out[m["_row"].to_numpy()] = np.where(ok, m["_value"].astype(float), np.nan)
    return out


def last_value_before(index: pd.DataFrame, dated: pd.DataFrame, column: str) -> np.ndarray:
    """For each pair: the latest non-null `column` dated strictly before as_of; NaN if none."""
    idx = check_index(index)
    out = np.full(len(idx), np.nan)
    if dated is None or dated.empty:
        return out
    m = _value_lookup(idx, dated, column, forward=False)
    out[m["_row"].to_numpy()] = m["_value"].astype(float).to_numpy()
    return out


def count_before(index: pd.DataFrame, dated: pd.DataFrame, days: int) -> np.ndarray:
    """For each pair: rows of `dated` in [as_of - days, as_of)."""
    idx = check_index(index)
    if dated is None or dated.empty:
        return np.zeros(len(idx))
    d = dated[["resident_id", "date"]].copy()
    d["resident_id"] = d["resident_id"].astype(str)
    d["date"] = pd.to_datetime(d["date"]).astype("datetime64[ns]")
    m = idx.assign(_row=np.arange(len(idx))).merge(d, on="resident_id", how="inner")
    inside = (m["date"] < m["as_of_date"]) & (m["date"] >= m["as_of_date"] - pd.Timedelta(days=days))
    counts = m.loc[inside].groupby("_row").size()
    out = np.zeros(len(idx))
    out[counts.index.to_numpy()] = counts.to_numpy()
    return out
