"""The history store: one Parquet dataset per table under a root folder.

Appending writes a new part file; the past is never rewritten. Reads select columns and can
filter rows by time range or resident before they reach pandas.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from twin.schema import TABLES, TableSchema, conform, empty_frame, require_valid


def _ts(value) -> pa.Scalar:
    return pa.scalar(pd.Timestamp(value).as_unit("ns").value, type=pa.timestamp("ns"))


@dataclass(frozen=True)
class HistoryStore:
    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    def table_dir(self, table: str) -> Path:
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
        return self.root / table

    def has(self, table: str) -> bool:
        d = self.table_dir(table)
        return d.is_dir() and any(d.glob("*.parquet"))

    def append(self, table: str, df: pd.DataFrame, *, validate: bool = True, tag: str = "") -> Path:
        """Validate and append rows as a new part file (atomic: temp file, then rename)."""
        d = self.table_dir(table)
        schema = TABLES[table]
        df = conform(df, schema)
        if validate:
            require_valid(df, schema)  # before column selection: extra or missing columns are errors
        df = df[schema.column_names]
        d.mkdir(parents=True, exist_ok=True)
        # time-ordered names: a read returns parts in the order they were appended
        stamp = f"{time.time_ns():020d}"
        name = f"part-{stamp}-{tag + '-' if tag else ''}{uuid.uuid4().hex[:12]}.parquet"
        tmp = d / f".{name}.tmp"
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp, compression="zstd")
        os.replace(tmp, d / name)
        return d / name

    def write(self, table: str, df: pd.DataFrame, *, validate: bool = True) -> Path:
        """Replace a table wholly (for simulator output and snapshot tables like residents)."""
        d = self.table_dir(table)
        if d.exists():
            for p in d.glob("*.parquet"):
                p.unlink()
        return self.append(table, df, validate=validate, tag="base")

    def read(
        self,
        table: str,
        columns: Sequence[str] | None = None,
        *,
        start=None,
        end=None,
        residents: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Read a table; `start`/`end` bound its time column (start inclusive, end exclusive)."""
        self.table_dir(table)  # unknown table -> KeyError naming the tables
        schema: TableSchema = TABLES[table]
        unknown = [c for c in (columns or ()) if c not in schema.column_names]
        if unknown:
            raise KeyError(f"{table} has no column(s) {', '.join(map(repr, unknown))}")
        if (start is not None or end is not None) and schema.time_column is None:
            raise ValueError(f"{table} has no time column to filter on")
        if residents is not None and "resident_id" not in schema.column_names:
            raise ValueError(f"{table} has no resident_id column to filter on")
        if not self.has(table):
            out = empty_frame(schema)
            return out[list(columns)] if columns else out
        dataset = ds.dataset(str(self.table_dir(table)), format="parquet")
        flt = None
        if start is not None or end is not None:
            tcol = ds.field(schema.time_column)
            if start is not None:
                f = tcol >= _ts(start)
                flt = f if flt is None else flt & f
            if end is not None:
                f = tcol < _ts(end)
                flt = f if flt is None else flt & f
        if residents is not None:
            ids = pa.array([str(r) for r in residents], type=dataset.schema.field("resident_id").type)
            f = ds.field("resident_id").isin(ids)  # typed, so that an empty list selects nothing
            flt = f if flt is None else flt & f
        tbl = dataset.to_table(columns=list(columns) if columns else None, filter=flt)
        return tbl.to_pandas()

    def tables(self) -> list[str]:
        return [t for t in TABLES if self.has(t)]

    def parts(self, table: str) -> list[Path]:
        """The Parquet part files of a table, in the order they were appended."""
        d = self.table_dir(table)
        return sorted(d.glob("*.parquet")) if d.is_dir() else []

    def fingerprint(self) -> str:
        """A content hash of the recorded history: equal fingerprints, equal tables.

        Covers every Parquet part of every declared table (table, file name, size and a BLAKE2
        digest of its bytes), so appending, replacing or editing a part changes it. Not covered:
        truth/ (the simulator's hidden truth), manifest.json and any other file in the folder.
        Costs one read of the parts' bytes, no Parquet decoding.
        """
        h = hashlib.sha256(b"twincare-history-1\n")
        for table in TABLES:
            for part in self.parts(table):
                digest = hashlib.blake2b(digest_size=16)
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 20):
                        digest.update(chunk)
                h.update(f"{table}/{part.name} {part.stat().st_size} {digest.hexdigest()}\n".encode())
        return h.hexdigest()[:32]
