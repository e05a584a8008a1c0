"""Ingestion of real data into the twin history: CSV or Parquet files already in a table's schema.

All or nothing: the file is read, its text parsed exactly into the declared types, the rows
validated (also against keys already in the history), and only a wholly valid file is appended as
one new part. A value that does not parse is reported (table, column, rule, count, example keys),
never turned into a null or a guess. Raw smart-home sensor logs live in `twin.ingest_events`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from twin.schema import TABLES, Column, TableSchema, ValidationReport, Violation, conform, validate
from twin.store import HistoryStore

# Text a CSV cell may hold to mean "no value".
NULL_TEXT = frozenset({"", "na", "n/a", "nan", "null", "none"})
TRUE_TEXT = frozenset({"true", "t", "1"})
FALSE_TEXT = frozenset({"false", "f", "0"})


@dataclass
class TableIngestion:
    """What `ingest_table` did: the validation report and the part written (None if refused)."""

    table: str
    source: Path
    report: ValidationReport
    written: Path | None

    @property
    def ok(self) -> bool:
        return self.report.ok


def _example_keys(df: pd.DataFrame, schema: TableSchema, mask: np.ndarray, n: int = 5) -> list[str]:
    cols = [k for k in schema.key if k in df.columns]
    rows = df.loc[mask].head(n)
    if not cols:
        return [f"row {i + 2}" for i in rows.index]  # CSV line number (header is line 1)
    out = []
    for row in rows[cols].itertuples(index=False):
        parts = []
        for v in row:
            if isinstance(v, pd.Timestamp) and v == v.normalize():
                parts.append(v.date().isoformat())
            else:
                parts.append(str(v))
        out.append("/".join(parts))
    return out


def _is_null_text(s: pd.Series) -> np.ndarray:
    return s.isna().to_numpy() | s.fillna("").str.strip().str.lower().isin(NULL_TEXT).to_numpy()


def _parse_column(text: pd.Series, col: Column) -> tuple[pd.Series, np.ndarray, str]:
    """Parse a column of CSV text into its kind; returns values, a mask of unparseable cells, rule."""
    null = _is_null_text(text)
    stripped = text.fillna("").str.strip()
    if col.kind in ("string", "category"):
        return text.where(~null).astype("str"), np.zeros(len(text), dtype=bool), ""
    if col.kind in ("int", "float"):
        num = pd.to_numeric(stripped.where(~null), errors="coerce").astype("float64")
        bad = ~null & num.isna().to_numpy()
        return num, bad, "not a number"
    if col.kind == "bool":
        low = stripped.str.lower()
        is_true = low.isin(TRUE_TEXT).to_numpy()
        is_false = low.isin(FALSE_TEXT).to_numpy()
        bad = ~null & ~is_true & ~is_false
        vals = pd.Series(pd.array([True if t else (False if f else None) for t, f in zip(is_true, is_false, strict=True)], dtype="boolean"), index=text.index)
        return vals, bad, "not a boolean (true/false/1/0)"
    if col.kind in ("date", "datetime"):
        cells = stripped.where(~null)
        zoned = cells.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True, na=False).to_numpy()
        vals = pd.to_datetime(cells.where(~zoned), format="ISO8601", errors="coerce").astype("datetime64[ns]")
        bad = ~null & vals.isna().to_numpy()
        return vals, bad, "not an ISO date/time without zone"
    raise ValueError(f"unknown kind {col.kind}")  # pragma: no cover - Column checks kinds


def read_csv_table(path: Path, schema: TableSchema) -> tuple[pd.DataFrame, list[Violation], dict[str, np.ndarray]]:
    """Read a CSV as text and parse each declared column exactly.

    Returns the parsed frame, the parse violations, and per column the mask of cells that did not
    parse (so that a later "null in a required column" does not count them twice).
    """
    try:
        text = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError as e:
        raise ValueError(f"{path.name}: empty file (a CSV needs at least its header line)") from e
    except pd.errors.ParserError as e:
        raise ValueError(f"{path.name}: not a readable CSV: {e}") from e
    text.index = pd.RangeIndex(len(text))
    out = pd.DataFrame(index=text.index)
    violations: list[Violation] = []
    failed: dict[str, np.ndarray] = {}
    for name in text.columns:
        if name not in schema.column_names:
            out[name] = text[name]  # validate reports it as not in the schema
            continue
        vals, bad, rule = _parse_column(text[name], schema.column(name))
        out[name] = vals
        if bad.any():
            failed[name] = bad
    # example keys need parsed key columns, so the violations are built after all columns
    for name, bad in failed.items():
        examples = [f"{k} ({text[name].iat[i]!r})" for k, i in zip(_example_keys(out, schema, bad), np.flatnonzero(bad), strict=False)]
        _, _, rule = _parse_column(text[name].iloc[:0], schema.column(name))
        violations.append(Violation(schema.name, name, rule, int(bad.sum()), examples))
    return out, violations, failed


def read_table_file(path: str | os.PathLike, table: str) -> tuple[pd.DataFrame, list[Violation], dict[str, np.ndarray]]:
    """Read a CSV or Parquet file meant for `table` (no validation yet)."""
    path = Path(path)
    if table not in TABLES:
        raise KeyError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    schema = TABLES[table]
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith(".parquet") or suffixes.endswith(".pq"):
        return pd.read_parquet(path), [], {}
    if suffixes.endswith(".csv") or suffixes.endswith(".csv.gz"):
        return read_csv_table(path, schema)
    raise ValueError(f"{path.name}: expected a .csv, .csv.gz or .parquet file")


def _existing_key_violation(df: pd.DataFrame, schema: TableSchema, store: HistoryStore) -> Violation | None:
    """Rows whose key is already in the history (appending them would duplicate a key)."""
    if not store.has(schema.name) or not len(df) or any(k not in df.columns for k in schema.key):
        return None
    residents = None
    if "resident_id" in schema.key and df["resident_id"].notna().all():
        residents = sorted(df["resident_id"].astype(str).unique())
    have = store.read(schema.name, columns=list(schema.key), residents=residents)
    if not len(have):
        return None
    try:
        hit = df[list(schema.key)].merge(have.drop_duplicates(), on=list(schema.key), how="left", indicator=True)
    except (ValueError, TypeError):
        return None  # key columns of the wrong type: validate already reports them
    mask = (hit["_merge"] == "both").to_numpy()
    if not mask.any():
        return None
    return Violation(schema.name, "+".join(schema.key), "key already in the history", int(mask.sum()), _example_keys(df, schema, mask))


def check_table(df: pd.DataFrame, table: str, store: HistoryStore | None = None,
                parse_violations: list[Violation] | None = None,
                parse_failed: dict[str, np.ndarray] | None = None) -> tuple[pd.DataFrame, ValidationReport]:
    """Conform and validate `df` for `table`, folding in parse failures and key clashes."""
    schema = TABLES[table]
    df = conform(df, schema)
    report = validate(df, schema)
    parse_failed = parse_failed or {}
    kept: list[Violation] = list(parse_violations or [])
    for v in report.violations:
        if v.rule == "null in a required column" and v.column in parse_failed:
            mask = df[v.column].isna().to_numpy() & ~parse_failed[v.column]
            if not mask.any():
                continue  # those nulls are the unparseable cells, already reported
            v = Violation(v.table, v.column, v.rule, int(mask.sum()), _example_keys(df, schema, mask))
        kept.append(v)
    if store is not None:
        clash = _existing_key_violation(df, schema, store)
        if clash is not None:
            kept.append(clash)
    return df, ValidationReport(table=table, rows=len(df), violations=kept)


def ingest_table(path: str | os.PathLike, table: str, out: str | os.PathLike, *, dry_run: bool = False) -> TableIngestion:
    """Validate a CSV/Parquet file for `table` and append it to the history at `out`, all or nothing."""
    store = HistoryStore(out)
    df, parse_violations, parse_failed = read_table_file(path, table)
    df, report = check_table(df, table, store, parse_violations, parse_failed)
    written = None
    if report.ok and len(df) and not dry_run:
        written = store.append(table, df, tag="ingest")
    return TableIngestion(table=table, source=Path(path), report=report, written=written)
