"""The online feature store: each resident's latest vector in SQLite, for serving.

`materialise` calls the same `build_features` as the training table, so a served vector equals the
training row of that resident and date. Vectors are stored as raw float64 bytes (exact, NaN kept),
stamped with the as-of date and the hash of the feature table schema; reading a store written by
different feature code is refused.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd

from features.pipeline import History, build_features
from features.registry import FEATURES, table_schema_hash

COUNT_DAYS = 400  # days of demand counts kept for forecasting: the demand features look back a year

_DDL = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS vectors (resident_id TEXT PRIMARY KEY, as_of_date TEXT NOT NULL, vector BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS counts (series_id TEXT NOT NULL, date TEXT NOT NULL, count REAL NOT NULL, "
    "PRIMARY KEY (series_id, date))",
)


@functools.cache
def _feature_index() -> pd.Index:
    return pd.Index(list(FEATURES), dtype="str")


class OnlineStoreError(RuntimeError):
    """The online store is empty or was written by a different feature schema."""


def latest_as_of(history: History) -> pd.Timestamp:
    """The day after the last recorded sensor day: the as-of date that sees all of the history."""
    sd = history.sensor_days
    if sd is None or sd.empty:
        raise ValueError("cannot choose the latest as-of date: the history has no sensor_days")
    return (sd["date"].max() + pd.Timedelta(days=1)).normalize()


class OnlineStore:
    """Latest feature vectors per resident (SQLite file at `path`)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")  # readers keep reading while materialise writes
        for stmt in _DDL:
            con.execute(stmt)
        return con

    def _meta(self, key: str, con: sqlite3.Connection | None = None) -> str | None:
        if con is None:
            if not self.path.exists():
                return None
            with closing(self._connect()) as own:
                return self._meta(key, own)
        row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @property
    def schema_hash(self) -> str | None:
        """Hash of the feature table schema the vectors were built with (None if empty)."""
        return self._meta("schema_hash")

    @property
    def as_of(self) -> pd.Timestamp | None:
        value = self._meta("as_of")
        return pd.Timestamp(value) if value else None

    def materialise(self, history: History, as_of=None, **build_options) -> int:
        """Build every resident's vector at `as_of` (default: latest) and replace the store."""
        as_of = latest_as_of(history) if as_of is None else pd.Timestamp(as_of)
        table = build_features(history, [as_of], **build_options)
        values = table[list(FEATURES)].to_numpy(dtype=np.float64)
        rows = [
            (rid, as_of.date().isoformat(), values[i].tobytes())
            for i, rid in enumerate(table["resident_id"].astype("str"))
        ]
        with closing(self._connect()) as con, con:
            con.execute("DELETE FROM vectors")
            con.executemany("INSERT INTO vectors VALUES (?, ?, ?)", rows)
            meta = {
                "schema_hash": table_schema_hash(),
                "as_of": as_of.date().isoformat(),
                "columns": json.dumps(list(FEATURES)),
            }
            con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))
        counts = recent_counts(history, as_of)
        if counts is not None:
            self.put_counts(counts, replace=True)
        return len(rows)

    def check(self) -> None:
        """Raise OnlineStoreError unless the store exists and holds vectors of the code's schema."""
        if not self.path.exists():
            raise OnlineStoreError(f"online store {self.path} does not exist; run `twincare materialise` first")
        with closing(self._connect()) as con:
            self._check_schema(con)

    def _check_schema(self, con: sqlite3.Connection) -> None:
        stored = self._meta("schema_hash", con)
        if stored is None:
            raise OnlineStoreError(f"online store {self.path} is empty; run `twincare materialise` first")
        if stored != table_schema_hash():
            raise OnlineStoreError(
                f"online store {self.path} was built with feature schema {stored}, the code has "
                f"{table_schema_hash()}; run `twincare materialise` again"
            )

    def get(self, resident_ids: Iterable[str]) -> pd.DataFrame:
        """Vectors of `resident_ids` in the order asked, with the columns of `build_features`.

        Raises KeyError naming the ids the store does not hold.
        """
        ids = [str(r) for r in resident_ids]
        found: dict[str, tuple[str, bytes]] = {}
        with closing(self._connect()) as con:
            self._check_schema(con)
            for k in range(0, len(ids), 500):
                chunk = ids[k:k + 500]
                marks = ",".join("?" * len(chunk))
                for rid, day, blob in con.execute(
                    f"SELECT resident_id, as_of_date, vector FROM vectors WHERE resident_id IN ({marks})", chunk
                ):
                    found[rid] = (day, blob)
        unknown = [r for r in ids if r not in found]
        if unknown:
            shown = ", ".join(unknown[:20]) + (" ..." if len(unknown) > 20 else "")
            raise KeyError(f"unknown resident id(s) in the online store: {shown}")
        n = len(FEATURES)
        matrix = np.empty((len(ids), n), dtype=np.float64)
        for i, r in enumerate(ids):
            matrix[i] = np.frombuffer(found[r][1], dtype=np.float64, count=n)
        out = pd.DataFrame(matrix, columns=_feature_index(), copy=False)
        out.insert(0, "as_of_date", np.array([found[r][0] for r in ids], dtype="datetime64[D]").astype("datetime64[ns]"))
        out.insert(0, "resident_id", pd.array(ids, dtype="str"))
        return out

    def resident_ids(self) -> list[str]:
        if not self.path.exists():
            return []
        with closing(self._connect()) as con:
            return [r[0] for r in con.execute("SELECT resident_id FROM vectors ORDER BY resident_id")]

    def put_counts(self, counts: pd.DataFrame, *, replace: bool = False) -> int:
        """Store daily demand counts (series_id, date, count); `replace` drops what was there."""
        missing = {"series_id", "date", "count"} - set(counts.columns)
        if missing:
            raise ValueError(f"counts need columns series_id, date, count; missing {sorted(missing)}")
        days = pd.to_datetime(counts["date"]).dt.strftime("%Y-%m-%d")
        rows = list(zip(counts["series_id"].astype("str"), days, counts["count"].astype(float), strict=True))
        with closing(self._connect()) as con, con:
            if replace:
                con.execute("DELETE FROM counts")
            con.executemany("INSERT OR REPLACE INTO counts VALUES (?, ?, ?)", rows)
        return len(rows)

    def counts(self, series_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Stored daily counts, sorted by series and date."""
        with closing(self._connect()) as con:
            if series_ids is None:
                rows = con.execute("SELECT series_id, date, count FROM counts").fetchall()
            else:
                ids = list(series_ids)
                marks = ",".join("?" * len(ids)) or "''"
                rows = con.execute(
                    f"SELECT series_id, date, count FROM counts WHERE series_id IN ({marks})", ids
                ).fetchall()
        out = pd.DataFrame(rows, columns=["series_id", "date", "count"])
        out["series_id"] = out["series_id"].astype("str")
        out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
        out["count"] = out["count"].astype("float64")
        return out.sort_values(["series_id", "date"]).reset_index(drop=True)


def recent_counts(history: History, as_of, days: int = COUNT_DAYS) -> pd.DataFrame | None:
    """The last `days` days of demand counts before `as_of`, when the demand module exists."""
    if history.service_requests is None or importlib.util.find_spec("features.demand") is None:
        return None
    from features import demand

    if not hasattr(demand, "daily_counts"):
        return None
    as_of = pd.Timestamp(as_of)
    sr = history.service_requests
    sr = sr[sr["timestamp"] < as_of]  # series seen after the as-of date are not known yet
    if sr.empty:
        return None
    # Days before the history began are unknown, not zero: never fill them in.
    start = max(as_of - pd.Timedelta(days=days), sr["timestamp"].min().normalize())
    return demand.daily_counts(sr, start=start, end=as_of)
