"""What the store hands out and takes in: tasks, scores, audit entries, outbox events, actors.

Also the input checks and the JSON form every stored response takes, so a replay returns exactly
what the first call returned.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from serving.ledger import minutes_to_hours, volunteer_account
from serving.store.errors import InvalidInput


class Actor(Protocol):
    """Who is acting: an API key's name and role (see `serving.auth.Principal`)."""

    name: str
    role: str


@dataclass(frozen=True)
class SystemActor:
    name: str = "system"
    role: str = "system"


SYSTEM = SystemActor()


def _iso(v: datetime | date | None) -> str | None:
    return None if v is None else v.isoformat()


def _dt(v: str | None) -> datetime | None:
    return None if v is None else datetime.fromisoformat(v)


def _d(v: str | None) -> date | None:
    return None if v is None else date.fromisoformat(v)


@dataclass(frozen=True)
class TaskSpec:
    """What to open: built by `serving.actions` from an assessment (or by hand for a request)."""

    resident_id: str
    grid_id: str
    kind: str
    reason: str  # reason code; one active task per resident and reason, the model's name
    due_date: date
    credits: float  # hours of credit offered
    urgency: str = "medium"
    hours: float = 1.0  # planned visit length, written back to the twin's visits
    explanation: str = ""
    reasons: tuple[Mapping[str, Any], ...] = ()  # the top reasons that triggered it
    model: str | None = None
    model_version: str | None = None
    probability: float | None = None
    band: str | None = None
    as_of: date | None = None
    details: Mapping[str, Any] = field(default_factory=dict)  # e.g. credit formula inputs


@dataclass(frozen=True)
class Task:
    """A time-bank task as the API shows it (TASKS columns plus its explanation)."""

    task_id: str
    resident_id: str
    grid_id: str
    kind: str
    reason: str
    created_at: datetime
    due_date: date
    status: str
    volunteer_id: str | None
    credits: float
    completed_at: datetime | None
    claimed_at: datetime | None
    closed_at: datetime | None
    urgency: str
    hours: float
    model: str | None
    model_version: str | None
    probability: float | None
    band: str | None
    as_of: date | None
    reasons: list[dict]
    explanation: str
    details: dict
    # True when this came back from a retried write (the stored response); not part of the task
    replayed: bool = field(default=False, compare=False)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d.pop("replayed")
        for k in ("created_at", "due_date", "completed_at", "claimed_at", "closed_at", "as_of"):
            d[k] = _iso(d[k])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Task:
        d = dict(d)
        for k in ("created_at", "completed_at", "claimed_at", "closed_at"):
            d[k] = _dt(d[k])
        for k in ("due_date", "as_of"):
            d[k] = _d(d[k])
        return cls(**d)

    @classmethod
    def from_row(cls, r: Any) -> Task:
        return cls(
            task_id=r.task_id,
            resident_id=r.resident_id,
            grid_id=r.grid_id,
            kind=r.kind,
            reason=r.reason,
            created_at=r.created_at,
            due_date=r.due_date,
            status=r.status,
            volunteer_id=r.volunteer_id,
            credits=minutes_to_hours(r.credit_minutes),
            completed_at=r.completed_at,
            claimed_at=r.claimed_at,
            closed_at=r.closed_at,
            urgency=r.urgency,
            hours=r.hours,
            model=r.model,
            model_version=r.model_version,
            probability=r.probability,
            band=r.band,
            as_of=r.as_of,
            reasons=list(r.reasons or []),
            explanation=r.explanation,
            details=dict(r.details or {}),
        )


@dataclass(frozen=True)
class OpenResult:
    """`created` is False when an active task for that resident and reason already existed;
    `replayed` is True when the idempotency key had been used before (the stored response)."""

    task: Task
    created: bool
    replayed: bool = False

    def to_dict(self) -> dict:
        return {"task": self.task.to_dict(), "created": self.created}


@dataclass(frozen=True)
class TaskPage:
    tasks: list[Task]
    next_cursor: str | None  # None at the end of the feed (for now)

    def to_dict(self) -> dict:
        return {"tasks": [t.to_dict() for t in self.tasks], "next_cursor": self.next_cursor}


@dataclass(frozen=True)
class ScoreRecord:
    """One model's score of one resident at one as-of date (kept as history for trends)."""

    resident_id: str
    model: str
    model_version: str
    as_of: date
    probability: float
    band: str
    reasons: list[dict] = field(default_factory=list)
    scored_at: datetime | None = None
    missing_data: list[dict] = field(default_factory=list)  # missing data that raised it, apart

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["as_of"] = _iso(self.as_of)
        d["scored_at"] = _iso(self.scored_at)
        return d


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    resident_id: str | None
    detail: dict

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["at"] = _iso(self.at)
        return d


@dataclass(frozen=True)
class OutboxEvent:
    """A task event waiting for (or done with) webhook delivery."""

    event_id: str
    event_type: str
    task_id: str
    payload: dict
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None


_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


def need_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise InvalidInput(f"{what} {value!r} is not valid: use 1-64 letters, digits, '_', '.', ':', '-'")
    return value


def need_volunteer_id(value: Any) -> str:
    """A volunteer id under the ledger's rule (it names the volunteer's account)."""
    try:
        volunteer_account(value)
    except ValueError as e:
        raise InvalidInput(str(e)) from None
    return value


def _plain(v: Any) -> Any:
    """JSON-safe copy: numpy scalars become Python numbers, NaN/inf become None, dates text."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, str | bytes):  # numpy scalar
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, datetime | date):
        return v.isoformat()
    if v is None or isinstance(v, str | int | float | bool):
        return v
    return str(v)


def jsonable(v: Any) -> Any:
    """Round-trip through JSON so what we store equals what a replay returns."""
    return json.loads(json.dumps(_plain(v), allow_nan=False))
