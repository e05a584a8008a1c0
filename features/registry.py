"""Every feature declared once: name, dtype, window, source table, description, models, causes.

The registry order is the vector order of every model. `schema_hash(model)` fingerprints a model's
ordered feature set; it is stored with each trained model and checked again when serving.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from dataclasses import dataclass

from twin.schema import FALL_CAUSES, ISOLATION_CAUSES

MODELS = ("fall_risk", "isolation", "demand")
DTYPES = ("float", "int", "bool")
FALL = ("fall_risk",)
ISO = ("isolation",)
BOTH = ("fall_risk", "isolation")


@dataclass(frozen=True)
class Feature:
    """One declared feature. `family`, `basis` and `companion` tell explanations how to word it."""

    name: str
    dtype: str  # "float" | "int" | "bool"
    window: str  # "static" | "7d" | "30d" | "90d" | "365d" | "latest" | "z7v90" | ...
    source: str  # twin table it is computed from
    description: str  # plain language, used to word explanations
    models: tuple[str, ...]
    causes: tuple[str, ...] = ()
    unit: str = ""
    family: str = ""  # static | level | trend | variability | baseline | deviation | count | ...
    basis: str = ""  # the twin column (or event type / visit source) it is computed from
    companion: str = ""  # the feature that gives a deviation its context (baseline vs. last week)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"feature {self.name}: dtype {self.dtype!r} is not one of {DTYPES}")
        bad = [m for m in self.models if m not in MODELS]
        if bad:
            raise ValueError(f"feature {self.name}: unknown model(s) {bad}; models are {MODELS}")
        unknown = [c for c in self.causes if c not in FALL_CAUSES + ISOLATION_CAUSES]
        if unknown:
            raise ValueError(f"feature {self.name}: unknown cause(s) {unknown}")


@dataclass(frozen=True)
class Signal:
    """A daily sensor signal and how its rolling features are built.

    `scale` is the fixed-point resolution used for exact window sums (values are summed as
    integers of 1/scale units, so any window at any as-of date gives the same number no matter
    which other dates or residents are computed alongside it). `z_floor` is the smallest
    baseline spread used in a z-score, so a flat baseline does not turn noise into alarms.
    """

    column: str
    label: str  # plain words, e.g. "night-time toilet visits"
    unit: str  # e.g. "a night"
    scale: int
    z_floor: float
    models: tuple[str, ...]
    causes: tuple[str, ...]
    deviation: bool = False  # also declare baseline + z-score features
    level_windows: tuple[int, ...] = (7, 30, 90)
    variability: bool = True
    trend: bool = True


SIGNALS: tuple[Signal, ...] = (
    Signal("night_toilet_visits", "night-time toilet visits", "a night", 1000, 0.5, FALL,
           ("acute_episode",), deviation=True, level_windows=(7, 30)),
    Signal("steps", "daily steps", "steps", 1, 300.0, BOTH,
           ("frailty", "acute_episode", "low_mobility"), deviation=True),
    Signal("gait_speed", "walking speed", "m/s", 1000, 0.03, FALL,
           ("gait_balance", "frailty", "acute_episode"), deviation=True),
    Signal("time_out_of_home", "time out of home", "h a day", 1000, 0.25, BOTH,
           ("low_mobility", "trait", "acute_episode"), deviation=True),
    Signal("sleep_interruptions", "sleep interruptions", "a night", 1000, 0.5, FALL,
           ("acute_episode",), deviation=True, level_windows=(7, 30)),
    Signal("longest_inactivity", "longest stretch without movement", "h", 1000, 0.25, BOTH,
           ("frailty", "acute_episode", "low_mobility"), deviation=True, level_windows=(7, 30)),
    Signal("sleep_hours", "sleep", "h a night", 1000, 0.25, BOTH, ("acute_episode",),
           level_windows=(7, 30), trend=False),
    Signal("resting_heart_rate", "resting heart rate", "bpm", 1000, 2.0, FALL, ("acute_episode",),
           level_windows=(7, 30), trend=False),
    Signal("kitchen_activity", "kitchen activity", "activations a day", 100, 2.0, FALL,
           ("acute_episode",), level_windows=(7, 30), trend=False, variability=False),
    Signal("visitors_detected", "visitors at home", "a day", 1000, 0.25, ISO, ("few_visits",),
           level_windows=(7, 30), variability=False),
    Signal("phone_calls", "phone calls", "a day", 1000, 0.5, ISO, ("trait",),
           level_windows=(7, 30), variability=False),
)
SIGNAL_BY_COLUMN = {s.column: s for s in SIGNALS}

# Windows of the z-score: the last 7 days against the 90 days before them.
Z_RECENT_DAYS = 7
Z_BASELINE_DAYS = 90
# Minimum days of data before a statistic is known (otherwise NaN).
MIN_DAYS_SD = 3
MIN_DAYS_TREND = 7
MIN_DAYS_Z_RECENT = 3
MIN_DAYS_Z_BASELINE = 14
TREND_DAYS = 30
SD_DAYS = 30

# Assessment columns: (column, short label, models, causes, unit)
ASSESSMENT_ITEMS = (
    ("tug_seconds", "Timed Up and Go", FALL, ("gait_balance", "frailty"), "s", "float"),
    ("fear_of_falling", "fear of falling", FALL, ("fear_of_falling",), "", "bool"),
    ("steadi_fell_past_year", "STEADI answer 'fallen in the past year'", FALL, ("previous_fall",), "", "bool"),
    ("steadi_unsteady", "STEADI answer 'feels unsteady'", FALL, ("gait_balance",), "", "bool"),
    ("loneliness_score", "loneliness score", ISO, ("trait", "lives_alone", "bereavement"), "points (3-9)", "float"),
)
ASSESSMENT_NAMES = {
    "tug_seconds": ("tug_seconds_last", "tug_age_days"),
    "fear_of_falling": ("fear_of_falling_last", "fear_of_falling_age_days"),
    "steadi_fell_past_year": ("steadi_fell_past_year_last", "steadi_fell_past_year_age_days"),
    "steadi_unsteady": ("steadi_unsteady_last", "steadi_unsteady_age_days"),
    "loneliness_score": ("loneliness_score_last", "loneliness_age_days"),
}


def _declare() -> dict[str, Feature]:
    out: list[Feature] = []
    add = out.append

    # --- static, from the residents table -------------------------------------------------
    add(Feature("age_years", "int", "static", "residents", "age in years at the as-of date", BOTH,
                ("frailty",), "years", "static", "birth_year"))
    add(Feature("sex_female", "bool", "static", "residents", "is a woman", BOTH, (), "",
                "static", "sex"))
    add(Feature("lives_alone", "bool", "static", "residents", "lives alone", BOTH,
                ("lives_alone",), "", "static", "lives_alone"))
    add(Feature("chronic_conditions", "int", "static", "residents", "chronic conditions", BOTH,
                ("frailty",), "conditions", "static", "chronic_conditions"))
    add(Feature("medication_count", "int", "static", "residents", "regular medications", FALL,
                ("polypharmacy",), "medications", "static", "medication_count"))
    add(Feature("vision_impairment", "bool", "static", "residents", "has poor vision", FALL,
                ("poor_vision",), "", "static", "vision_impairment"))
    add(Feature("cognitive_impairment", "bool", "static", "residents",
                "has dementia or cognitive impairment", BOTH, ("cognitive_impairment",), "",
                "static", "cognitive_impairment"))
    add(Feature("walking_aid", "bool", "static", "residents", "uses a walking aid", BOTH,
                ("gait_balance", "low_mobility"), "", "static", "walking_aid"))

    # --- rolling windows and deviation from own baseline, from sensor_days ----------------
    for s in SIGNALS:
        fall_c = tuple(c for c in s.causes if c in FALL_CAUSES)
        iso_c = tuple(c for c in s.causes if c in ISOLATION_CAUSES)
        causes = (fall_c if "fall_risk" in s.models else ()) + (iso_c if "isolation" in s.models else ())
        for w in s.level_windows:
            add(Feature(f"{s.column}_{w}d", "float", f"{w}d", "sensor_days",
                        f"{s.label}, average over the last {w} days", s.models, causes, s.unit,
                        "level", s.column))
        if s.trend:
            add(Feature(f"{s.column}_trend_{TREND_DAYS}d", "float", f"{TREND_DAYS}d", "sensor_days",
                        f"weekly change in {s.label} over the last {TREND_DAYS} days", s.models,
                        causes, f"{s.unit} per week", "trend", s.column))
        if s.variability:
            add(Feature(f"{s.column}_sd_{SD_DAYS}d", "float", f"{SD_DAYS}d", "sensor_days",
                        f"day-to-day variability (standard deviation) of {s.label} over the last "
                        f"{SD_DAYS} days", s.models, causes, s.unit, "variability", s.column))
        if s.deviation:
            add(Feature(f"{s.column}_baseline_90d", "float", "90d", "sensor_days",
                        f"{s.label}, own baseline: average over the 90 days before the last week",
                        s.models, causes, s.unit, "baseline", s.column, f"{s.column}_7d"))
            add(Feature(f"{s.column}_z7v90", "float", "z7v90", "sensor_days",
                        f"change in {s.label} this week against own baseline (z-score of the last "
                        f"7 days vs. the previous 90)", s.models, causes, "sd", "deviation",
                        s.column, f"{s.column}_baseline_90d"))

    # --- event history, from events --------------------------------------------------------
    add(Feature("falls_30d", "int", "30d", "events", "falls in the last 30 days", BOTH,
                ("previous_fall",), "falls", "count", "fall"))
    add(Feature("falls_365d", "int", "365d", "events", "falls in the last year", BOTH,
                ("previous_fall",), "falls", "count", "fall"))
    add(Feature("injurious_falls_365d", "int", "365d", "events", "falls with an injury in the last year",
                FALL, ("previous_fall",), "falls", "count", "injurious_fall"))
    add(Feature("days_since_last_fall", "float", "latest", "events",
                "days since the last recorded fall (unknown if none is on record)", FALL,
                ("previous_fall",), "days", "recency", "fall"))
    add(Feature("hospitalisations_365d", "int", "365d", "events", "hospital stays in the last year",
                BOTH, ("frailty", "acute_episode"), "stays", "count", "hospitalisation"))
    add(Feature("bereavements_365d", "int", "365d", "events", "bereavements in the last year", ISO,
                ("bereavement",), "bereavements", "count", "bereavement"))

    # --- last known assessment values and their age, from assessments -----------------------
    for col, label, models, causes, unit, dtype in ASSESSMENT_ITEMS:
        value_name, age_name = ASSESSMENT_NAMES[col]
        add(Feature(value_name, dtype, "latest", "assessments", f"last {label}", models, causes,
                    unit, "assessment", col, age_name))
        add(Feature(age_name, "float", "latest", "assessments",
                    f"days since the last {label} assessment", models, causes, "days",
                    "assessment_age", col, value_name))

    # --- social contact and time-bank help --------------------------------------------------
    for source, label in (("timebank", "time-bank volunteer"), ("family", "family"), ("care", "care staff")):
        add(Feature(f"visits_{source}_30d", "int", "30d", "visits",
                    f"{label} visits in the last 30 days", ISO, ("few_visits",), "visits",
                    "visit_count", source))
    add(Feature("visit_hours_30d", "float", "30d", "visits", "hours of visits in the last 30 days",
                ISO, ("few_visits",), "h", "visit_hours", "hours"))
    add(Feature("days_since_last_visit", "float", "latest", "visits",
                "days since the last recorded visit (unknown if none is on record)", ISO,
                ("few_visits",), "days", "recency", "visit"))
    add(Feature("timebank_tasks_completed_90d", "int", "90d", "tasks",
                "time-bank tasks completed for the resident in the last 90 days", BOTH,
                ("few_visits",), "tasks", "task_count", "completed"))
    add(Feature("service_requests_30d", "int", "30d", "service_requests",
                "requests for help in the last 30 days", ISO, ("few_visits",), "requests",
                "request_count", "any"))
    add(Feature("companionship_requests_90d", "int", "90d", "service_requests",
                "requests for companionship in the last 90 days", ISO, ("few_visits", "trait"),
                "requests", "request_count", "companionship"))

    # --- missingness, from sensor_days ------------------------------------------------------
    for w in (7, 30):
        add(Feature(f"sensor_missing_days_{w}d", "int", f"{w}d", "sensor_days",
                    f"days without any sensor data in the last {w} days", BOTH, (), "days",
                    "missing", "any"))

    feats: dict[str, Feature] = {}
    for f in out:
        if f.name in feats:
            raise ValueError(f"feature {f.name} declared twice")
        feats[f.name] = f
    return feats


FEATURES: dict[str, Feature] = _declare()


def _demand_features() -> tuple[Feature, ...]:
    """Demand features live in features/demand.py (declared there); imported only when asked."""
    if importlib.util.find_spec("features.demand") is None:
        return ()
    mod = importlib.import_module("features.demand")
    return tuple(getattr(mod, "DEMAND_FEATURES", ()))


def get_feature(name: str) -> Feature:
    """The declared feature called `name` (resident features, then demand features)."""
    if name in FEATURES:
        return FEATURES[name]
    for f in _demand_features():
        if f.name == name:
            return f
    raise KeyError(f"unknown feature {name!r}")


def feature_names(model: str) -> list[str]:
    """The ordered input vector of `model`."""
    if model not in MODELS:
        raise KeyError(f"unknown model {model!r}; models are {', '.join(MODELS)}")
    if model == "demand":
        return [f.name for f in _demand_features()]
    return [f.name for f in FEATURES.values() if model in f.models]


def features_of(model: str) -> list[Feature]:
    """The ordered declared features of `model`."""
    return [get_feature(n) for n in feature_names(model)]


def schema_hash(model: str) -> str:
    """Fingerprint of the ordered (name, dtype, window) of `model`'s features."""
    parts = [f"{f.name}|{f.dtype}|{f.window}" for f in features_of(model)]
    return hashlib.sha256("\n".join([model, *parts]).encode()).hexdigest()[:16]


def table_schema_hash() -> str:
    """Fingerprint of the whole resident feature table (what the online store holds)."""
    parts = [f"{f.name}|{f.dtype}|{f.window}" for f in FEATURES.values()]
    return hashlib.sha256("\n".join(["resident_features", *parts]).encode()).hexdigest()[:16]
