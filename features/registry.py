"""Every feature declared once: name, dtype, window, source table, description, the compute group
that makes it, the words of its reasons, the feature sets it belongs to and the causes it measures.

A feature set names what a group of features describes ("falls", "loneliness", "requests") and
fixes its order: the registry order. `schema_hash(set_name)` fingerprints a set's ordered
features; it is stored with each trained model and checked again when serving.

Adding a feature: one declaration here (with its compute group, wording and sets) plus the code
of its compute group when the group cannot compute it yet.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from twin.schema import FALL_CAUSES, ISOLATION_CAUSES

DTYPES = ("float", "int", "bool")

# Compute groups: the code that makes a feature. Resident groups run in features/pipeline.py
# (`COMPUTE_GROUPS` there), the "series" group in features/demand.py (`demand_features`).
RESIDENT_GROUPS = ("static", "sensor", "events", "assessments", "social")
SERIES_GROUPS = ("series",)


@dataclass(frozen=True)
class FeatureSet:
    """A named, ordered set of features that describes one thing (like a Feast FeatureService).

    `causes` is the vocabulary of planted causes its features may measure. `schema_label` is the
    first line of the set's schema hash; it keeps the hashes of models trained before sets had
    these names, so those models still load. `entity`: what a row describes ("resident" rows
    come from the resident feature table, "series" rows from a daily count series).
    """

    name: str
    description: str
    causes: tuple[str, ...]
    schema_label: str
    entity: str = "resident"


FALLS = "falls"
LONELINESS = "loneliness"
REQUESTS = "requests"
_SETS = (
    FeatureSet(FALLS, "a resident's risk of falling: mobility, balance, health, home sensors and "
               "falls on record", FALL_CAUSES, schema_label="fall_risk"),
    FeatureSet(LONELINESS, "a resident's social contact and loneliness: living situation, visits, "
               "calls, time out of home and loneliness assessments", ISOLATION_CAUSES,
               schema_label="isolation"),
    FeatureSet(REQUESTS, "recent daily requests for help of a series and its calendar", (),
               schema_label="demand", entity="series"),
)
FEATURE_SETS: dict[str, FeatureSet] = {s.name: s for s in _SETS}
SET_NAMES = tuple(FEATURE_SETS)
RESIDENT_SETS = tuple(s.name for s in _SETS if s.entity == "resident")
F = (FALLS,)
L = (LONELINESS,)
FL = (FALLS, LONELINESS)


@dataclass(frozen=True)
class Wording:
    """The words a reason uses for one feature (what the family's sentence cannot derive).

    `yes`/`no`: a flag that is true / false, or an event's verb / the sentence when none happened;
    `span`: the period ("in the last year"); `one`/`many`: the counted thing; `short`: a short name
    ("STEADI", "fall"); `template`: the whole sentence with {value}; `high`: (threshold, suffix)
    added when the value reaches the threshold.
    """

    yes: str = ""
    no: str = ""
    span: str = ""
    one: str = ""
    many: str = ""
    short: str = ""
    template: str = ""
    high: tuple[float, str] | None = None


@dataclass(frozen=True)
class Feature:
    """One declared feature. `family`, `basis` and `companion` tell explanations how to word it."""

    name: str
    dtype: str  # "float" | "int" | "bool"
    window: str  # "static" | "7d" | "30d" | "90d" | "365d" | "latest" | "z7v90" | ...
    source: str  # twin table it is computed from
    description: str  # plain language, used to word explanations
    sets: tuple[str, ...]  # the feature sets it belongs to
    causes: tuple[str, ...] = ()
    unit: str = ""
    family: str = ""  # static | level | trend | variability | baseline | deviation | count | ...
    basis: str = ""  # the twin column (or event type / visit source) it is computed from
    companion: str = ""  # the feature that gives a deviation its context (baseline vs. last week)
    compute: str = ""  # the compute group that makes it (RESIDENT_GROUPS, SERIES_GROUPS)
    words: Wording = field(default_factory=Wording)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"feature {self.name}: dtype {self.dtype!r} is not one of {DTYPES}")
        bad = [s for s in self.sets if s not in FEATURE_SETS]
        if bad:
            raise ValueError(f"feature {self.name}: unknown feature set(s) {bad}; sets are {SET_NAMES}")
        unknown = [c for c in self.causes if c not in FALL_CAUSES + ISOLATION_CAUSES]
        if unknown:
            raise ValueError(f"feature {self.name}: unknown cause(s) {unknown}")
        for set_name in self.sets:  # one cause per feature: what its attribution is summed into
            mine = [c for c in self.causes if c in FEATURE_SETS[set_name].causes]
            if len(mine) > 1:
                raise ValueError(f"feature {self.name} measures {mine} in set {set_name}: declare one "
                                 "cause, or split the feature into ones that separate them")
        if self.compute and self.compute not in RESIDENT_GROUPS + SERIES_GROUPS:
            raise ValueError(f"feature {self.name}: unknown compute group {self.compute!r}")

    @property
    def days(self) -> int:
        """The window in days ("30d" -> 30)."""
        return int(self.window.removesuffix("d"))

    @property
    def recent_days(self) -> int:
        """A deviation's recent span in days, compared with the own baseline ("z3v90" -> 3)."""
        return int(self.window.removeprefix("z").split("v")[0])


@dataclass(frozen=True)
class Signal:
    """A daily sensor signal and how its rolling features are built.

    `causes` (at most one per feature set) is what the signal's long view measures: its 30-day and
    longer levels, its variability and the resident's own 90-day baseline. `recent` is the cause
    of its short view (the last week's level, the 30-day trend, the z-score of the last week
    against the own baseline), where a resident's change shows; by default the same causes.

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
    sets: tuple[str, ...]
    causes: tuple[str, ...]
    deviation: bool = False  # also declare baseline + z-score features
    recent: tuple[str, ...] | None = None
    level_windows: tuple[int, ...] = (7, 30, 90)
    variability: bool = True
    trend: bool = True


# A signal that mixes a slow cause and an episode names the slow one for its long view and the
# episode for its short view (`recent`): levels and baselines drift with frailty, a week's change
# against the own baseline is what an infection or a medication change shows.
SIGNALS: tuple[Signal, ...] = (
    Signal("night_toilet_visits", "night-time toilet visits", "a night", 1000, 0.5, F,
           ("acute_episode",), deviation=True, level_windows=(7, 30)),
    Signal("steps", "daily steps", "steps", 1, 300.0, FL, ("frailty", "low_mobility"),
           deviation=True, recent=("acute_episode", "low_mobility")),
    Signal("gait_speed", "walking speed", "m/s", 1000, 0.03, F, ("gait_balance",), deviation=True,
           recent=("acute_episode",)),
    Signal("time_out_of_home", "time out of home", "h a day", 1000, 0.25, FL, ("frailty", "trait"),
           deviation=True, level_windows=(7, 30, 90, 365), recent=("acute_episode", "trait")),
    Signal("sleep_interruptions", "sleep interruptions", "a night", 1000, 0.5, F,
           ("acute_episode",), deviation=True, level_windows=(7, 30)),
    Signal("longest_inactivity", "longest stretch without movement", "h", 1000, 0.25, FL,
           ("frailty", "low_mobility"), deviation=True, level_windows=(7, 30),
           recent=("acute_episode", "low_mobility")),
    Signal("sleep_hours", "sleep", "h a night", 1000, 0.25, FL, ("acute_episode",),
           level_windows=(7, 30), trend=False),
    Signal("resting_heart_rate", "resting heart rate", "bpm", 1000, 2.0, F, ("acute_episode",),
           level_windows=(7, 30), trend=False),
    Signal("kitchen_activity", "kitchen activity", "activations a day", 100, 2.0, F,
           ("acute_episode",), level_windows=(7, 30), trend=False, variability=False),
    Signal("visitors_detected", "visitors at home", "a day", 1000, 0.25, L, ("few_visits",),
           level_windows=(7, 30, 365), variability=False),
    Signal("phone_calls", "phone calls", "a day", 1000, 0.5, L, ("trait",),
           level_windows=(7, 30, 365), variability=False),
)
SIGNAL_BY_COLUMN = {s.column: s for s in SIGNALS}

# Windows of the z-score: the last 7 days against the 90 days before them.
Z_RECENT_DAYS = 7
# ... and the last 3 days against the same baseline: an episode that began days ago is diluted in
# the week's mean, and its hazard is still to come
Z_FRESH_DAYS = 3
Z_BASELINE_DAYS = 90
# Minimum days of data before a statistic is known (otherwise NaN).
MIN_DAYS_SD = 3
MIN_DAYS_TREND = 7
MIN_DAYS_Z_RECENT = 3
MIN_DAYS_Z_BASELINE = 14
TREND_DAYS = 30
SD_DAYS = 30


@dataclass(frozen=True)
class AssessmentItem:
    """An assessment column: its last value and that value's age are features."""

    column: str
    label: str
    sets: tuple[str, ...]
    causes: tuple[str, ...]
    unit: str
    dtype: str
    value_name: str
    age_name: str
    short: str  # how a reason names the assessment ("STEADI")
    yes: str = ""  # a flag answer that is true / false, in words
    no: str = ""
    template: str = ""
    high: tuple[float, str] | None = None


ASSESSMENT_ITEMS = (
    AssessmentItem("tug_seconds", "Timed Up and Go", F, ("gait_balance",), "s", "float",
                   "tug_seconds_last", "tug_age_days", "Timed Up and Go"),
    AssessmentItem("fear_of_falling", "fear of falling", F, ("fear_of_falling",), "", "bool",
                   "fear_of_falling_last", "fear_of_falling_age_days", "fear-of-falling",
                   "is worried about falling", "is not worried about falling"),
    AssessmentItem("steadi_fell_past_year", "STEADI answer 'fallen in the past year'", F,
                   ("previous_fall",), "", "bool", "steadi_fell_past_year_last",
                   "steadi_fell_past_year_age_days", "STEADI",
                   "reported a fall in the past year", "reported no fall in the past year"),
    AssessmentItem("steadi_unsteady", "STEADI answer 'feels unsteady'", F, ("gait_balance",), "",
                   "bool", "steadi_unsteady_last", "steadi_unsteady_age_days", "STEADI",
                   "feels unsteady when standing or walking", "does not feel unsteady"),
    AssessmentItem("loneliness_score", "loneliness score", L, ("trait",),
                   "points (3-9)", "float", "loneliness_score_last", "loneliness_age_days",
                   "loneliness", template="loneliness score {value} of 9", high=(6.0, " (lonely)")),
)
ASSESSMENT_NAMES = {a.column: (a.value_name, a.age_name) for a in ASSESSMENT_ITEMS}


def _declare() -> dict[str, Feature]:
    out: list[Feature] = []

    def add(*args, **kw) -> None:
        out.append(Feature(*args, **kw))

    # --- static, from the residents table (compute group "static") ------------------------
    def static(name, dtype, description, sets, causes, unit, basis, words=Wording()):
        add(name, dtype, "static", "residents", description, sets, causes, unit, "static", basis,
            compute="static", words=words)

    static("age_years", "int", "age in years at the as-of date", FL, ("frailty",), "years",
           "birth_year", Wording(template="is {value} years old"))
    static("sex_female", "bool", "is a woman", FL, (), "", "sex", Wording("is a woman", "is a man"))
    static("lives_alone", "bool", "lives alone", FL, ("lives_alone",), "", "lives_alone",
           Wording("lives alone", "lives with others"))
    static("chronic_conditions", "int", "chronic conditions", FL, ("frailty",), "conditions",
           "chronic_conditions")
    static("medication_count", "int", "regular medications", F, ("polypharmacy",), "medications",
           "medication_count", Wording(template="takes {value} regular medications"))
    static("vision_impairment", "bool", "has poor vision", F, ("poor_vision",), "",
           "vision_impairment", Wording("has poor vision", "has no recorded vision problem"))
    static("cognitive_impairment", "bool", "has dementia or cognitive impairment", FL,
           ("cognitive_impairment",), "", "cognitive_impairment",
           Wording("has dementia or cognitive impairment", "has no recorded cognitive impairment"))
    static("walking_aid", "bool", "uses a walking aid", FL, ("gait_balance", "low_mobility"), "",
           "walking_aid", Wording("uses a walking aid", "walks without an aid"))

    # --- rolling windows and deviation from own baseline, from sensor_days ("sensor") ------
    for s in SIGNALS:
        def sensor(name, window, description, unit, family, companion="", s=s, sets=s.sets):
            short = family in ("trend", "deviation") or (family == "level" and window == f"{Z_RECENT_DAYS}d")
            declared = s.recent if short and s.recent is not None else s.causes
            causes = tuple(dict.fromkeys(c for n in sets for c in declared if c in FEATURE_SETS[n].causes))
            add(name, "float", window, "sensor_days", description, sets, causes, unit, family,
                s.column, companion, compute="sensor")

        for w in s.level_windows:
            sensor(f"{s.column}_{w}d", f"{w}d", f"{s.label}, average over the last {w} days",
                   s.unit, "level")
        if s.trend:
            sensor(f"{s.column}_trend_{TREND_DAYS}d", f"{TREND_DAYS}d",
                   f"weekly change in {s.label} over the last {TREND_DAYS} days",
                   f"{s.unit} per week", "trend")
        if s.variability:
            sensor(f"{s.column}_sd_{SD_DAYS}d", f"{SD_DAYS}d",
                   f"day-to-day variability (standard deviation) of {s.label} over the last "
                   f"{SD_DAYS} days", s.unit, "variability")
        if s.deviation:
            sensor(f"{s.column}_baseline_90d", "90d",
                   f"{s.label}, own baseline: average over the 90 days before the last week",
                   s.unit, "baseline", f"{s.column}_7d")
            sensor(f"{s.column}_z7v90", "z7v90",
                   f"change in {s.label} this week against own baseline (z-score of the last "
                   f"7 days vs. the previous 90)", "sd", "deviation", f"{s.column}_baseline_90d")
            sensor(f"{s.column}_z{Z_FRESH_DAYS}v90", f"z{Z_FRESH_DAYS}v90",
                   f"change in {s.label} in the last {Z_FRESH_DAYS} days against own baseline "
                   f"(z-score of the last {Z_FRESH_DAYS} days vs. the 90 days before the last week)",
                   "sd", "deviation", f"{s.column}_baseline_90d", sets=tuple(n for n in s.sets if n in F))

    # --- event history, from events ("events"); basis: the kind of event counted ----------
    def events(name, dtype, window, description, sets, causes, unit, family, basis, words=Wording()):
        add(name, dtype, window, "events", description, sets, causes, unit, family, basis,
            compute="events", words=words)

    events("falls_30d", "int", "30d", "falls in the last 30 days", FL, ("previous_fall",), "falls",
           "count", "fall", Wording("fell", "no falls in the last 30 days", "in the last 30 days"))
    events("falls_365d", "int", "365d", "falls in the last year", FL, ("previous_fall",), "falls",
           "count", "fall", Wording("fell", "no falls in the last year", "in the last year"))
    events("injurious_falls_365d", "int", "365d", "falls with an injury in the last year", F,
           ("previous_fall",), "falls", "count", "injurious_fall",
           Wording("was injured in a fall", "no injurious falls in the last year", "in the last year"))
    events("days_since_last_fall", "float", "latest",
           "days since the last recorded fall (unknown if none is on record)", F, ("previous_fall",),
           "days", "recency", "fall", Wording(short="fall"))
    events("hospitalisations_365d", "int", "365d", "hospital stays in the last year", FL,
           ("frailty",), "stays", "count", "hospitalisation",
           Wording("was in hospital", "no hospital stays in the last year", "in the last year"))
    events("bereavements_365d", "int", "365d", "bereavements in the last year", L,
           ("bereavement",), "bereavements", "count", "bereavement")
    # grief fades over months: how long ago matters, not only whether
    events("days_since_last_bereavement", "float", "latest",
           "days since the last bereavement (unknown if none is on record)", L, ("bereavement",),
           "days", "recency", "bereavement", Wording(short="bereavement"))
    # a stay under way or just over: no sensor data, no falls at home, frailer after
    events("days_since_last_hospitalisation", "float", "latest",
           "days since the last hospital admission (unknown if none is on record)", FL,
           ("acute_episode",), "days", "recency", "hospitalisation",
           Wording(short="hospital admission"))

    # --- last known assessment values and their age, from assessments ("assessments") -----
    for a in ASSESSMENT_ITEMS:
        value_words = Wording(a.yes, a.no, short=a.short, template=a.template, high=a.high)
        add(a.value_name, a.dtype, "latest", "assessments", f"last {a.label}", a.sets, a.causes,
            a.unit, "assessment", a.column, a.age_name, compute="assessments", words=value_words)
        add(a.age_name, "float", "latest", "assessments", f"days since the last {a.label} assessment",
            a.sets, a.causes, "days", "assessment_age", a.column, a.value_name,
            compute="assessments", words=Wording(short=a.short))

    # --- history of the loneliness score: one score is noisy, its mean and drift are not -----
    lonely = ASSESSMENT_ITEMS[-1]
    for window, what in (("365d", "over the last year"), ("730d", "over the last two years (own long baseline)")):
        add(f"loneliness_score_mean_{window}", "float", window, "assessments",
            f"average loneliness score {what}", lonely.sets, lonely.causes, lonely.unit,
            "assessment_mean", lonely.column, compute="assessments")
    add("loneliness_score_trend_365d", "float", "365d", "assessments",
        "change in loneliness score per 90 days over the last year", lonely.sets, lonely.causes,
        "points per 90 days", "assessment_trend", lonely.column, compute="assessments")

    # --- social contact and time-bank help ("social") --------------------------------------
    def social(name, dtype, window, source, description, sets, causes, unit, family, basis, words):
        add(name, dtype, window, source, description, sets, causes, unit, family, basis,
            compute="social", words=words)

    for source, label, who in (("timebank", "time-bank volunteer", "time-bank"),
                               ("family", "family", "family"), ("care", "care staff", "care-staff")):
        social(f"visits_{source}_30d", "int", "30d", "visits", f"{label} visits in the last 30 days",
               L, ("few_visits",), "visits", "visit_count", source, Wording(short=who))
    social("visit_hours_30d", "float", "30d", "visits", "hours of visits in the last 30 days", L,
           ("few_visits",), "h", "visit_hours", "hours",
           Wording(one="hour of visits", many="hours of visits", span="in the last 30 days"))
    social("days_since_last_visit", "float", "latest", "visits",
           "days since the last recorded visit (unknown if none is on record)", L, ("few_visits",),
           "days", "recency", "visit", Wording(short="visit"))
    social("timebank_tasks_completed_90d", "int", "90d", "tasks",
           "time-bank tasks completed for the resident in the last 90 days", FL, ("few_visits",),
           "tasks", "task_count", "completed",
           Wording(one="time-bank task done", many="time-bank tasks done",
                   span="for the resident in the last 90 days"))
    social("service_requests_30d", "int", "30d", "service_requests",
           "requests for help in the last 30 days", L, ("few_visits",), "requests", "request_count",
           "any", Wording(one="request for help", many="requests for help", span="in the last 30 days"))
    social("companionship_requests_90d", "int", "90d", "service_requests",
           "requests for companionship in the last 90 days", L, ("few_visits",), "requests",
           "request_count", "companionship",
           Wording(one="request for companionship", many="requests for companionship",
                   span="in the last 90 days"))
    # a year or two of them: a lonely resident asks for company more often, and one request is
    # too rare an event to read from 90 days
    for window, span in (("365d", "in the last year"), ("730d", "in the last two years")):
        social(f"companionship_requests_{window}", "int", window, "service_requests",
               f"requests for companionship {span}", L, ("trait",), "requests", "request_count",
               "companionship", Wording(one="request for companionship", many="requests for companionship",
                                        span=span))

    # a completed home-hazard check lowers fall hazard for months
    social("days_since_home_hazard_check", "float", "latest", "tasks",
           "days since the last completed home-hazard check (unknown if none is on record)", F,
           (), "days", "task_recency", "home_hazard_check", Wording(short="home-hazard check"))

    # --- missingness, from sensor_days ("sensor") -------------------------------------------
    for w in (7, 30):
        add(f"sensor_missing_days_{w}d", "int", f"{w}d", "sensor_days",
            f"days without any sensor data in the last {w} days", FL, (), "days", "missing", "any",
            compute="sensor")
    return _unique(out)


def _declare_demand() -> dict[str, Feature]:
    """Features of a daily count series at a forecast origin ("series", features/demand.py).

    `family` says what the compute group makes of the counts; the window sets its span.
    """

    def d(name, dtype, window, description, family, unit="requests") -> Feature:
        return Feature(name, dtype, window, "service_requests", description, (REQUESTS,), (), unit,
                       family, "count", compute="series")

    return _unique([
        d("demand_last_day", "float", "1d", "requests on the last known day", "last_day"),
        d("demand_mean_7d", "float", "7d", "average daily requests over the last 7 days", "mean"),
        d("demand_mean_28d", "float", "28d", "average daily requests over the last 28 days", "mean"),
        d("demand_mean_91d", "float", "91d", "average daily requests over the last 91 days", "mean"),
        d("demand_mean_365d", "float", "365d",
          "average daily requests over the last year (series scale)", "mean"),
        d("demand_weekly_median_8w", "float", "56d",
          "median weekly requests over the last 8 weeks, per day", "weekly_median"),
        d("demand_same_weekday_last", "float", "7d",
          "requests on the same weekday in the latest known week", "same_weekday_last"),
        d("demand_same_weekday_mean_4w", "float", "28d",
          "average requests on the same weekday over the last 4 known weeks", "same_weekday_mean"),
        d("demand_zero_share_28d", "float", "28d",
          "share of the last 28 known days without any request", "zero_share", unit="share"),
        d("demand_days_known", "float", "365d", "days with a known count in the last year",
          "days_known", unit="days"),
        # Counts logged in batches: a day on which no series has a request reads as not yet
        # logged, so what happened since the community's last logged day is still to come.
        d("demand_days_since_logged", "float", "91d",
          "days since the last day any series of the community had a request logged",
          "days_since_logged", unit="days"),
        d("demand_unlogged_estimate", "float", "91d",
          "requests expected to be pending since that day (its days times the 91-day average)",
          "unlogged_estimate"),
        d("demand_logged_day_share_28d", "float", "28d",
          "share of the last 28 days on which any series of the community had a request logged",
          "logged_day_share", unit="share"),
        d("demand_logging_cycle_91d", "float", "91d",
          "requests logged on the forecast day on the community's typical logging path (the "
          "median of what its own gaps between logged days leave to log by then, at the 91-day "
          "rate of the days logged); on counts logged every day, the 91-day average",
          "logging_cycle"),
        d("demand_target_weekday", "int", "static", "weekday of the forecast day (0 = Monday)",
          "target_weekday", unit=""),
        d("demand_target_month", "int", "static", "month of the forecast day", "target_month",
          unit=""),
        d("demand_horizon", "int", "static",
          "days between the last known day and the forecast day", "horizon", unit="days"),
        d("demand_target_holiday", "bool", "static", "the forecast day is a public holiday",
          "target_holiday", unit=""),
    ])


def _unique(declared: list[Feature]) -> dict[str, Feature]:
    feats: dict[str, Feature] = {}
    for f in declared:
        if f.name in feats:
            raise ValueError(f"feature {f.name} declared twice")
        feats[f.name] = f
    return feats


# The resident feature table (training table and online store), in vector order.
FEATURES: dict[str, Feature] = _declare()
# The features of a daily count series at a forecast origin, in vector order.
SERIES_FEATURES: dict[str, Feature] = _declare_demand()


def get_feature(name: str) -> Feature:
    """The declared feature called `name` (resident features, then series features)."""
    if name in FEATURES:
        return FEATURES[name]
    if name in SERIES_FEATURES:
        return SERIES_FEATURES[name]
    raise KeyError(f"unknown feature {name!r}")


def feature_set(name: str) -> FeatureSet:
    """The feature set called `name`."""
    if name not in FEATURE_SETS:
        raise KeyError(f"unknown feature set {name!r}; sets are {', '.join(SET_NAMES)}")
    return FEATURE_SETS[name]


def feature_names(set_name: str) -> list[str]:
    """The ordered input vector of the feature set `set_name`."""
    feature_set(set_name)
    table = {**FEATURES, **SERIES_FEATURES}
    return [n for n, f in table.items() if set_name in f.sets]


def features_of(set_name: str) -> list[Feature]:
    """The ordered declared features of the feature set `set_name`."""
    return [get_feature(n) for n in feature_names(set_name)]


def schema_hash(set_name: str) -> str:
    """Fingerprint of the ordered (name, dtype, window) of a feature set's features."""
    parts = [f"{f.name}|{f.dtype}|{f.window}" for f in features_of(set_name)]
    label = feature_set(set_name).schema_label
    return hashlib.sha256("\n".join([label, *parts]).encode()).hexdigest()[:16]


def table_schema_hash() -> str:
    """Fingerprint of the whole resident feature table (what the online store holds)."""
    parts = [f"{f.name}|{f.dtype}|{f.window}" for f in FEATURES.values()]
    return hashlib.sha256("\n".join(["resident_features", *parts]).encode()).hexdigest()[:16]
