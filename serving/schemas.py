"""Request and response bodies of the TwinCare API (pydantic; descriptions feed the OpenAPI docs)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from serving.ledger import VOLUNTEER_ID_PATTERN

MAX_BATCH = 1000
"""Largest number of residents one /assess call may carry."""

ResidentId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$"),
    Field(description="Pseudonymous resident id, e.g. R00042."),
]
SeriesId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$"),
    Field(description='Demand series id "<grid_id>:<category>", e.g. G03:meals.'),
]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]
FIRST_DAY = dt.date(1900, 1, 1)
LAST_DAY = dt.date(2100, 12, 31)
Day = Annotated[
    dt.date,
    Field(ge=FIRST_DAY, le=LAST_DAY, json_schema_extra={"pattern": r"^(19[0-9]{2}|20[0-9]{2}|2100)-"}),
]
"""A calendar day the service can reason about (1900-01-01 to 2100-12-31)."""
VolunteerId = Annotated[
    str,
    StringConstraints(pattern=VOLUNTEER_ID_PATTERN),
    Field(description="Volunteer id (1-64 letters, digits, '_', '.', '-'), the same rule as the ledger's accounts."),
]


def _utc(v: dt.datetime | None) -> dt.datetime | None:
    """Stored times are naive UTC; answers carry the offset so they are RFC 3339 date-times."""
    return v.replace(tzinfo=dt.UTC) if v is not None and v.tzinfo is None else v


def _feature_names() -> list[str]:
    from features.registry import FEATURES

    return list(FEATURES)


def _risk_names() -> list[str]:
    from models.registry import risk_specs

    return list(risk_specs())


def _known_risk_model(name: str) -> str:
    if name not in _risk_names():
        raise ValueError(f"unknown risk model {name!r}; risk models are {', '.join(_risk_names())}")
    return name


RiskModel = Annotated[
    str,
    AfterValidator(_known_risk_model),
    Field(description="A registered risk model.", json_schema_extra=lambda s: s.update(enum=_risk_names())),
]
Band = Literal["low", "medium", "high"]
TaskStatus = Literal["open", "claimed", "completed", "expired", "cancelled"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # no resident data in logs

    @model_validator(mode="before")
    @classmethod
    def _no_null_lists(cls, data):
        """A list (or `act`) is given or left out; `null` is neither (the document does not allow it)."""
        if isinstance(data, dict):
            nulls = [k for k, v in data.items() if v is None and k in _LISTS]
            if nulls:
                raise ValueError(f"{', '.join(nulls)} may not be null; leave it out")
        return data


_LISTS = frozenset({"resident_ids", "rows", "series_ids", "grid_ids", "counts", "models", "act"})


# ---------------------------------------------------------------------------------------------
# /assess
# ---------------------------------------------------------------------------------------------


class FeatureRow(_Body):
    """One resident's feature values, given explicitly instead of read from the online store."""

    resident_id: ResidentId
    as_of_date: Day | None = Field(
        default=None, description="Date the values describe (features use history before it)."
    )
    features: dict[str, FiniteFloat | None] = Field(
        description="Feature name -> value. Missing or null means unknown; NaN and infinity are refused.",
        max_length=500,
        json_schema_extra=lambda s: s.update(
            properties={n: {"type": "number", "nullable": True} for n in _feature_names()},
            additionalProperties=False,
        ),
    )


class AssessRequest(_Body):
    """Residents to assess: ids looked up in the online feature store, or explicit feature rows."""

    resident_ids: list[ResidentId] | None = Field(
        default=None, min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} resident ids."
    )
    rows: list[FeatureRow] | None = Field(
        default=None, min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} explicit feature rows."
    )
    models: list[RiskModel] = Field(
        default_factory=_risk_names,
        min_length=1,
        max_length=20,
        description="Which risk models to run (default: every risk model).",
    )
    top_reasons: StrictInt = Field(default=3, ge=1, le=10, description="Reasons returned per model.")
    act: StrictBool | None = Field(
        default=None,
        description="Open proactive-visit tasks for high bands (at most one open task per resident and "
        "reason). Only for stored features: the default is true with resident_ids, and rows never open tasks.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "example": {"resident_ids": ["R000001"], "top_reasons": 3, "act": False},
            "oneOf": [
                {"required": ["resident_ids"], "not": {"required": ["rows"]}},
                {"required": ["rows"], "not": {"required": ["resident_ids"]},
                 "properties": {"act": {"enum": [False, None]}}},
            ]
        }
    )

    @model_validator(mode="after")
    def _one_source(self) -> AssessRequest:
        if (self.resident_ids is None) == (self.rows is None):
            raise ValueError("give exactly one of resident_ids or rows")
        n = len(self.resident_ids if self.resident_ids is not None else self.rows or [])
        if n == 0:
            raise ValueError("the batch is empty; give at least one resident")
        if self.rows is not None and self.act:
            raise ValueError("act needs stored features: explicit rows never open tasks (give resident_ids)")
        return self

    @property
    def acts(self) -> bool:
        """Whether this call opens tasks: only for residents looked up in the online store."""
        return self.resident_ids is not None and self.act is not False


MISSING_DATA = ("Missing data that raised the score, strongest first, apart from the reasons: an unknown "
                "value or days without sensor data (\"no steps data in the last 7 days\"). A high score "
                "whose push comes from missing data has few or no reasons and says so here.")


class Reason(BaseModel):
    """One input's share of the model's score (TreeSHAP) and the same in plain words."""

    feature: str = Field(description="Feature name.")
    contribution: float = Field(description="SHAP contribution to the raw score (log-odds).")
    value: float | None = Field(description="The resident's value of the feature (null: unknown).")
    text: str = Field(description="Plain-language reason.")


class CauseShare(BaseModel):
    """How much of the score one planted cause accounts for: the SHAP contributions of the features
    that measure it (each feature measures at most one cause), summed."""

    cause: str = Field(description="Cause, as the feature registry names it (e.g. acute_episode, previous_fall).")
    attribution: float = Field(description="Its share of the raw score (log-odds), above the community's average.")
    text: str = Field(description="The cause in plain words.")


class LikelyCause(BaseModel):
    """The cause a classifier of the model's inputs, trained on a twin's planted causes, finds most
    likely to dominate this resident's risk (models.causes); beside the SHAP sums, which say what
    moved the score."""

    cause: str = Field(description="Cause, as the feature registry names it.")
    probability: float = Field(description="The reader's probability that this cause dominates.")
    text: str = Field(description="The cause in plain words.")
    learned_from: str = Field(description="What the reader was trained on.")


class ModelAssessment(BaseModel):
    """One model's verdict on one resident."""

    model: str = Field(description="Registered model name.")
    version: str = Field(description="Registered model version that produced the score.")
    kind: str = Field(default="local", description="What the version is: `local` (trained on this "
                      "community's history), `reference` (a larger reference community's model, its "
                      "calibration kept, served because it beat this community's baseline and its own "
                      "model here) or `baseline` (the simple method it must beat, served because no "
                      "trained model beat it).")
    probability: float = Field(description="Calibrated probability of the outcome.")
    band: Band = Field(description="Risk band from the model's decision thresholds.")
    reasons: list[Reason] = Field(description="Top reasons, strongest push towards risk first.")
    missing_data: list[Reason] = Field(default_factory=list, description=MISSING_DATA)
    causes: list[CauseShare] = Field(default_factory=list, description="Every planted cause that raises the "
                                     "risk, with its summed attribution, strongest first (the first is the "
                                     "leading cause); the reasons are its features.")
    likely_cause: LikelyCause | None = Field(default=None, description="The likely cause, when the version "
                                             "has a cause reader (null otherwise).")


class ActionTaken(BaseModel):
    """A task opened (or found already open) because of a high band."""

    task_id: str
    kind: str = Field(description="Kind of visit, e.g. home_hazard_check, companionship.")
    reason: str = Field(description="Why the task exists (model and band).")
    due_date: dt.date | None = None
    credits: float | None = Field(default=None, description="Time credits offered (hours).")
    status: str = Field(description='"opened" for a new task, "already_open" when one existed.')


class ResidentAssessment(BaseModel):
    resident_id: str
    as_of_date: dt.date | None = Field(description="Date the features describe.")
    assessments: list[ModelAssessment]
    actions: list[ActionTaken] = Field(default_factory=list)


class AssessResponse(BaseModel):
    results: list[ResidentAssessment]
    model_versions: dict[str, str] = Field(description="Model name -> version used.")


# ---------------------------------------------------------------------------------------------
# /forecast_demand
# ---------------------------------------------------------------------------------------------


class CountPoint(_Body):
    """One day's count of service requests in one series."""

    series_id: SeriesId
    date: Day
    count: Annotated[float, Field(ge=0, allow_inf_nan=False, description="Requests that day.")]


class ForecastRequest(_Body):
    """Which series to forecast: stored series ids, whole grids, or a supplied count history."""

    series_ids: list[SeriesId] | None = Field(default=None, min_length=1, max_length=MAX_BATCH)
    grid_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]] | None = Field(
        default=None, min_length=1, max_length=200, description="Grid cells; every request category of each."
    )
    counts: list[CountPoint] | None = Field(
        default=None,
        min_length=1,
        max_length=200_000,
        description="Daily counts to forecast from (e.g. a real time bank's own history).",
    )
    horizon: StrictInt = Field(default=7, ge=1, le=14, description="Days ahead, 1-14.")
    basis: Literal["logged", "occurring"] = Field(
        default="logged",
        description="logged: the counts the record will show, on the days it will show them; "
        "occurring: the requests that will arise each day (where exchanges are logged in weekly "
        "batches, a batch's requests spread over the days it covers), for planning volunteers' hours.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "example": {"series_ids": ["G01:meals"], "horizon": 7},
            "oneOf": [
                {"required": [k], "not": {"anyOf": [{"required": [o]} for o in others]}}
                for k, others in (("series_ids", ("grid_ids", "counts")), ("grid_ids", ("series_ids", "counts")),
                                  ("counts", ("series_ids", "grid_ids")))
            ]
        }
    )

    @model_validator(mode="after")
    def _one_source(self) -> ForecastRequest:
        given = [x for x in (self.series_ids, self.grid_ids, self.counts) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of series_ids, grid_ids or counts")
        if len(given[0]) == 0:
            raise ValueError("nothing to forecast: the list is empty")
        return self


class ForecastPoint(BaseModel):
    series_id: str
    date: dt.date
    horizon: int = Field(description="Days ahead of the last observed day.")
    forecast: float = Field(description="Expected requests that day.")
    lower: float = Field(description="Lower end of the prediction interval.")
    upper: float = Field(description="Upper end of the prediction interval.")
    method: Literal["model", "zero", "seasonal_naive", "mean_91d", "median_8w", "logging_cycle",
                    "logged_rate"] = Field(
        description="What forecast this day: `model` (the global booster), a simple method the "
        "series' recent weekly errors chose (`zero`, `seasonal_naive`: the same weekday last week, "
        "`mean_91d`, `median_8w`: the median of the last 8 weekly totals, per day), "
        "`logging_cycle` (where exchanges are logged in batches: when the next batch lands and "
        "what it holds) or `logged_rate` (basis `occurring` on batch-logged counts: the rate "
        "requests arise at)."
    )


class ForecastResponse(BaseModel):
    model: str
    version: str
    forecasts: list[ForecastPoint]


# ---------------------------------------------------------------------------------------------
# Care-manager and time-bank routes
# ---------------------------------------------------------------------------------------------


class AtRiskEntry(BaseModel):
    resident_id: str
    model: str
    probability: float
    band: Band
    version: str
    as_of_date: dt.date | None
    reasons: list[Reason]
    missing_data: list[Reason] = Field(default_factory=list, description=MISSING_DATA)


class AtRiskList(BaseModel):
    """Residents ranked by probability, highest first."""

    source: Literal["stored", "live"] = Field(
        description="stored: the latest nightly scores; live: scored now from the online store."
    )
    items: list[AtRiskEntry]


class TaskView(BaseModel):
    """A task as the API shows it (the store's record is `serving.store.Task`)."""

    task_id: str
    resident_id: str
    grid_id: str | None = None
    kind: str
    reason: str
    created_at: dt.datetime | None = None
    due_date: dt.date | None = None
    status: str
    volunteer_id: str | None = None
    credits: float | None = None
    completed_at: dt.datetime | None = None

    _aware = field_validator("created_at", "completed_at")(_utc)


class TaskPage(BaseModel):
    items: list[TaskView]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end.")


class FeedTask(BaseModel):
    """An open task as volunteers see it: what help, where and when; not who or why."""

    task_id: str
    grid_id: str | None = None
    kind: str
    created_at: dt.datetime | None = None
    due_date: dt.date | None = None
    status: str
    credits: float | None = None

    _aware = field_validator("created_at")(_utc)


class FeedPage(BaseModel):
    items: list[FeedTask]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end.")


class ScorePoint(BaseModel):
    model: str
    version: str
    as_of_date: dt.date | None
    probability: float
    band: str
    scored_at: dt.datetime | None = None

    _aware = field_validator("scored_at")(_utc)


class ResidentPage(BaseModel):
    """Everything a care manager needs on one resident."""

    resident_id: str
    as_of_date: dt.date | None
    assessments: list[ModelAssessment]
    score_history: list[ScorePoint]
    tasks: list[TaskView]


class ClaimBody(_Body):
    """Who claims: the volunteer bound to the key or named by X-Volunteer-Token; a volunteer_id
    given here must be that one."""

    volunteer_id: VolunteerId | None = None


class CompleteBody(_Body):
    """Who completes: as for a claim; only the volunteer who claimed the task."""

    volunteer_id: VolunteerId | None = None


class CancelBody(_Body):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)] = "cancelled"


class TaskResult(BaseModel):
    """The task after the change (a retry with the same Idempotency-Key returns the same answer)."""

    task: TaskView


class ErrorBody(BaseModel):
    error: str = Field(description="What was wrong.")
    detail: list | dict | None = None
