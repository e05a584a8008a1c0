"""The twin history contract: every table declared once, with types, ranges and keys.

Loading or writing a table validates it. A bad row is never dropped or coerced: validation
returns a report (table, column, rule, count, example keys) and `require_valid` raises it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

# Vocabularies shared by the simulator, ingestion, features and the service.
SEXES = ("F", "M")
EVENT_TYPES = ("fall", "hospitalisation", "bereavement", "move", "move_in")
REQUEST_CATEGORIES = ("meals", "companionship", "transport", "household", "health_escort")
TASK_KINDS = ("home_hazard_check", "walk", "companionship", "meals", "transport", "household", "health_escort")
# Planned hours of help of each task kind: the credits a task earns before urgency and scarcity,
# and the hours a request of that category takes. The simulated twin is calibrated with these.
TASK_HOURS = MappingProxyType({
    "meals": 1.0,
    "companionship": 1.5,
    "transport": 2.0,
    "household": 2.0,
    "health_escort": 2.5,
    "home_hazard_check": 1.5,
    "walk": 1.0,
})
TASK_STATUSES = ("open", "claimed", "completed", "expired", "cancelled")
VISIT_SOURCES = ("timebank", "family", "care")

# Planted causes the simulator records in truth/ (never read by feature code). Each feature
# declares the one of these it measures (per model), so explanations can be checked against the truth.
FALL_CAUSES = (
    "acute_episode",
    "previous_fall",
    "gait_balance",
    "polypharmacy",
    "fear_of_falling",
    "cognitive_impairment",
    "poor_vision",
    "frailty",
)
ISOLATION_CAUSES = ("lives_alone", "bereavement", "low_mobility", "few_visits", "trait")

KINDS = ("string", "int", "float", "bool", "date", "datetime", "category")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # one of KINDS
    description: str
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] = ()
    unit: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name}: unknown kind {self.kind!r}")
        if self.kind == "category" and not self.values:
            raise ValueError(f"column {self.name}: a category needs its values")


@dataclass(frozen=True)
class TableSchema:
    name: str
    description: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    time_column: str | None = None  # the column that says when a row was recorded

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


def _c(name, kind, description, **kw) -> Column:
    return Column(name=name, kind=kind, description=description, **kw)


RESIDENTS = TableSchema(
    name="residents",
    description="Older residents of the community; pseudonymous ids only.",
    key=("resident_id",),
    columns=(
        _c("resident_id", "string", "pseudonymous resident id"),
        _c("birth_year", "int", "year of birth", min=1900, max=1965),
        _c("sex", "category", "sex", values=SEXES),
        _c("grid_id", "string", "community grid cell of the home"),
        _c("lives_alone", "bool", "lives alone"),
        _c("chronic_conditions", "int", "number of chronic conditions", min=0, max=15),
        _c("medication_count", "int", "number of regular medications", min=0, max=30),
        _c("vision_impairment", "bool", "poor vision"),
        _c("cognitive_impairment", "bool", "dementia or cognitive impairment"),
        _c("walking_aid", "bool", "uses a walking aid"),
    ),
)

SENSOR_DAYS = TableSchema(
    name="sensor_days",
    description=(
        "One row per resident per day from home sensors and wearables. A missing day is a missing "
        "row; a sensor that was down that day is a null in its column."
    ),
    key=("resident_id", "date"),
    time_column="date",
    columns=(
        _c("resident_id", "string", "pseudonymous resident id"),
        _c("date", "date", "day the readings cover"),
        _c("steps", "float", "steps walked", nullable=True, min=0, max=60000, unit="steps"),
        _c("gait_speed", "float", "walking speed", nullable=True, min=0.05, max=2.5, unit="m/s"),
        _c("night_toilet_visits", "float", "night-time toilet visits", nullable=True, min=0, max=20, unit="a night"),
        _c("sleep_hours", "float", "hours asleep", nullable=True, min=0, max=16, unit="h"),
        _c("sleep_interruptions", "float", "times sleep was interrupted", nullable=True, min=0, max=30),
        _c("time_out_of_home", "float", "hours spent out of home", nullable=True, min=0, max=24, unit="h"),
        _c("kitchen_activity", "float", "kitchen sensor activations", nullable=True, min=0, max=500),
        _c("longest_inactivity", "float", "longest stretch without movement while awake", nullable=True, min=0, max=24, unit="h"),
        _c("visitors_detected", "float", "visitors detected at home", nullable=True, min=0, max=30),
        _c("phone_calls", "float", "phone calls", nullable=True, min=0, max=60),
        _c("resting_heart_rate", "float", "resting heart rate", nullable=True, min=30, max=150, unit="bpm"),
    ),
)

ASSESSMENTS = TableSchema(
    name="assessments",
    description="Sparse clinical and social assessments; a value counts from the day it was recorded.",
    key=("resident_id", "date"),
    time_column="date",
    columns=(
        _c("resident_id", "string", "pseudonymous resident id"),
        _c("date", "date", "day of the assessment"),
        _c("tug_seconds", "float", "Timed Up and Go", nullable=True, min=3, max=120, unit="s"),
        _c("fear_of_falling", "bool", "worried about falling", nullable=True),
        _c("steadi_fell_past_year", "bool", "STEADI: fallen in the past year", nullable=True),
        _c("steadi_unsteady", "bool", "STEADI: feels unsteady when standing or walking", nullable=True),
        _c("loneliness_score", "int", "UCLA-3 loneliness score (3-9; 6 or more is lonely)", nullable=True, min=3, max=9),
    ),
)

EVENTS = TableSchema(
    name="events",
    description="Falls, hospitalisations, bereavements, moves away (`move`) and moves into the community (`move_in`).",
    key=("event_id",),
    time_column="date",
    columns=(
        _c("event_id", "string", "event id"),
        _c("resident_id", "string", "pseudonymous resident id"),
        _c("date", "date", "day of the event"),
        _c("type", "category", "kind of event", values=EVENT_TYPES),
        _c("injury", "bool", "the fall caused an injury (falls only)", nullable=True),
    ),
)

SERVICE_REQUESTS = TableSchema(
    name="service_requests",
    description="Requests for help, per resident, grid and category.",
    key=("request_id",),
    time_column="timestamp",
    columns=(
        _c("request_id", "string", "request id"),
        _c("timestamp", "datetime", "when the request was made"),
        _c("resident_id", "string", "pseudonymous resident id"),
        _c("grid_id", "string", "grid cell of the request"),
        _c("category", "category", "kind of help asked for", values=REQUEST_CATEGORIES),
    ),
)

VISITS = TableSchema(
    name="visits",
    description="Visits received: by time-bank volunteers (written back when a task completes), family, care staff.",
    key=("visit_id",),
    time_column="date",
    columns=(
        _c("visit_id", "string", "visit id"),
        _c("resident_id", "string", "pseudonymous resident id"),
        _c("date", "date", "day of the visit"),
        _c("kind", "category", "what the visit was for", values=TASK_KINDS),
        _c("source", "category", "who visited", values=VISIT_SOURCES),
        _c("hours", "float", "length of the visit", min=0, max=24, unit="h"),
        _c("task_id", "string", "time-bank task the visit completed", nullable=True),
    ),
)

VOLUNTEERS = TableSchema(
    name="volunteers",
    description="Time-bank members who give help.",
    key=("volunteer_id",),
    columns=(
        _c("volunteer_id", "string", "volunteer id"),
        _c("grid_id", "string", "home grid cell"),
        _c("joined_on", "date", "day the volunteer joined"),
        _c("weekly_hours", "float", "hours a week the volunteer offers", min=0, max=80, unit="h"),
    ),
)

TASKS = TableSchema(
    name="tasks",
    description="Time-bank tasks and their lifecycle.",
    key=("task_id",),
    time_column="created_at",
    columns=(
        _c("task_id", "string", "task id"),
        _c("resident_id", "string", "pseudonymous resident id"),
        _c("grid_id", "string", "grid cell of the task"),
        _c("kind", "category", "kind of task", values=TASK_KINDS),
        _c("reason", "string", "why the task was opened"),
        _c("created_at", "datetime", "when the task was opened"),
        _c("due_date", "date", "when the task should be done"),
        _c("status", "category", "lifecycle state", values=TASK_STATUSES),
        _c("volunteer_id", "string", "volunteer who claimed it", nullable=True),
        _c("credits", "float", "time credits offered", min=0, max=100, unit="h"),
        _c("completed_at", "datetime", "when it was completed", nullable=True),
    ),
)

LEDGER = TableSchema(
    name="ledger",
    description="Double-entry time-credit movements; the movements of one transfer sum to zero.",
    key=("entry_id",),
    time_column="timestamp",
    columns=(
        _c("entry_id", "string", "movement id"),
        _c("transfer_id", "string", "transfer the movement belongs to"),
        _c("timestamp", "datetime", "when the transfer was booked"),
        _c("account", "string", "account, e.g. fund:community or volunteer:V00012"),
        _c("amount", "float", "signed hours; the movements of a transfer sum to zero", min=-1000, max=1000, unit="h"),
        _c("memo", "string", "what the transfer was for"),
    ),
)

TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in (RESIDENTS, SENSOR_DAYS, ASSESSMENTS, EVENTS, SERVICE_REQUESTS, VISITS, VOLUNTEERS, TASKS, LEDGER)
}


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


@dataclass
class Violation:
    table: str
    column: str
    rule: str
    count: int
    examples: list[str]

    def __str__(self) -> str:
        ex = ", ".join(self.examples)
        return f"{self.table}.{self.column}: {self.rule} ({self.count} rows; e.g. {ex})"


@dataclass
class ValidationReport:
    table: str
    rows: int
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def __str__(self) -> str:
        if self.ok:
            return f"{self.table}: {self.rows} rows, valid"
        lines = [f"{self.table}: {self.rows} rows, {len(self.violations)} rule(s) broken"]
        lines += [f"  - {v}" for v in self.violations]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "table": self.table,
            "rows": self.rows,
            "ok": self.ok,
            "violations": [v.__dict__ for v in self.violations],
        }


class SchemaError(ValueError):
    """A table broke its declared schema; carries the report."""

    def __init__(self, report: ValidationReport):
        super().__init__(str(report))
        self.report = report


def _keys_of(df: pd.DataFrame, schema: TableSchema, mask: np.ndarray, n: int = 5) -> list[str]:
    cols = [k for k in schema.key if k in df.columns]
    sub = df.loc[mask, cols].head(n) if cols else df.loc[mask].head(n)
    if not cols:
        return [f"row {i}" for i in sub.index]
    return ["/".join(_key_text(v) for v in row) for row in sub.itertuples(index=False)]


def _key_text(v) -> str:
    if isinstance(v, pd.Timestamp) and v == v.normalize():
        return v.date().isoformat()
    return str(v)


def _is_boolean_value(v) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return True
    return isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1)


def _kind_ok(s: pd.Series, col: Column) -> bool:
    k = col.kind
    if k == "string":
        return pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s)
    if k == "category":
        return (
            pd.api.types.is_string_dtype(s)
            or pd.api.types.is_object_dtype(s)
            or isinstance(s.dtype, pd.CategoricalDtype)
        )
    if k == "int":
        # floats pass here so that "not a whole number" and "null" name the offending rows
        return (pd.api.types.is_integer_dtype(s) and not pd.api.types.is_bool_dtype(s)) or (
            pd.api.types.is_float_dtype(s)
        )
    if k == "float":
        return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    if k == "bool":
        return pd.api.types.is_bool_dtype(s) or (
            col.nullable and (pd.api.types.is_object_dtype(s) or pd.api.types.is_float_dtype(s))
        )
    if k in ("date", "datetime"):
        return pd.api.types.is_datetime64_any_dtype(s) and getattr(s.dtype, "tz", None) is None
    return False


def validate(df: pd.DataFrame, schema: TableSchema) -> ValidationReport:
    """Check a frame against its schema; never modifies it."""
    rep = ValidationReport(table=schema.name, rows=len(df))

    def add(column: str, rule: str, mask) -> None:
        mask = np.asarray(mask, dtype=bool)
        count = int(mask.sum())
        if count:
            rep.violations.append(Violation(schema.name, column, rule, count, _keys_of(df, schema, mask)))

    missing = [c for c in schema.column_names if c not in df.columns]
    for c in missing:
        rep.violations.append(Violation(schema.name, c, "column missing", len(df), []))
    extra = [c for c in df.columns if c not in schema.column_names]
    for c in extra:
        rep.violations.append(Violation(schema.name, c, "column not in schema", len(df), []))

    for col in schema.columns:
        if col.name not in df.columns:
            continue
        s = df[col.name]
        if not _kind_ok(s, col):
            bad = np.ones(len(df), dtype=bool)
            if col.kind == "bool" and (
                pd.api.types.is_numeric_dtype(s) or pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)
            ):
                bad = s.notna().to_numpy() & ~s.map(_is_boolean_value).to_numpy(dtype=bool)
            if bad.any():
                add(col.name, f"expected {col.kind}, got {s.dtype}", bad)
            else:
                add(col.name, f"expected {col.kind}, got {s.dtype}", np.ones(len(df), dtype=bool))
            if not len(df):
                rep.violations.append(Violation(schema.name, col.name, f"expected {col.kind}, got {s.dtype}", 0, []))
            continue
        isna = s.isna().to_numpy()
        if not col.nullable:
            add(col.name, "null in a required column", isna)
        if col.kind in ("int", "float"):
            vals = s.to_numpy(dtype="float64", na_value=np.nan)
            add(col.name, "not finite", np.isinf(vals))
            if col.min is not None:
                add(col.name, f"below minimum {col.min}", vals < col.min)
            if col.max is not None:
                add(col.name, f"above maximum {col.max}", vals > col.max)
            if col.kind == "int":
                with np.errstate(invalid="ignore"):
                    add(col.name, "not a whole number", ~isna & (np.floor(vals) != vals))
        if col.kind == "category":
            add(col.name, f"not one of {', '.join(col.values)}", ~isna & ~s.isin(col.values).to_numpy())
        if col.kind in ("string", "category") and pd.api.types.is_object_dtype(s):
            add(col.name, "not a string", ~isna & ~s.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool))
        if col.kind == "bool" and not pd.api.types.is_bool_dtype(s):
            add(col.name, "not a boolean", ~isna & ~s.map(_is_boolean_value).to_numpy(dtype=bool))
        if col.kind == "string":
            add(col.name, "empty string", ~isna & (s.astype("string").str.len() == 0).fillna(False).to_numpy())
        if col.kind == "date":
            ts = pd.to_datetime(s)
            add(col.name, "date with a time of day", ~isna & (ts != ts.dt.normalize()).to_numpy())

    if not missing and len(df):
        dup = df.duplicated(list(schema.key), keep=False).to_numpy()
        add("+".join(schema.key), "duplicate key", dup)

    if schema.name == "ledger" and not missing and len(df):
        sums = df.groupby("transfer_id")["amount"].transform("sum").to_numpy()
        add("amount", "transfer does not sum to zero", np.abs(sums) > 1e-9)
    return rep


def require_valid(df: pd.DataFrame, schema: TableSchema | str) -> pd.DataFrame:
    """Return `df` unchanged if valid, else raise SchemaError with the report."""
    if isinstance(schema, str):
        schema = TABLES[schema]
    rep = validate(df, schema)
    if not rep.ok:
        raise SchemaError(rep)
    return df


def empty_frame(schema: TableSchema | str) -> pd.DataFrame:
    """A zero-row frame with the schema's columns and dtypes."""
    if isinstance(schema, str):
        schema = TABLES[schema]
    return pd.DataFrame({c.name: pd.Series([], dtype=_empty_dtype(c)) for c in schema.columns})


def _all_null_dtype(col: Column, *, empty: bool) -> str:
    """Dtype of a column with no values: nulls need float64 for ints and `boolean` for bools."""
    if empty:
        return _empty_dtype(col)
    return {"int": "float64", "bool": "boolean"}.get(col.kind, _PANDAS_DTYPES[col.kind])


def _empty_dtype(col: Column) -> str:
    if col.nullable and col.kind == "int":
        return "float64"
    if col.nullable and col.kind == "bool":
        return "boolean"
    return _PANDAS_DTYPES[col.kind]


_PANDAS_DTYPES = {
    "string": "str",
    "category": "str",
    "int": "int64",
    "float": "float64",
    "bool": "bool",
    "date": "datetime64[ns]",
    "datetime": "datetime64[ns]",
}


def _all_whole(s: pd.Series) -> bool:
    vals = s.dropna().to_numpy(dtype="float64")
    return bool(np.all(np.isfinite(vals) & (np.floor(vals) == vals)))


def _all_python_type(s: pd.Series, types: tuple[type, ...]) -> bool:
    return all(isinstance(v, types) for v in s.dropna())


def _conform_column(s: pd.Series, col: Column) -> pd.Series | None:
    """The column cast to its canonical dtype, or None when the cast would change a value."""
    k = col.kind
    if not s.notna().any() and getattr(s.dtype, "tz", None) is None:
        return s.astype(_all_null_dtype(col, empty=len(s) == 0))  # nothing to lose
    if k in ("date", "datetime"):
        if pd.api.types.is_datetime64_any_dtype(s):
            if getattr(s.dtype, "tz", None) is not None:
                return None  # a zone offset is information; leave it for validate to report
            return s.astype("datetime64[ns]")
        if pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s):
            parsed = pd.to_datetime(s, format="ISO8601")
            if getattr(parsed.dtype, "tz", None) is not None:
                return None
            return parsed.astype("datetime64[ns]")
        return None  # numbers are not dates
    if k in ("string", "category"):
        if isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(s):
            return s.astype("str")
        if pd.api.types.is_object_dtype(s):
            return s.astype("str") if _all_python_type(s, (str,)) else None
        if pd.api.types.is_integer_dtype(s) and not pd.api.types.is_bool_dtype(s):
            return s.astype("str")  # integer ids read as numbers: exact and reversible
        return None
    if k in ("int", "float"):
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            return None
        if k == "float":
            return s.astype("float64")
        if not _all_whole(s):
            return None
        return s.astype("float64") if s.isna().any() else s.astype("int64")
    if k == "bool":
        if pd.api.types.is_bool_dtype(s):
            return s.astype("boolean") if s.isna().any() else s.astype("bool")
        if pd.api.types.is_numeric_dtype(s):
            vals = s.dropna()
            if not vals.isin([0, 1]).all():
                return None
        elif pd.api.types.is_object_dtype(s):
            if not _all_python_type(s, (bool, np.bool_)):
                return None
        else:
            return None
        return s.astype("boolean") if s.isna().any() else s.astype("bool")
    return None


def conform(df: pd.DataFrame, schema: TableSchema | str) -> pd.DataFrame:
    """Cast columns to their canonical dtypes where that loses nothing (used by writers).

    Nullable ints become float64 and nullable bools become `boolean`. A cast that would change a
    value (1.5 to an int, "no" to a bool, a number to a date) is not made: the column is left as it
    is for `validate` to report.
    """
    if isinstance(schema, str):
        schema = TABLES[schema]
    out = df.copy()
    for col in schema.columns:
        if col.name not in out.columns:
            continue
        try:
            cast = _conform_column(out[col.name], col)
        except (TypeError, ValueError, OverflowError):
            cast = None
        if cast is not None:
            out[col.name] = cast
    return out
