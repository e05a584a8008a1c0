"""Raw smart-home sensor event logs -> `sensor_days` rows.

Two line formats are read:
- CASAS: `date time sensor value [activity...]`, e.g. `2010-11-04 00:03:50.209589 M003 ON`.
  Values ON/OPEN start an activation and OFF/CLOSE/CLOSED end it; numeric values are readings
  (temperature, light) that only show the system was alive. Trailing activity annotations are kept
  apart (returned, never used for the measures).
- intervals (van Kasteren): `start end sensor_id value`, each time either `25-Feb-2008 00:20:14`
  (two tokens) or ISO (`2008-02-25T00:20:14`). A line with value 1/ON/OPEN is an interval during
  which the sensor was active; value 0/OFF lines are counted and skipped.

A sensor map (CSV `sensor,role[,note]` or JSON) gives each sensor a role (see ROLES). Unmapped
sensors are reported and ignored. A `chair` (a seat's pressure sensor, like the bed's) only shows
that someone is at home; sitting still in it is inactivity like any other.

Cleaning (everything odd is counted in the report, with examples):
- malformed lines are skipped and reported with line numbers; the rest is still read;
- lines are sorted by time (stable); exact duplicate firings are dropped, and so are repeated
  same-state firings (an ON while already on, an OFF while already off);
- an activation longer than `stuck_on_hours` (bed and chair: `bed_stuck_on_hours`) is a sensor stuck on: it
  is capped at that length and flagged; one still on at the end of the log ends there (or capped);
- a silence of `outage_hours` or more is an outage (unobserved time) unless it runs from a
  front-door event to a front-door event (the resident was away);
- only days with at least one event get a row: a day without events is missing, never zeros. A
  day not wholly observed (start or end of the log, next to an outage) is a partial day, flagged.

The measures, per calendar day D (all times are the log's local clock):
- night_toilet_visits: toilet/bathroom activations starting in the night window [D-1 22:00, D 06:00)
  (the night is attributed to the day it ends, so a row holds nothing later than its own day);
  an activation starting within `toilet_merge_minutes` of the end of the previous one is the same
  visit. Null unless the whole window was observed and the resident was home for some of it.
- time_out_of_home: an absence runs from a front-door event to the next in-home presence (motion or
  bed) when it lasts at least `absence_min_minutes`; hours of absence falling in D (observed part).
- sleep_hours, sleep_interruptions: over the sleep window [D-1 20:00, D 10:00). Sleep bouts are bed
  occupancy (gaps under `bed_merge_minutes` closed) when the map has a bed sensor, otherwise
  stretches of at least `sleep_quiet_minutes` without in-home activity while at home that follow
  bedroom or bathroom activity (any such stretch when there is no bedroom sensor). Bouts separated
  by less than `wake_max_minutes` form one sleep episode; the longest episode is the night's sleep:
  its bout hours are sleep_hours and its bouts minus one are the interruptions. Null unless the
  whole window was observed, the resident was home for some of it and (bed mode) the bed fired.
- longest_inactivity: the longest stretch in D without in-home activity (motion or door) while
  observed, at home and awake; awake means out of bed (bed mode) or outside the night window.
- kitchen_activity: kitchen activations starting in D; one starting within `kitchen_merge_minutes`
  of the end of the previous one is the same activation (motion sensors re-fire while one cooks).
- visitors_detected, steps, gait_speed, phone_calls, resting_heart_rate: not measurable from these
  logs, always null. A measure whose role has no sensor in the map (or never fires) is null too.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from twin.schema import SENSOR_DAYS, ValidationReport

ROLES = ("toilet", "bathroom", "front_door", "bed", "chair", "kitchen", "living", "bedroom", "motion", "other")
ROLE_ALIASES = {
    "wc": "toilet",
    "bath": "bathroom",
    "shower": "bathroom",
    "frontdoor": "front_door",
    "front door": "front_door",
    "entrance": "front_door",
    "living_room": "living",
    "lounge": "living",
    "hall": "motion",
    "hallway": "motion",
    "other_motion": "motion",
    "other motion": "motion",
    "ignore": "other",
    "armchair": "chair",
    "seat": "chair",
    "sofa": "chair",
}
TOILET_ROLES = frozenset({"toilet", "bathroom"})
ACTIVITY_ROLES = frozenset({"toilet", "bathroom", "kitchen", "living", "bedroom", "motion"})
PRESENCE_ROLES = ACTIVITY_ROLES | {"bed", "chair"}
OCCUPANCY_ROLES = frozenset({"bed", "chair"})  # pressure sensors: on while someone lies or sits on them
BEDTIME_ROLES = frozenset({"bedroom", "toilet", "bathroom"})
FORMATS = ("casas", "intervals")

ON_VALUES = frozenset({"ON", "OPEN"})
OFF_VALUES = frozenset({"OFF", "CLOSE", "CLOSED"})
ACTIVE_INTERVAL_VALUES = frozenset({"1", "ON", "OPEN", "TRUE"})
INACTIVE_INTERVAL_VALUES = frozenset({"0", "OFF", "CLOSE", "CLOSED", "FALSE"})

# sensor_days columns these logs can never measure
UNMEASURABLE = ("steps", "gait_speed", "visitors_detected", "phone_calls", "resting_heart_rate")
EXAMPLES = 5


@dataclass(frozen=True)
class SensorDayConfig:
    """Windows and thresholds of the sensor-day measures (hours of the day are local clock)."""

    night_start_hour: float = 22.0
    night_end_hour: float = 6.0
    sleep_start_hour: float = 20.0
    sleep_end_hour: float = 10.0
    toilet_merge_minutes: float = 5.0
    kitchen_merge_minutes: float = 1.0
    absence_min_minutes: float = 10.0
    outage_hours: float = 24.0
    stuck_on_hours: float = 2.0
    bed_stuck_on_hours: float = 16.0
    bed_merge_minutes: float = 2.0
    sleep_quiet_minutes: float = 30.0
    wake_max_minutes: float = 30.0

    def __post_init__(self) -> None:
        for name in ("night_start_hour", "night_end_hour", "sleep_start_hour", "sleep_end_hour"):
            if not 0 <= getattr(self, name) < 24:
                raise ValueError(f"{name} must be an hour of the day in [0, 24)")
        if self.night_end_hour >= self.night_start_hour or self.sleep_end_hour >= self.sleep_start_hour:
            raise ValueError("night and sleep windows must run over midnight (start in the evening, end in the morning)")
        if self.outage_hours <= 0 or self.stuck_on_hours <= 0 or self.bed_stuck_on_hours <= 0:
            raise ValueError("outage and stuck-on limits must be positive")


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


@dataclass
class EventLogReport:
    """What was read and what was odd in one sensor log."""

    source: str
    format: str
    resident_id: str
    lines: int = 0
    events: int = 0
    comment_lines: int = 0
    malformed: int = 0
    malformed_examples: list[str] = field(default_factory=list)
    out_of_order: int = 0
    duplicates: int = 0
    duplicate_examples: list[str] = field(default_factory=list)
    repeated_states: int = 0
    repeated_state_examples: list[str] = field(default_factory=list)
    overlaps_merged: int = 0
    inactive_interval_lines: int = 0
    stuck_on: int = 0
    stuck_on_examples: list[str] = field(default_factory=list)
    still_on_at_end: int = 0
    numeric_readings: int = 0
    annotations: int = 0
    unrecognised_values: dict[str, int] = field(default_factory=dict)
    unmapped_sensors: dict[str, int] = field(default_factory=dict)
    outages: list[str] = field(default_factory=list)
    days: int = 0
    first_day: str | None = None
    last_day: str | None = None
    days_without_events: int = 0
    partial_days: list[str] = field(default_factory=list)
    unmeasured: dict[str, str] = field(default_factory=dict)
    validation: ValidationReport | None = None
    written: str | None = None

    @property
    def ok(self) -> bool:
        """True when the rows were valid (whatever was odd in the log has been handled)."""
        return self.validation is None or self.validation.ok

    def __str__(self) -> str:
        lines = [
            f"{self.source} ({self.format}) for resident {self.resident_id}: {self.lines} lines, "
            f"{self.events} events, {self.days} days with a row"
            + (f" ({self.first_day} to {self.last_day})" if self.first_day else "")
        ]

        def item(label: str, count: int, examples: list[str] | None = None) -> None:
            if count:
                ex = f": {'; '.join(examples)}" if examples else ""
                lines.append(f"  - {label}: {count}{ex}")

        item("malformed lines skipped", self.malformed, self.malformed_examples)
        item("lines out of time order (sorted)", self.out_of_order)
        item("exact duplicate firings dropped", self.duplicates, self.duplicate_examples)
        item("repeated same-state firings dropped", self.repeated_states, self.repeated_state_examples)
        item("overlapping intervals of one sensor merged", self.overlaps_merged)
        item("inactive interval lines skipped", self.inactive_interval_lines)
        item("sensors stuck on (capped)", self.stuck_on, self.stuck_on_examples)
        item("activations still on at the end of the log", self.still_on_at_end)
        item("numeric readings (not used)", self.numeric_readings)
        item("activity annotations kept apart", self.annotations)
        item("comment or header lines", self.comment_lines)
        if self.unrecognised_values:
            item("unrecognised values (ignored)", sum(self.unrecognised_values.values()),
                 [f"{k} x{v}" for k, v in sorted(self.unrecognised_values.items())][:EXAMPLES])
        if self.unmapped_sensors:
            item("events from sensors not in the map (ignored)", sum(self.unmapped_sensors.values()),
                 [f"{k} x{v}" for k, v in sorted(self.unmapped_sensors.items())][:EXAMPLES])
        item("outages (no events, not an absence)", len(self.outages), self.outages[:EXAMPLES])
        item("days without events (no row)", self.days_without_events)
        item("partial days (not wholly observed)", len(self.partial_days), self.partial_days[:EXAMPLES])
        for col, why in self.unmeasured.items():
            lines.append(f"  - {col}: null ({why})")
        if self.validation is not None and not self.validation.ok:
            lines.append(str(self.validation))
        if self.written:
            lines.append(f"  written: {self.written}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "validation"}
        out["validation"] = None if self.validation is None else self.validation.to_dict()
        out["ok"] = self.ok
        return out


@dataclass
class EventIngestion:
    """Result of reading one log: the sensor_days rows, the report and the kept-apart annotations."""

    sensor_days: pd.DataFrame
    report: EventLogReport
    annotations: pd.DataFrame
    coverage: pd.DataFrame  # per day with a row: hours observed and whether the day was partial


# ---------------------------------------------------------------------------------------------
# Sensor map
# ---------------------------------------------------------------------------------------------


def _role(raw: str, sensor: str, where: str) -> str:
    r = raw.strip().lower()
    r = ROLE_ALIASES.get(r, r)
    if r not in ROLES:
        raise ValueError(f"{where}: sensor {sensor!r} has unknown role {raw!r}; roles are {', '.join(ROLES)}")
    return r


def read_sensor_map(path: str | os.PathLike) -> dict[str, str]:
    """Sensor id -> role, from CSV (`sensor,role[,note]`, header optional) or JSON.

    JSON may be {"M003": "bed"}, {"sensors": {...}} or [{"sensor": "M003", "role": "bed"}].
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such sensor map: {path}")
    pairs: list[tuple[str, str, str]] = []
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path.name}: not valid JSON ({e})") from e
        if isinstance(data, dict) and isinstance(data.get("sensors"), dict | list):
            data = data["sensors"]
        if isinstance(data, dict):
            pairs = [(str(k), str(v), f"{path.name}[{k!r}]") for k, v in data.items()]
        elif isinstance(data, list):
            for i, item in enumerate(data):
                if not isinstance(item, dict) or "sensor" not in item or "role" not in item:
                    raise ValueError(f"{path.name}: item {i} must be an object with 'sensor' and 'role'")
                pairs.append((str(item["sensor"]), str(item["role"]), f"{path.name} item {i}"))
        else:
            raise ValueError(f"{path.name}: expected an object or a list of {{sensor, role}}")
    else:
        with path.open(newline="") as f:
            for n, row in enumerate(csv.reader(f), start=1):
                cells = [c.strip() for c in row]
                if not cells or not any(cells) or cells[0].startswith("#"):
                    continue
                if n == 1 and cells[0].lower() in ("sensor", "sensor_id", "id") and len(cells) > 1:
                    continue
                if len(cells) < 2 or not cells[0] or not cells[1]:
                    raise ValueError(f"{path.name} line {n}: expected 'sensor,role', got {','.join(row)!r}")
                pairs.append((cells[0], cells[1], f"{path.name} line {n}"))
    out: dict[str, str] = {}
    for sensor, raw, where in pairs:
        sensor = sensor.strip()
        role = _role(raw, sensor, where)
        if sensor in out and out[sensor] != role:
            raise ValueError(f"{where}: sensor {sensor!r} given two roles ({out[sensor]}, {role})")
        out[sensor] = role
    if not out:
        raise ValueError(f"{path.name}: the sensor map is empty")
    return out


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def _note(examples: list[str], text: str) -> None:
    if len(examples) < EXAMPLES:
        examples.append(text)


def _malformed(rep: EventLogReport, n: int, line: str, why: str) -> None:
    rep.malformed += 1
    shown = line if len(line) <= 60 else line[:57] + "..."
    _note(rep.malformed_examples, f"line {n} {shown!r} ({why})")


def _iso(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    if t.tzinfo is not None:
        raise ValueError("time zone offsets are not supported")
    return t


def _interval_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%d-%b-%Y %H:%M:%S")
    except ValueError:
        return _iso(text)


class BadLine(ValueError):
    """A log line that cannot be read; the message says why."""


def casas_state(value: str) -> str | None:
    """"on", "off", or None for a reading (numeric) or an unrecognised value."""
    v = value.upper()
    return "on" if v in ON_VALUES else "off" if v in OFF_VALUES else None


def is_reading(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def parse_casas_line(line: str) -> tuple[datetime, str, str, str]:
    """One CASAS line (stripped, not a comment) -> (time, sensor, value, annotation); BadLine says why."""
    tok = line.split()
    if len(tok) < 4:
        raise BadLine("expected 'date time sensor value'")
    try:
        t = _iso(f"{tok[0]} {tok[1]}")
    except ValueError:
        raise BadLine("bad date or time") from None
    return t, tok[2], tok[3], " ".join(tok[4:])


def parse_interval_line(line: str) -> tuple[datetime, datetime, str, str]:
    """One intervals line -> (start, end, sensor, value); BadLine says why."""
    tok = line.split()
    if len(tok) == 6:
        start_text, end_text = f"{tok[0]} {tok[1]}", f"{tok[2]} {tok[3]}"
    elif len(tok) == 4:
        start_text, end_text = tok[0], tok[1]
    else:
        raise BadLine("expected 'start end sensor value'")
    try:
        start, end = _interval_time(start_text), _interval_time(end_text)
    except ValueError:
        raise BadLine("bad start or end time") from None
    if end < start:
        raise BadLine("ends before it starts")
    return start, end, tok[-2], tok[-1].upper()


def parse_casas(lines, rep: EventLogReport) -> tuple[pd.DataFrame, pd.DataFrame]:
    """CASAS lines -> events (line, time, sensor, state on/off/None) and annotations."""
    rows: list[tuple[int, datetime, str, str | None]] = []
    notes: list[tuple[int, datetime, str, str]] = []
    for n, raw in enumerate(lines, start=1):
        rep.lines += 1
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            rep.comment_lines += 1
            continue
        try:
            t, sensor, value, note = parse_casas_line(line)
        except BadLine as e:
            _malformed(rep, n, line, str(e))
            continue
        state = casas_state(value)
        if state is None:
            if is_reading(value):
                rep.numeric_readings += 1
            else:
                rep.unrecognised_values[value] = rep.unrecognised_values.get(value, 0) + 1
        rows.append((n, t, sensor, state))
        if note:
            notes.append((n, t, sensor, note))
    events = pd.DataFrame(rows, columns=["line", "time", "sensor", "state"])
    events["time"] = pd.to_datetime(events["time"]).astype("datetime64[ns]")
    annotations = pd.DataFrame(notes, columns=["line", "time", "sensor", "annotation"])
    annotations["time"] = pd.to_datetime(annotations["time"]).astype("datetime64[ns]")
    rep.annotations = len(annotations)
    return events, annotations


def parse_intervals(lines, rep: EventLogReport) -> pd.DataFrame:
    """Interval lines -> active intervals (line, start, end, sensor); inactive lines counted."""
    rows: list[tuple[int, datetime, datetime, str]] = []
    for n, raw in enumerate(lines, start=1):
        rep.lines += 1
        line = raw.strip()
        if not line:
            continue
        tok = line.split()
        if line.startswith("#") or tok[0].lower() == "start":
            rep.comment_lines += 1
            continue
        try:
            start, end, sensor, value = parse_interval_line(line)
        except BadLine as e:
            _malformed(rep, n, line, str(e))
            continue
        if value in INACTIVE_INTERVAL_VALUES:
            rep.inactive_interval_lines += 1
            continue
        if value not in ACTIVE_INTERVAL_VALUES:
            _malformed(rep, n, line, f"unknown value {tok[-1]!r}")
            continue
        rows.append((n, start, end, sensor))
    out = pd.DataFrame(rows, columns=["line", "start", "end", "sensor"])
    for c in ("start", "end"):
        out[c] = pd.to_datetime(out[c]).astype("datetime64[ns]")
    return out


# ---------------------------------------------------------------------------------------------
# Cleaning: events -> activations (sensor, role, start, end in epoch seconds)
# ---------------------------------------------------------------------------------------------


def _seconds(s: pd.Series) -> np.ndarray:
    return s.astype("datetime64[ns]").to_numpy().astype("int64") / 1e9


def _stamp(t: float) -> str:
    return pd.Timestamp(round(t * 1e6), unit="us").isoformat(sep=" ", timespec="seconds")


def _cap(cfg: SensorDayConfig, role: str) -> float:
    return 3600.0 * (cfg.bed_stuck_on_hours if role in OCCUPANCY_ROLES else cfg.stuck_on_hours)


def _roles_of(sensors: pd.Series, sensor_map: dict[str, str], rep: EventLogReport) -> pd.Series:
    roles = sensors.map(sensor_map)
    unmapped = sensors[roles.isna()]
    rep.unmapped_sensors = dict(Counter(unmapped.tolist()))
    return roles


def casas_activations(events: pd.DataFrame, sensor_map: dict[str, str], cfg: SensorDayConfig,
                      rep: EventLogReport) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Sort and de-duplicate CASAS events, pair ON with OFF per sensor, cap stuck sensors.

    Returns the activations and every event's time (s) with a flag for front-door events.
    """
    t = events["time"].to_numpy()
    rep.out_of_order = int((t[1:] < t[:-1]).sum()) if len(t) > 1 else 0
    events = events.sort_values("time", kind="stable").reset_index(drop=True)
    dup = events.duplicated(["time", "sensor", "state"], keep="first").to_numpy() & events["state"].notna().to_numpy()
    # numeric readings repeat legitimately only with different values; exact repeats of the line
    for row in events.loc[dup].itertuples():
        _note(rep.duplicate_examples, f"line {row.line} {row.sensor} {row.state} at {row.time}")
    rep.duplicates = int(dup.sum())
    events = events.loc[~dup].reset_index(drop=True)
    roles = _roles_of(events["sensor"], sensor_map, rep)
    events = events.assign(role=roles)
    times = _seconds(events["time"])
    rep.events = len(events)
    log_end = float(times.max()) if len(times) else 0.0

    acts: list[tuple[str, str, float, float]] = []
    switching = events[events["state"].notna() & events["role"].notna()]
    for sensor, grp in switching.groupby("sensor", sort=True):
        role = grp["role"].iat[0]
        on_at: float | None = None
        for line, state, ts in zip(grp["line"].to_numpy().tolist(), grp["state"].to_numpy(dtype=object).tolist(),
                                   _seconds(grp["time"]).tolist(), strict=True):
            if state == "on":
                if on_at is None:
                    on_at = ts
                else:
                    rep.repeated_states += 1
                    _note(rep.repeated_state_examples, f"line {line} {sensor} ON while on")
            else:
                if on_at is None:
                    rep.repeated_states += 1
                    _note(rep.repeated_state_examples, f"line {line} {sensor} OFF while off")
                else:
                    acts.append((sensor, role, on_at, ts))
                    on_at = None
        if on_at is not None:
            rep.still_on_at_end += 1
            acts.append((sensor, role, on_at, log_end))
    out = pd.DataFrame(acts, columns=["sensor", "role", "start", "end"])
    out = _cap_stuck(out, cfg, rep)
    is_door = (events["role"] == "front_door").to_numpy()
    return out, times, is_door


def _cap_stuck(acts: pd.DataFrame, cfg: SensorDayConfig, rep: EventLogReport) -> pd.DataFrame:
    acts = acts.sort_values(["start", "sensor"], kind="stable").reset_index(drop=True)
    caps = np.array([_cap(cfg, r) for r in acts["role"]], dtype="float64")
    length = (acts["end"] - acts["start"]).to_numpy()
    stuck = length > caps
    for row, hours, cap in zip(acts.loc[stuck].itertuples(), length[stuck] / 3600, caps[stuck] / 3600, strict=True):
        _note(rep.stuck_on_examples, f"{row.sensor} on from {_stamp(row.start)} for {hours:.1f} h (capped at {cap:g} h)")
    rep.stuck_on = int(stuck.sum())
    acts["end"] = np.where(stuck, acts["start"].to_numpy() + caps, acts["end"].to_numpy())
    acts["stuck"] = stuck
    return acts


def interval_activations(intervals: pd.DataFrame, sensor_map: dict[str, str], cfg: SensorDayConfig,
                         rep: EventLogReport) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Sort, de-duplicate and merge overlapping intervals per sensor, cap stuck sensors."""
    s = intervals["start"].to_numpy()
    rep.out_of_order = int((s[1:] < s[:-1]).sum()) if len(s) > 1 else 0
    intervals = intervals.sort_values(["start", "end"], kind="stable").reset_index(drop=True)
    dup = intervals.duplicated(["start", "end", "sensor"], keep="first").to_numpy()
    for row in intervals.loc[dup].itertuples():
        _note(rep.duplicate_examples, f"line {row.line} {row.sensor} {row.start} - {row.end}")
    rep.duplicates = int(dup.sum())
    intervals = intervals.loc[~dup].reset_index(drop=True)
    rep.events = len(intervals)
    roles = _roles_of(intervals["sensor"], sensor_map, rep)
    intervals = intervals.assign(role=roles)
    starts, ends = _seconds(intervals["start"]), _seconds(intervals["end"])
    times = np.concatenate([starts, ends])
    is_door = np.concatenate([(intervals["role"] == "front_door").to_numpy()] * 2)
    order = np.argsort(times, kind="stable")
    times, is_door = times[order], is_door[order]

    acts: list[tuple[str, str, float, float]] = []
    mapped = intervals.assign(s=starts, e=ends)[intervals["role"].notna()]
    for sensor, grp in mapped.groupby("sensor", sort=True):
        role = grp["role"].iat[0]
        cur_s, cur_e = None, None
        for a, b in zip(grp["s"], grp["e"], strict=True):
            if cur_s is not None and a <= cur_e:
                rep.overlaps_merged += 1
                cur_e = max(cur_e, b)
                continue
            if cur_s is not None:
                acts.append((sensor, role, cur_s, cur_e))
            cur_s, cur_e = a, b
        if cur_s is not None:
            acts.append((sensor, role, cur_s, cur_e))
    out = pd.DataFrame(acts, columns=["sensor", "role", "start", "end"])
    return _cap_stuck(out, cfg, rep), times, is_door


# ---------------------------------------------------------------------------------------------
# Interval arithmetic on sorted lists of (start, end) seconds
# ---------------------------------------------------------------------------------------------

Spans = list[tuple[float, float]]


def _union(spans) -> Spans:
    out: Spans = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _slice(spans: Spans, lo: float, hi: float) -> Spans:
    """The parts of a sorted disjoint list inside [lo, hi)."""
    out: Spans = []
    for k in range(_first_end_after(spans, lo), len(spans)):
        a, b = spans[k]
        if a >= hi:
            break
        a, b = max(a, lo), min(b, hi)
        if b > a or (a == b and lo <= a < hi):
            out.append((a, b))
    return out


def _first_end_after(spans: Spans, lo: float) -> int:
    left, right = 0, len(spans)
    while left < right:
        mid = (left + right) // 2
        if spans[mid][1] <= lo:
            left = mid + 1
        else:
            right = mid
    return left


def _subtract(a: Spans, b: Spans) -> Spans:
    """a minus b, both sorted and disjoint; a point in b splits a span of a."""
    out: Spans = []
    j = 0
    for s, e in a:
        cur = s
        while j < len(b) and b[j][1] < cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] <= e:
            bs, be = b[k]
            if bs > cur:
                out.append((cur, bs))
            cur = max(cur, be)
            k += 1
        if cur < e:
            out.append((cur, e))
    return [(s, e) for s, e in out if e > s]


def _total(spans: Spans) -> float:
    return float(sum(b - a for a, b in spans))


def _count_bouts(starts: np.ndarray, ends: np.ndarray, gap: float) -> int:
    n, cur_end = 0, -np.inf
    for a, b in zip(starts, ends, strict=True):
        if a > cur_end + gap:
            n += 1
            cur_end = b
        else:
            cur_end = max(cur_end, b)
    return n


def _main_episode(bouts: Spans, wake_max: float) -> Spans:
    """The longest chain of bouts separated by less than `wake_max` (the night's main sleep)."""
    if not bouts:
        return []
    episodes: list[Spans] = [[bouts[0]]]
    for a, b in bouts[1:]:
        if a - episodes[-1][-1][1] < wake_max:
            episodes[-1].append((a, b))
        else:
            episodes.append([(a, b)])
    return max(episodes, key=_total)


# ---------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------


def _outages(times: np.ndarray, is_door: np.ndarray, cfg: SensorDayConfig) -> Spans:
    if len(times) < 2:
        return []
    gaps = np.diff(times)
    idx = np.flatnonzero(gaps >= cfg.outage_hours * 3600)
    return [(float(times[i]), float(times[i + 1])) for i in idx if not (is_door[i] and is_door[i + 1])]


def _absences(door_times: np.ndarray, presence_onsets: np.ndarray, log_end: float, cfg: SensorDayConfig) -> Spans:
    out: Spans = []
    last_end = -np.inf
    for d in door_times:
        if d < last_end:
            continue
        i = np.searchsorted(presence_onsets, d, side="right")
        back = float(presence_onsets[i]) if i < len(presence_onsets) else log_end
        if back - d >= cfg.absence_min_minutes * 60:
            out.append((float(d), back))
            last_end = back
    return out


def _bouts_of(acts: pd.DataFrame, roles) -> tuple[np.ndarray, np.ndarray]:
    sel = acts[acts["role"].isin(roles)].sort_values("start", kind="stable")
    return sel["start"].to_numpy(dtype="float64"), sel["end"].to_numpy(dtype="float64")


def aggregate_sensor_days(acts: pd.DataFrame, times: np.ndarray, is_door: np.ndarray, sensor_map: dict[str, str],
                          resident_id: str, cfg: SensorDayConfig, rep: EventLogReport) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Activations and event times -> one sensor_days row per day that has events, and each
    day's coverage (date, observed_hours, partial)."""
    cols = SENSOR_DAYS.column_names
    if not len(times):
        empty = pd.DataFrame({c: pd.Series([], dtype="float64") for c in cols}).astype(
            {"resident_id": "str", "date": "datetime64[ns]"})
        return empty, _coverage_frame([])
    order = np.argsort(times, kind="stable")
    times, is_door = times[order], is_door[order]
    log_lo, log_hi = float(times[0]), float(times[-1])
    outages = _outages(times, is_door, cfg)
    rep.outages = [f"{_stamp(a)} to {_stamp(b)} ({(b - a) / 3600:.1f} h)" for a, b in outages]
    observed = _subtract([(log_lo, log_hi)], outages)

    fired = set(acts["role"].unique()) if len(acts) else set()
    has = {
        "toilet": bool(fired & TOILET_ROLES),
        "door": "front_door" in fired,
        "bed": "bed" in fired,
        "kitchen": "kitchen" in fired,
        "activity": bool(fired & ACTIVITY_ROLES),
    }
    mapped_roles = set(sensor_map.values())

    def why(roles: set[str], label: str) -> str:
        return f"no {label} sensor in the map" if not (mapped_roles & roles) else f"the {label} sensor never fired"

    if not has["toilet"]:
        rep.unmeasured["night_toilet_visits"] = why(set(TOILET_ROLES), "toilet/bathroom")
    if not has["door"]:
        rep.unmeasured["time_out_of_home"] = why({"front_door"}, "front door")
    if not has["kitchen"]:
        rep.unmeasured["kitchen_activity"] = why({"kitchen"}, "kitchen")
    if not has["activity"]:
        rep.unmeasured["longest_inactivity"] = why(set(ACTIVITY_ROLES), "in-home motion")
        if not has["bed"]:
            rep.unmeasured["sleep_hours, sleep_interruptions"] = "no bed or in-home motion sensor fired"
    rep.unmeasured[", ".join(UNMEASURABLE)] = "not measurable from an event log"

    p_start, _ = _bouts_of(acts, PRESENCE_ROLES)
    presence_onsets = np.sort(p_start)
    doors = acts[acts["role"] == "front_door"]
    door_times = np.sort(np.concatenate([
        doors["start"].to_numpy(dtype="float64"),
        doors["end"].to_numpy(dtype="float64")[~doors["stuck"].to_numpy(dtype=bool)],  # a capped end is not an event
    ]))
    absences = _absences(door_times, presence_onsets, log_hi, cfg)

    act_s, act_e = _bouts_of(acts, ACTIVITY_ROLES | {"front_door"})
    activity = _union(zip(act_s, act_e, strict=True))
    bed_s, bed_e = _bouts_of(acts, {"bed"})
    bed = _union(zip(bed_s, bed_e, strict=True))
    toilet_s, toilet_e = _bouts_of(acts, TOILET_ROLES)
    kitchen_s, kitchen_e = _bouts_of(acts, {"kitchen"})

    went_to_bed = None
    if "bedroom" in fired:
        # without a bed sensor, a quiet stretch is sleep only after bedroom or bathroom activity
        ended = acts[acts["role"].isin(ACTIVITY_ROLES | {"front_door"})].sort_values("end", kind="stable")
        end_times = ended["end"].to_numpy(dtype="float64")
        in_bedroom = ended["role"].isin(BEDTIME_ROLES).to_numpy()

        def went_to_bed(t: float) -> bool:
            i = int(np.searchsorted(end_times, t, side="right")) - 1
            return i >= 0 and bool(in_bedroom[i])

    day_ns = np.unique(pd.to_datetime(times * 1e9).normalize().asi8)
    rows = []
    coverage: list[tuple[pd.Timestamp, float, bool]] = []
    for day_ns_value in day_ns:
        day = pd.Timestamp(int(day_ns_value))
        lo = day_ns_value / 1e9
        hi = lo + 86400.0
        row: dict[str, object] = {c: np.nan for c in cols}
        row["resident_id"] = resident_id
        row["date"] = day
        obs_day = _slice(observed, lo, hi)
        seen = _total(obs_day)
        partial = seen < 86400.0 - 1e-6
        if partial:
            rep.partial_days.append(f"{day.date()} ({seen / 3600:.1f} h observed)")
        coverage.append((day, seen / 3600, partial))

        if has["door"]:
            row["time_out_of_home"] = _total(_slice(_intersect(absences, obs_day), lo, hi)) / 3600

        if has["kitchen"]:
            i, j = np.searchsorted(kitchen_s, [lo, hi], side="left")
            row["kitchen_activity"] = float(_count_bouts(kitchen_s[i:j], kitchen_e[i:j], cfg.kitchen_merge_minutes * 60))

        n_lo = lo - (24 - cfg.night_start_hour) * 3600
        n_hi = lo + cfg.night_end_hour * 3600
        if has["toilet"] and _window_usable(observed, absences, n_lo, n_hi):
            i, j = np.searchsorted(toilet_s, [n_lo, n_hi], side="left")
            row["night_toilet_visits"] = float(_count_bouts(toilet_s[i:j], toilet_e[i:j], cfg.toilet_merge_minutes * 60))

        s_lo = lo - (24 - cfg.sleep_start_hour) * 3600
        s_hi = lo + cfg.sleep_end_hour * 3600
        if (has["bed"] or has["activity"]) and _window_usable(observed, absences, s_lo, s_hi):
            if has["bed"]:
                bouts = _close_gaps(_slice(bed, s_lo, s_hi), cfg.bed_merge_minutes * 60)
            else:
                at_home = _subtract([(s_lo, s_hi)], _slice(absences, s_lo, s_hi))
                quiet = _subtract(at_home, _slice(activity, s_lo, s_hi))
                bouts = [(a, b) for a, b in quiet
                         if b - a >= cfg.sleep_quiet_minutes * 60 and (not went_to_bed or went_to_bed(a))]
            if bouts or not has["bed"]:
                main = _main_episode(bouts, cfg.wake_max_minutes * 60)
                row["sleep_hours"] = _total(main) / 3600
                row["sleep_interruptions"] = float(max(len(main) - 1, 0))

        if has["activity"]:
            if has["bed"]:
                asleep = _slice(bed, lo, hi)
            else:
                asleep = _union([(lo, lo + cfg.night_end_hour * 3600), (lo + cfg.night_start_hour * 3600, hi)])
            awake_home = _subtract(_subtract(obs_day, _slice(absences, lo, hi)), asleep)
            if _total(awake_home) > 0:
                free = _subtract(awake_home, _slice(activity, lo, hi))
                row["longest_inactivity"] = max((b - a for a, b in free), default=0.0) / 3600
        rows.append(row)

    out = pd.DataFrame(rows, columns=cols)
    out["resident_id"] = out["resident_id"].astype("str")
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    for c in cols[2:]:
        out[c] = out[c].astype("float64")
    rep.days = len(out)
    if len(out):
        first, last = out["date"].iloc[0], out["date"].iloc[-1]
        rep.first_day, rep.last_day = str(first.date()), str(last.date())
        rep.days_without_events = int((last - first).days + 1 - len(out))
    return out, _coverage_frame(coverage)


def _coverage_frame(rows: list) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=["date", "observed_hours", "partial"])
    return out.astype({"date": "datetime64[ns]", "observed_hours": "float64", "partial": "bool"})


def _intersect(a: Spans, b: Spans) -> Spans:
    out: Spans = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _close_gaps(spans: Spans, gap: float) -> Spans:
    out: Spans = []
    for a, b in spans:
        if out and a - out[-1][1] < gap:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _window_usable(observed: Spans, absences: Spans, lo: float, hi: float) -> bool:
    """The window was wholly observed and the resident was home for some of it."""
    if _total(_slice(observed, lo, hi)) < (hi - lo) - 1e-6:
        return False
    return _total(_slice(absences, lo, hi)) < (hi - lo) - 1e-6


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def read_event_log(path: str | os.PathLike, fmt: str, sensor_map: dict[str, str], resident_id: str,
                   config: SensorDayConfig | None = None) -> EventIngestion:
    """Read one resident's raw sensor log and aggregate it into sensor_days rows (no writing)."""
    path = Path(path)
    cfg = config or SensorDayConfig()
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; formats are {', '.join(FORMATS)}")
    if not resident_id or not resident_id.strip():
        raise ValueError("a resident id is needed")
    if not path.is_file():
        raise FileNotFoundError(f"no such log: {path}")
    rep = EventLogReport(source=str(path), format=fmt, resident_id=resident_id)
    with path.open(encoding="utf-8", errors="replace") as f:
        if fmt == "casas":
            events, annotations = parse_casas(f, rep)
            acts, times, is_door = casas_activations(events, sensor_map, cfg, rep)
        else:
            intervals = parse_intervals(f, rep)
            annotations = pd.DataFrame(columns=["line", "time", "sensor", "annotation"])
            acts, times, is_door = interval_activations(intervals, sensor_map, cfg, rep)
    days, coverage = aggregate_sensor_days(acts, times, is_door, sensor_map, resident_id, cfg, rep)
    return EventIngestion(sensor_days=days, report=rep, annotations=annotations, coverage=coverage)


def ingest_events(path: str | os.PathLike, fmt: str, sensor_map: dict[str, str] | str | os.PathLike,
                  resident_id: str, out: str | os.PathLike | None = None, *,
                  config: SensorDayConfig | None = None, dry_run: bool = False) -> EventIngestion:
    """Read a log, validate its sensor_days rows and append them to the history at `out`.

    All or nothing: rows that break the schema or whose (resident, day) is already in the history
    are reported in `report.validation` and nothing is written.
    """
    from twin.ingest import check_table  # here to keep the module graph one-way at import
    from twin.store import HistoryStore

    if not isinstance(sensor_map, dict):
        sensor_map = read_sensor_map(sensor_map)
    result = read_event_log(path, fmt, sensor_map, resident_id, config)
    store = HistoryStore(out) if out is not None else None
    days, validation = check_table(result.sensor_days, "sensor_days", store)
    result.report.validation = validation
    if validation.ok and store is not None and len(days) and not dry_run:
        result.report.written = str(store.append("sensor_days", days, tag="events"))
    return result
