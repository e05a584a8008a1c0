"""The time-bank store: tasks, the credit ledger, idempotency keys, outboxes, audit log, scores.

One SQLAlchemy schema on SQLite (default; WAL, `synchronous=FULL`, so an acknowledged commit
survives a crash) or PostgreSQL (`postgresql+psycopg://...`). Every write is one transaction:
the state change, its ledger movements, its webhook event, its visit write-back record, its
audit row and its idempotency record are committed together or not at all.

Write rules the service relies on:
- every write takes an idempotency key; the same key with the same request returns the stored
  response and changes nothing; the same key with a different request raises `IdempotencyConflict`;
- at most one active (open or claimed) task per resident and reason, enforced by a unique
  partial index, so concurrent openers cannot double-book;
- balances are never stored: they are sums over the movements.

Errors are typed (`NotFound`, `Conflict`, `Forbidden`, `InvalidInput`) and carry `.status`
(404/409/403/422) so the service can map them without knowing each case.

At a glance (`store = open_store(config.store_url)`; every write takes `idempotency_key=` and
an optional `actor=` principal that the audit log records):
    open_task(TaskSpec) -> OpenResult(task, created, replayed)   (usually via serving.actions)
    claim_task(task_id, volunteer_id) / complete_task(task_id, volunteer_id)
    cancel_task(task_id, note=)  -> Task (`.replayed` True for a retried key)
    expire_overdue(today=)       -> list[Task]
    list_open_tasks(grid_id=, limit=, cursor=) / list_tasks(status=, resident_id=, ...) -> TaskPage
    get_task, active_task_for, balances, balance, movements, transfer
    flush_visits(HistoryStore) -> int; record_scores, score_history, latest_scores
    record_audit, audit_log; ping, close, prune; tasks_frame / ledger_frame (twin schema frames)
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import math
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import StaticPool

from serving.ledger import (
    FUND_ACCOUNT,
    Movement,
    check_account,
    check_balanced,
    hours_to_minutes,
    minutes_to_hours,
    transfer_legs,
    volunteer_account,
)
from twin.schema import LEDGER, TASK_KINDS, TASK_STATUSES, TASKS, VISITS, conform, require_valid

ACTIVE_STATUSES = ("open", "claimed")
URGENCIES = ("high", "medium", "low")
EVENT_TYPES = ("task.opened", "task.claimed", "task.completed", "task.cancelled", "task.expired")
MAX_PAGE = 500

# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class StoreError(Exception):
    """Base of the errors a caller can act on; `.status` is the HTTP status it maps to."""

    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(StoreError):
    status = 404


class Conflict(StoreError):
    """The request clashes with the current state (e.g. claiming a claimed task)."""

    status = 409


class IdempotencyConflict(Conflict):
    """An idempotency key was reused for a different request."""


class Forbidden(StoreError):
    status = 403


class InvalidInput(StoreError):
    status = 422


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------

metadata = sa.MetaData()

tasks_table = sa.Table(
    "tasks",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),  # keyset cursor
    sa.Column("task_id", sa.String(64), nullable=False, unique=True),
    sa.Column("resident_id", sa.String(64), nullable=False),
    sa.Column("grid_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("volunteer_id", sa.String(64)),
    sa.Column("credit_minutes", sa.Integer, nullable=False),
    sa.Column("completed_at", sa.DateTime),
    sa.Column("claimed_at", sa.DateTime),
    sa.Column("closed_at", sa.DateTime),
    sa.Column("urgency", sa.String(16), nullable=False),
    sa.Column("hours", sa.Float, nullable=False),  # planned length of the visit
    sa.Column("model", sa.String(64)),
    sa.Column("model_version", sa.String(64)),
    sa.Column("probability", sa.Float),
    sa.Column("band", sa.String(16)),
    sa.Column("as_of", sa.Date),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("explanation", sa.Text, nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("open_key", sa.String(200)),  # idempotency key the task was opened with
    sa.CheckConstraint("credit_minutes >= 0", name="ck_tasks_credit_nonneg"),
    sa.CheckConstraint(
        "status IN (" + ",".join(f"'{s}'" for s in TASK_STATUSES) + ")", name="ck_tasks_status"
    ),
)
_active = tasks_table.c.status.in_(ACTIVE_STATUSES)
sa.Index(
    "uq_tasks_one_active_per_reason",
    tasks_table.c.resident_id,
    tasks_table.c.reason,
    unique=True,
    sqlite_where=_active,
    postgresql_where=_active,
)
sa.Index("ix_tasks_status_grid_seq", tasks_table.c.status, tasks_table.c.grid_id, tasks_table.c.seq)
sa.Index("ix_tasks_resident", tasks_table.c.resident_id)

ledger_table = sa.Table(
    "ledger_movements",
    metadata,
    sa.Column("entry_id", sa.String(96), primary_key=True),
    sa.Column("transfer_id", sa.String(96), nullable=False, index=True),
    sa.Column("timestamp", sa.DateTime, nullable=False),
    sa.Column("account", sa.String(96), nullable=False, index=True),
    sa.Column("amount_minutes", sa.Integer, nullable=False),
    sa.Column("memo", sa.Text, nullable=False),
    sa.Column("task_id", sa.String(64)),
    sa.UniqueConstraint("transfer_id", "account", name="uq_ledger_transfer_account"),
)

idempotency_table = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("operation", sa.String(64), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("response", sa.JSON),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

webhook_outbox_table = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(128), nullable=False, unique=True),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("task_id", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False),
    sa.Column("delivered_at", sa.DateTime),
    sa.Column("last_error", sa.Text),
)
sa.Index(
    "ix_outbox_pending", webhook_outbox_table.c.delivered_at, webhook_outbox_table.c.next_attempt_at
)

visit_outbox_table = sa.Table(
    "visit_outbox",
    metadata,
    sa.Column("visit_id", sa.String(64), primary_key=True),  # = task_id
    sa.Column("resident_id", sa.String(64), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("hours", sa.Float, nullable=False),
    sa.Column("task_id", sa.String(64)),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("flushed_at", sa.DateTime),
)

audit_table = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("resident_id", sa.String(64), index=True),
    sa.Column("detail", sa.JSON, nullable=False),
)

scores_table = sa.Table(
    "risk_scores",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("resident_id", sa.String(64), nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("band", sa.String(16), nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("scored_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("resident_id", "model", "model_version", "as_of", name="uq_scores_point"),
)
sa.Index("ix_scores_model_resident", scores_table.c.model, scores_table.c.resident_id)

# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


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
    reason: str  # reason code; one active task per resident and reason, e.g. "fall_risk"
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
    def _from_row(cls, r: Any) -> Task:
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


# ---------------------------------------------------------------------------------------------
# Engine
# ---------------------------------------------------------------------------------------------


def utcnow() -> datetime:
    """Naive UTC now (the store keeps naive UTC timestamps, like the twin history)."""
    return datetime.now(UTC).replace(tzinfo=None)


def default_url(home: str | os.PathLike) -> str:
    """The embedded default: `<TWINCARE_HOME>/timebank.db`."""
    return f"sqlite:///{Path(home) / 'timebank.db'}"


def redact_url(url: str) -> str:
    """The URL with any password hidden (safe to log)."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    """An engine with the store's durability settings (SQLite: WAL, synchronous=FULL)."""
    u = sa.engine.make_url(url)
    if u.get_backend_name() == "sqlite":
        memory = u.database in (None, "", ":memory:")
        if not memory:
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        kw: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if memory:  # one shared connection, single-threaded use (tests)
            kw["poolclass"] = StaticPool
        engine = sa.create_engine(u, **kw)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised via every test
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            # Writers take the write lock up front, so a check-then-write is serialised;
            # readers use a deferred transaction and never block writers under WAL.
            if conn.get_execution_options().get("twincare_read"):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if u.get_backend_name() == "postgresql":
        return sa.create_engine(u, pool_pre_ping=True)
    raise ValueError(f"unsupported store URL {redact_url(url)!r}: use sqlite:/// or postgresql+psycopg://")


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces


def _need_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise InvalidInput(f"{what} {value!r} is not valid: use 1-64 letters, digits, '_', '.', ':', '-'")
    return value


def _need_key(key: Any) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise InvalidInput(
            "an idempotency key is required: 1-200 printable ASCII characters without spaces"
        )
    return key


def _request_hash(operation: str, request: Mapping[str, Any]) -> str:
    body = json.dumps({"op": operation, "req": request}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


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


def _jsonable(v: Any) -> Any:
    """Round-trip through JSON so what we store equals what a replay returns."""
    return json.loads(json.dumps(_plain(v), allow_nan=False))


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"t1:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, seq = raw.split(":", 1)
        if tag != "t1":
            raise ValueError(tag)
        n = int(seq)
        if n < 0:
            raise ValueError(seq)
        return n
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidInput(f"cursor {cursor!r} is not valid; pass back next_cursor unchanged") from None


def event_id_for(task_id: str, event_type: str) -> str:
    """Stable id of a task event: a task goes through each transition at most once."""
    return f"{task_id}.{event_type.removeprefix('task.')}"


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


class TimeBankStore:
    """Tasks, ledger and the records around them, on one SQLAlchemy engine.

    Create with `TimeBankStore(url)`; the schema is created if missing. Thread-safe (one engine,
    a connection per call). `clock` returns naive UTC and is injectable for tests.
    """

    def __init__(self, url: str, *, clock: Callable[[], datetime] = utcnow, create: bool = True):
        self.url = url
        self._engine = make_engine(url)
        self._clock = clock
        if create:
            self.create_schema()

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def __repr__(self) -> str:
        return f"TimeBankStore({redact_url(self.url)!r})"

    def create_schema(self) -> None:
        metadata.create_all(self._engine)

    def ping(self) -> bool:
        """True if the database answers (for /readyz)."""
        try:
            with self._read() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except DBAPIError:
            return False

    def close(self) -> None:
        self._engine.dispose()

    def now(self) -> datetime:
        return self._clock()

    @contextmanager
    def _read(self):
        with self._engine.connect().execution_options(twincare_read=True) as conn, conn.begin():
            yield conn

    def _write(
        self,
        operation: str,
        idempotency_key: str | None,
        request: Mapping[str, Any],
        body: Callable[[Connection, datetime], dict],
    ) -> tuple[dict, bool]:
        """Run `body` in one transaction under an idempotency key.

        Returns its JSON response and whether it was a replay of a stored response.

        The key row is inserted first, so on PostgreSQL a concurrent request with the same key
        waits on it and then replays. A unique-constraint race (e.g. two openers of the same
        resident/reason) rolls back and retries, and the retry sees the winner's row.
        """
        key = None if idempotency_key is None else _need_key(idempotency_key)
        req_hash = _request_hash(operation, request)
        last: Exception | None = None
        for _ in range(5):
            try:
                with self._engine.begin() as conn:
                    now = self._clock()
                    if key is not None:
                        row = conn.execute(
                            sa.select(idempotency_table).where(idempotency_table.c.key == key)
                        ).first()
                        if row is not None:
                            if row.operation != operation or row.request_hash != req_hash:
                                raise IdempotencyConflict(
                                    f"idempotency key {key!r} was already used for a different "
                                    f"request ({row.operation}); use a new key for a new request"
                                )
                            return row.response, True
                        conn.execute(
                            idempotency_table.insert().values(
                                key=key, operation=operation, request_hash=req_hash, created_at=now
                            )
                        )
                    response = _jsonable(body(conn, now))
                    if key is not None:
                        conn.execute(
                            idempotency_table.update()
                            .where(idempotency_table.c.key == key)
                            .values(response=response)
                        )
                    return response, False
            except IntegrityError as e:
                last = e
                continue
        raise Conflict(f"{operation}: the request kept clashing with concurrent writes; retry") from last

    # -- internals shared by the writes ----------------------------------------------------------

    @staticmethod
    def _task_row(conn: Connection, task_id: str, *, lock: bool = False):
        q = sa.select(tasks_table).where(tasks_table.c.task_id == task_id)
        if lock and conn.dialect.name == "postgresql":
            q = q.with_for_update()
        return conn.execute(q).first()

    def _load(self, conn: Connection, task_id: str) -> Task:
        row = self._task_row(conn, task_id)
        if row is None:
            raise NotFound(f"task {task_id!r} does not exist")
        return Task._from_row(row)

    @staticmethod
    def _emit(conn: Connection, event_type: str, task: Task, now: datetime) -> None:
        eid = event_id_for(task.task_id, event_type)
        payload = {
            "event_id": eid,
            "type": event_type,
            "occurred_at": now.isoformat(),
            "task": task.to_dict(),
        }
        conn.execute(
            webhook_outbox_table.insert().values(
                event_id=eid,
                event_type=event_type,
                task_id=task.task_id,
                payload=_jsonable(payload),
                created_at=now,
                attempts=0,
                next_attempt_at=now,
            )
        )

    @staticmethod
    def _audit(
        conn: Connection,
        actor: Actor | None,
        action: str,
        resident_id: str | None,
        detail: Mapping[str, Any],
        now: datetime,
    ) -> None:
        a = actor or SYSTEM
        conn.execute(
            audit_table.insert().values(
                at=now,
                actor=str(a.name),
                role=str(a.role),
                action=action,
                resident_id=resident_id,
                detail=_jsonable(dict(detail)),
            )
        )

    def _transition(
        self,
        conn: Connection,
        task_id: str,
        from_statuses: Sequence[str],
        values: Mapping[str, Any],
        extra_where: Sequence[Any] = (),
    ) -> bool:
        res = conn.execute(
            tasks_table.update()
            .where(tasks_table.c.task_id == task_id, tasks_table.c.status.in_(from_statuses), *extra_where)
            .values(**values)
        )
        return res.rowcount == 1

    # -- tasks: writes ---------------------------------------------------------------------------

    def open_task(
        self, spec: TaskSpec, *, idempotency_key: str, actor: Actor | None = None
    ) -> OpenResult:
        """Open a task unless one is already active for this resident and reason.

        Returns the new task (`created=True`) or the active one (`created=False`).
        """
        _check_spec(spec)
        minutes = hours_to_minutes(spec.credits)
        request = {
            "resident_id": spec.resident_id,
            "reason": spec.reason,
            "kind": spec.kind,
            "grid_id": spec.grid_id,
            "due_date": spec.due_date.isoformat(),
            "credit_minutes": minutes,
            "urgency": spec.urgency,
        }

        def body(conn: Connection, now: datetime) -> dict:
            active = conn.execute(
                sa.select(tasks_table).where(
                    tasks_table.c.resident_id == spec.resident_id,
                    tasks_table.c.reason == spec.reason,
                    _active,
                )
            ).first()
            if active is not None:
                return OpenResult(Task._from_row(active), created=False).to_dict()
            task_id = "T" + uuid.uuid4().hex[:16]
            conn.execute(
                tasks_table.insert().values(
                    task_id=task_id,
                    resident_id=spec.resident_id,
                    grid_id=spec.grid_id,
                    kind=spec.kind,
                    reason=spec.reason,
                    created_at=now,
                    due_date=spec.due_date,
                    status="open",
                    volunteer_id=None,
                    credit_minutes=minutes,
                    urgency=spec.urgency,
                    hours=float(spec.hours),
                    model=spec.model,
                    model_version=spec.model_version,
                    probability=None if spec.probability is None else float(spec.probability),
                    band=spec.band,
                    as_of=spec.as_of,
                    reasons=_jsonable([dict(r) for r in spec.reasons]),
                    explanation=spec.explanation,
                    details=_jsonable(dict(spec.details)),
                    open_key=idempotency_key,
                )
            )
            task = self._load(conn, task_id)
            self._emit(conn, "task.opened", task, now)
            self._audit(
                conn, actor, "task.open", spec.resident_id,
                {"task_id": task_id, "reason": spec.reason, "kind": spec.kind}, now,
            )
            return OpenResult(task, created=True).to_dict()

        d, replayed = self._write("open_task", idempotency_key, request, body)
        return OpenResult(Task.from_dict(d["task"]), d["created"], replayed)

    def claim_task(
        self, task_id: str, volunteer_id: str, *, idempotency_key: str, actor: Actor | None = None
    ) -> Task:
        """open -> claimed by `volunteer_id`; a task that is not open raises Conflict."""
        _need_id(task_id, "task id")
        _need_id(volunteer_id, "volunteer id")

        def body(conn: Connection, now: datetime) -> dict:
            ok = self._transition(
                conn, task_id, ("open",),
                {"status": "claimed", "volunteer_id": volunteer_id, "claimed_at": now},
            )
            task = self._load(conn, task_id)
            if not ok:
                who = f" by {task.volunteer_id}" if task.status == "claimed" else ""
                raise Conflict(f"task {task_id} is {task.status}{who}; only an open task can be claimed")
            self._emit(conn, "task.claimed", task, now)
            self._audit(conn, actor, "task.claim", task.resident_id,
                        {"task_id": task_id, "volunteer_id": volunteer_id}, now)
            return task.to_dict()

        d, replayed = self._write("claim_task", idempotency_key,
                                  {"task_id": task_id, "volunteer_id": volunteer_id}, body)
        return replace(Task.from_dict(d), replayed=replayed)

    def complete_task(
        self, task_id: str, volunteer_id: str, *, idempotency_key: str, actor: Actor | None = None
    ) -> Task:
        """claimed -> completed by the claiming volunteer, in one transaction with:
        the credit transfer fund:community -> volunteer:<id>, the visit write-back record
        (flushed to the twin history by `flush_visits`), the webhook event and the audit row.
        """
        _need_id(task_id, "task id")
        _need_id(volunteer_id, "volunteer id")

        def body(conn: Connection, now: datetime) -> dict:
            ok = self._transition(
                conn, task_id, ("claimed",),
                {"status": "completed", "completed_at": now, "closed_at": now},
                (tasks_table.c.volunteer_id == volunteer_id,),
            )
            task = self._load(conn, task_id)
            if not ok:
                if task.status == "claimed":
                    raise Forbidden(f"task {task_id} was claimed by another volunteer; only they can complete it")
                raise Conflict(f"task {task_id} is {task.status}; only a claimed task can be completed")
            minutes = hours_to_minutes(task.credits)
            if minutes > 0:
                self._post(
                    conn, f"task-{task_id}",
                    transfer_legs(FUND_ACCOUNT, volunteer_account(volunteer_id), minutes),
                    f"{task.kind} for {task.resident_id} (task {task_id})", now, task_id,
                )
            conn.execute(
                visit_outbox_table.insert().values(
                    visit_id=task_id,
                    resident_id=task.resident_id,
                    date=now.date(),
                    kind=task.kind,
                    source="timebank",
                    hours=task.hours,
                    task_id=task_id,
                    created_at=now,
                )
            )
            self._emit(conn, "task.completed", task, now)
            self._audit(conn, actor, "task.complete", task.resident_id,
                        {"task_id": task_id, "volunteer_id": volunteer_id, "credits": task.credits}, now)
            return task.to_dict()

        d, replayed = self._write("complete_task", idempotency_key,
                                  {"task_id": task_id, "volunteer_id": volunteer_id}, body)
        return replace(Task.from_dict(d), replayed=replayed)

    def cancel_task(
        self, task_id: str, *, idempotency_key: str, note: str = "", actor: Actor | None = None
    ) -> Task:
        """open/claimed -> cancelled; a finished task raises Conflict."""
        _need_id(task_id, "task id")
        if not isinstance(note, str) or len(note) > 500:
            raise InvalidInput("note must be text of at most 500 characters")

        def body(conn: Connection, now: datetime) -> dict:
            ok = self._transition(conn, task_id, ACTIVE_STATUSES, {"status": "cancelled", "closed_at": now})
            task = self._load(conn, task_id)
            if not ok:
                raise Conflict(f"task {task_id} is {task.status}; only an open or claimed task can be cancelled")
            self._emit(conn, "task.cancelled", task, now)
            self._audit(conn, actor, "task.cancel", task.resident_id, {"task_id": task_id, "note": note}, now)
            return task.to_dict()

        d, replayed = self._write("cancel_task", idempotency_key, {"task_id": task_id, "note": note}, body)
        return replace(Task.from_dict(d), replayed=replayed)

    def expire_overdue(
        self, *, today: date | None = None, idempotency_key: str | None = None, actor: Actor | None = None
    ) -> list[Task]:
        """Open or claimed tasks whose due date is before `today` -> expired (safe to re-run)."""
        def body(conn: Connection, now: datetime) -> dict:
            day = today or now.date()
            ids = [
                r.task_id
                for r in conn.execute(
                    sa.select(tasks_table.c.task_id)
                    .where(_active, tasks_table.c.due_date < day)
                    .order_by(tasks_table.c.seq)
                )
            ]
            out = []
            for tid in ids:
                if self._transition(conn, tid, ACTIVE_STATUSES, {"status": "expired", "closed_at": now}):
                    task = self._load(conn, tid)
                    self._emit(conn, "task.expired", task, now)
                    self._audit(conn, actor, "task.expire", task.resident_id, {"task_id": tid}, now)
                    out.append(task.to_dict())
            return {"tasks": out}

        req = {"today": None if today is None else today.isoformat()}
        d, _ = self._write("expire_overdue", idempotency_key, req, body)
        return [Task.from_dict(t) for t in d["tasks"]]

    # -- tasks: reads ----------------------------------------------------------------------------

    def get_task(self, task_id: str) -> Task:
        _need_id(task_id, "task id")
        with self._read() as conn:
            return self._load(conn, task_id)

    def list_tasks(
        self,
        *,
        status: str | Sequence[str] | None = "open",
        grid_id: str | None = None,
        resident_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> TaskPage:
        """Tasks in the order they were opened, a page at a time (keyset on an insert sequence).

        The cursor is stable: new tasks only ever appear after it, so a poller that keeps the
        last `next_cursor` sees every new task exactly once. `next_cursor` is None when the page
        is not full.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be a whole number from 1 to {MAX_PAGE}, got {limit!r}")
        q = sa.select(tasks_table)
        if status is not None:
            statuses = (status,) if isinstance(status, str) else tuple(status)
            bad = [s for s in statuses if s not in TASK_STATUSES]
            if bad:
                raise InvalidInput(f"unknown task status {bad[0]!r}; statuses are {', '.join(TASK_STATUSES)}")
            q = q.where(tasks_table.c.status.in_(statuses))
        if grid_id is not None:
            q = q.where(tasks_table.c.grid_id == _need_id(grid_id, "grid id"))
        if resident_id is not None:
            q = q.where(tasks_table.c.resident_id == _need_id(resident_id, "resident id"))
        if cursor:
            q = q.where(tasks_table.c.seq > decode_cursor(cursor))
        q = q.order_by(tasks_table.c.seq).limit(limit)
        with self._read() as conn:
            rows = conn.execute(q).all()
        tasks = [Task._from_row(r) for r in rows]
        nxt = encode_cursor(rows[-1].seq) if len(rows) == limit else None
        return TaskPage(tasks, nxt)

    def list_open_tasks(
        self, *, grid_id: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> TaskPage:
        """The volunteers' feed: open tasks, optionally in one grid cell."""
        return self.list_tasks(status="open", grid_id=grid_id, limit=limit, cursor=cursor)

    def active_task_for(self, resident_id: str, reason: str) -> Task | None:
        """The open or claimed task for this resident and reason, if any."""
        with self._read() as conn:
            r = conn.execute(
                sa.select(tasks_table).where(
                    tasks_table.c.resident_id == resident_id, tasks_table.c.reason == reason, _active
                )
            ).first()
        return None if r is None else Task._from_row(r)

    # -- ledger ----------------------------------------------------------------------------------

    @staticmethod
    def _post(
        conn: Connection,
        transfer_id: str,
        legs: Iterable[tuple[str, int]],
        memo: str,
        now: datetime,
        task_id: str | None = None,
    ) -> None:
        legs = check_balanced(legs)
        conn.execute(
            ledger_table.insert(),
            [
                {
                    "entry_id": f"{transfer_id}.{i}",
                    "transfer_id": transfer_id,
                    "timestamp": now,
                    "account": account,
                    "amount_minutes": minutes,
                    "memo": memo,
                    "task_id": task_id,
                }
                for i, (account, minutes) in enumerate(legs)
            ],
        )

    def transfer(
        self,
        from_account: str,
        to_account: str,
        hours: float,
        memo: str,
        *,
        idempotency_key: str,
        actor: Actor | None = None,
    ) -> str:
        """Book a manual transfer (e.g. an admin correction); returns the transfer id."""
        try:
            minutes = hours_to_minutes(hours)
            legs = transfer_legs(check_account(from_account), check_account(to_account), minutes)
        except ValueError as e:
            raise InvalidInput(str(e)) from None
        if not isinstance(memo, str) or not memo or len(memo) > 500:
            raise InvalidInput("memo must be non-empty text of at most 500 characters")

        def body(conn: Connection, now: datetime) -> dict:
            tid = "X" + uuid.uuid4().hex[:16]
            self._post(conn, tid, legs, memo, now)
            self._audit(conn, actor, "ledger.transfer", None,
                        {"transfer_id": tid, "from": from_account, "to": to_account, "hours": hours}, now)
            return {"transfer_id": tid}

        req = {"from": from_account, "to": to_account, "minutes": minutes, "memo": memo}
        return self._write("transfer", idempotency_key, req, body)[0]["transfer_id"]

    def movements(
        self, *, account: str | None = None, transfer_id: str | None = None, limit: int | None = None
    ) -> list[Movement]:
        q = sa.select(ledger_table)
        if account is not None:
            q = q.where(ledger_table.c.account == account)
        if transfer_id is not None:
            q = q.where(ledger_table.c.transfer_id == transfer_id)
        q = q.order_by(ledger_table.c.timestamp, ledger_table.c.entry_id)
        if limit is not None:
            q = q.limit(limit)
        with self._read() as conn:
            return [
                Movement(r.entry_id, r.transfer_id, r.timestamp, r.account, r.amount_minutes, r.memo, r.task_id)
                for r in conn.execute(q)
            ]

    def balance_minutes(self) -> dict[str, int]:
        """Minutes per account, summed from the movements in SQL (exact)."""
        q = sa.select(ledger_table.c.account, sa.func.sum(ledger_table.c.amount_minutes)).group_by(
            ledger_table.c.account
        )
        with self._read() as conn:
            return {a: int(m) for a, m in conn.execute(q)}

    def balances(self) -> dict[str, float]:
        """Hours per account (derived from movements; there is no stored balance to drift)."""
        return {a: minutes_to_hours(m) for a, m in self.balance_minutes().items()}

    def balance(self, account: str) -> float:
        q = sa.select(sa.func.coalesce(sa.func.sum(ledger_table.c.amount_minutes), 0)).where(
            ledger_table.c.account == account
        )
        with self._read() as conn:
            return minutes_to_hours(int(conn.execute(q).scalar_one()))

    # -- visit write-back ------------------------------------------------------------------------

    def pending_visits(self) -> pd.DataFrame:
        """Completed-task visits not yet written to the twin history (VISITS columns)."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(visit_outbox_table)
                .where(visit_outbox_table.c.flushed_at.is_(None))
                .order_by(visit_outbox_table.c.created_at, visit_outbox_table.c.visit_id)
            ).all()
        return _visits_frame(rows)

    def flush_visits(self, history: Any) -> int:
        """Append pending visits to the twin history (`twin.store.HistoryStore`); safe to retry.

        The visit id is the task id. Visits already in the history (a previous flush that died
        before marking them) are skipped, so a visit is written exactly once. A file lock in the
        history root keeps two flushers on one machine from racing. Returns the number appended.
        """
        root = Path(history.root)
        root.mkdir(parents=True, exist_ok=True)
        with open(root / ".visits-flush.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                pending = self.pending_visits()
                if pending.empty:
                    return 0
                have = history.read("visits", ["visit_id"], residents=sorted(set(pending["resident_id"])))
                new = pending[~pending["visit_id"].isin(set(have["visit_id"]))]
                if len(new):
                    history.append("visits", new, tag="timebank")
                with self._engine.begin() as conn:
                    conn.execute(
                        visit_outbox_table.update()
                        .where(visit_outbox_table.c.visit_id.in_(list(pending["visit_id"])))
                        .values(flushed_at=self._clock())
                    )
                return int(len(new))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- webhook outbox (used by serving.webhook) -------------------------------------------------

    def due_events(self, *, now: datetime | None = None, limit: int = 100) -> list[OutboxEvent]:
        """Undelivered events whose next attempt is due, oldest first."""
        now = now or self._clock()
        q = (
            sa.select(webhook_outbox_table)
            .where(
                webhook_outbox_table.c.delivered_at.is_(None),
                webhook_outbox_table.c.next_attempt_at <= now,
            )
            .order_by(webhook_outbox_table.c.seq)
            .limit(limit)
        )
        with self._read() as conn:
            return [_event(r) for r in conn.execute(q)]

    def events(self, *, task_id: str | None = None) -> list[OutboxEvent]:
        q = sa.select(webhook_outbox_table).order_by(webhook_outbox_table.c.seq)
        if task_id is not None:
            q = q.where(webhook_outbox_table.c.task_id == task_id)
        with self._read() as conn:
            return [_event(r) for r in conn.execute(q)]

    def lease_event(self, ev: OutboxEvent, until: datetime) -> bool:
        """Take an event for one delivery attempt (False if another deliverer took it)."""
        with self._engine.begin() as conn:
            res = conn.execute(
                webhook_outbox_table.update()
                .where(
                    webhook_outbox_table.c.event_id == ev.event_id,
                    webhook_outbox_table.c.delivered_at.is_(None),
                    webhook_outbox_table.c.next_attempt_at == ev.next_attempt_at,
                )
                .values(next_attempt_at=until)
            )
            return res.rowcount == 1

    def mark_delivered(self, event_id: str, *, attempts: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                webhook_outbox_table.update()
                .where(webhook_outbox_table.c.event_id == event_id)
                .values(delivered_at=self._clock(), attempts=attempts, last_error=None)
            )

    def mark_failed(self, event_id: str, *, attempts: int, next_attempt_at: datetime, error: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                webhook_outbox_table.update()
                .where(webhook_outbox_table.c.event_id == event_id)
                .values(attempts=attempts, next_attempt_at=next_attempt_at, last_error=error[:500])
            )

    def prune(self, before: datetime) -> dict[str, int]:
        """Forget delivered webhook events, flushed visit records and idempotency keys created
        before `before` (a retention window, e.g. 30 days). A key older than that is no longer
        recognised as a retry. Tasks, movements, audit rows and scores are never pruned."""
        with self._engine.begin() as conn:
            events = conn.execute(
                webhook_outbox_table.delete().where(
                    webhook_outbox_table.c.delivered_at.is_not(None),
                    webhook_outbox_table.c.created_at < before,
                )
            ).rowcount
            visits = conn.execute(
                visit_outbox_table.delete().where(
                    visit_outbox_table.c.flushed_at.is_not(None), visit_outbox_table.c.created_at < before
                )
            ).rowcount
            keys = conn.execute(
                idempotency_table.delete().where(idempotency_table.c.created_at < before)
            ).rowcount
        return {"webhook_events": events, "visits": visits, "idempotency_keys": keys}

    # -- audit -----------------------------------------------------------------------------------

    def record_audit(
        self,
        actor: Actor | None,
        action: str,
        *,
        resident_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Write one audit row (reads of resident data; writes audit themselves)."""
        with self._engine.begin() as conn:
            self._audit(conn, actor, action, resident_id, detail or {}, self._clock())

    def audit_log(
        self, *, resident_id: str | None = None, actor: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """Most recent first."""
        q = sa.select(audit_table).order_by(audit_table.c.id.desc()).limit(limit)
        if resident_id is not None:
            q = q.where(audit_table.c.resident_id == resident_id)
        if actor is not None:
            q = q.where(audit_table.c.actor == actor)
        with self._read() as conn:
            return [
                AuditEntry(r.id, r.at, r.actor, r.role, r.action, r.resident_id, dict(r.detail or {}))
                for r in conn.execute(q)
            ]

    # -- risk scores -----------------------------------------------------------------------------

    def record_scores(self, records: Iterable[ScoreRecord]) -> int:
        """Add scores to the history; a (resident, model, version, as_of) already stored is kept.

        Returns the number of new rows.
        """
        now = self._clock()
        rows = []
        for r in records:
            if not math.isfinite(r.probability) or not 0.0 <= r.probability <= 1.0:
                raise InvalidInput(f"probability for {r.resident_id}/{r.model} must be in [0, 1], got {r.probability}")
            rows.append(
                {
                    "resident_id": r.resident_id,
                    "model": r.model,
                    "model_version": str(r.model_version),
                    "as_of": r.as_of,
                    "probability": float(r.probability),
                    "band": r.band,
                    "reasons": _jsonable(list(r.reasons)),
                    "scored_at": r.scored_at or now,
                }
            )
        if not rows:
            return 0
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        stmt = (
            dialect_insert(scores_table)
            .on_conflict_do_nothing(index_elements=["resident_id", "model", "model_version", "as_of"])
            .returning(scores_table.c.id)
        )
        added = 0
        with self._engine.begin() as conn:
            for i in range(0, len(rows), 1000):
                added += len(conn.execute(stmt, rows[i : i + 1000]).all())
        return added

    def score_history(self, resident_id: str, *, model: str | None = None) -> list[ScoreRecord]:
        """Every stored score of a resident, oldest as-of first (for trends)."""
        q = sa.select(scores_table).where(scores_table.c.resident_id == resident_id)
        if model is not None:
            q = q.where(scores_table.c.model == model)
        q = q.order_by(scores_table.c.as_of, scores_table.c.scored_at, scores_table.c.id)
        with self._read() as conn:
            return [_score(r) for r in conn.execute(q)]

    def latest_scores(
        self, model: str, *, band: str | None = None, grid_ids: Sequence[str] | None = None, limit: int = 100
    ) -> list[ScoreRecord]:
        """The most recently recorded score of each resident for `model`, highest probability
        first (the care managers' ranked at-risk list)."""
        latest = (
            sa.select(sa.func.max(scores_table.c.id))
            .where(scores_table.c.model == model)
            .group_by(scores_table.c.resident_id)
        )
        q = sa.select(scores_table).where(scores_table.c.id.in_(latest))
        if band is not None:
            q = q.where(scores_table.c.band == band)
        q = q.order_by(scores_table.c.probability.desc(), scores_table.c.resident_id).limit(limit)
        with self._read() as conn:
            return [_score(r) for r in conn.execute(q)]

    # -- export to the twin's tables -------------------------------------------------------------

    def tasks_frame(self) -> pd.DataFrame:
        """All tasks as a frame valid under `twin.schema.TASKS`."""
        with self._read() as conn:
            rows = conn.execute(sa.select(tasks_table).order_by(tasks_table.c.seq)).all()
        df = pd.DataFrame(
            {
                "task_id": [r.task_id for r in rows],
                "resident_id": [r.resident_id for r in rows],
                "grid_id": [r.grid_id for r in rows],
                "kind": [r.kind for r in rows],
                "reason": [r.reason for r in rows],
                "created_at": pd.to_datetime([r.created_at for r in rows]),
                "due_date": pd.to_datetime([r.due_date for r in rows]),
                "status": [r.status for r in rows],
                "volunteer_id": pd.Series([r.volunteer_id for r in rows], dtype="str"),
                "credits": [minutes_to_hours(r.credit_minutes) for r in rows],
                "completed_at": pd.to_datetime([r.completed_at for r in rows]),
            }
        )
        return require_valid(conform(df, TASKS), TASKS)

    def ledger_frame(self) -> pd.DataFrame:
        """All movements as a frame valid under `twin.schema.LEDGER` (hours)."""
        ms = self.movements()
        df = pd.DataFrame(
            {
                "entry_id": [m.entry_id for m in ms],
                "transfer_id": [m.transfer_id for m in ms],
                "timestamp": pd.to_datetime([m.timestamp for m in ms]),
                "account": [m.account for m in ms],
                "amount": [m.minutes / 60.0 for m in ms],
                "memo": [m.memo for m in ms],
            }
        )
        return require_valid(conform(df, LEDGER), LEDGER)


def open_store(url: str | None = None, *, home: str | os.PathLike | None = None, **kw: Any) -> TimeBankStore:
    """The store at `url`, or the embedded SQLite file under `home` (TWINCARE_HOME)."""
    if url is None:
        if home is None:
            raise ValueError("open_store needs a database URL or the TWINCARE_HOME directory")
        url = default_url(home)
    return TimeBankStore(url, **kw)


# ---------------------------------------------------------------------------------------------
# Row helpers
# ---------------------------------------------------------------------------------------------


def _check_spec(s: TaskSpec) -> None:
    _need_id(s.resident_id, "resident id")
    _need_id(s.grid_id, "grid id")
    if s.kind not in TASK_KINDS:
        raise InvalidInput(f"task kind {s.kind!r} is not one of {', '.join(TASK_KINDS)}")
    if not isinstance(s.reason, str) or not s.reason or len(s.reason) > 64:
        raise InvalidInput("reason must be a non-empty code of at most 64 characters")
    if s.urgency not in URGENCIES:
        raise InvalidInput(f"urgency {s.urgency!r} is not one of {', '.join(URGENCIES)}")
    if not isinstance(s.due_date, date) or isinstance(s.due_date, datetime):
        raise InvalidInput(f"due_date must be a date, got {s.due_date!r}")
    for name, v, hi in (("credits", s.credits, 100.0), ("hours", s.hours, 24.0)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not 0 <= v <= hi:
            raise InvalidInput(f"{name} must be a number from 0 to {hi:g} hours, got {v!r}")
    if s.probability is not None and not (math.isfinite(s.probability) and 0 <= s.probability <= 1):
        raise InvalidInput(f"probability must be in [0, 1], got {s.probability!r}")


def _visits_frame(rows: Sequence[Any]) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "visit_id": [r.visit_id for r in rows],
            "resident_id": [r.resident_id for r in rows],
            "date": pd.to_datetime([r.date for r in rows]),
            "kind": [r.kind for r in rows],
            "source": [r.source for r in rows],
            "hours": [float(r.hours) for r in rows],
            "task_id": [r.task_id for r in rows],
        }
    )
    return conform(df, VISITS)


def _event(r: Any) -> OutboxEvent:
    return OutboxEvent(
        r.event_id, r.event_type, r.task_id, dict(r.payload), r.attempts, r.next_attempt_at,
        r.delivered_at, r.last_error,
    )


def _score(r: Any) -> ScoreRecord:
    return ScoreRecord(
        r.resident_id, r.model, r.model_version, r.as_of, r.probability, r.band,
        list(r.reasons or []), r.scored_at,
    )


__all__ = [
    "ACTIVE_STATUSES",
    "FUND_ACCOUNT",
    "SYSTEM",
    "Actor",
    "AuditEntry",
    "Conflict",
    "Forbidden",
    "IdempotencyConflict",
    "InvalidInput",
    "NotFound",
    "OpenResult",
    "OutboxEvent",
    "ScoreRecord",
    "StoreError",
    "Task",
    "TaskPage",
    "TaskSpec",
    "TimeBankStore",
    "default_url",
    "open_store",
    "redact_url",
]
