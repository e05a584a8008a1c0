"""`TimeBankStore`: the one object the service holds. Each write composes the parts (tasks,
ledger, outbox, visits, audit, idempotency) inside one transaction; reads open a read-only one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from serving.ledger import (
    Movement,
    check_account,
    hours_to_minutes,
    minutes_to_hours,
    transfer_legs,
)
from serving.store import audit, idempotency, ledger, migrate, outbox, scores, tasks, visits
from serving.store.engine import default_url, make_engine, redact_url, utcnow
from serving.store.errors import Conflict, InvalidInput
from serving.store.records import (
    Actor,
    AuditEntry,
    OpenResult,
    OutboxEvent,
    ScoreRecord,
    Task,
    TaskPage,
    TaskSpec,
    jsonable,
    need_id,
    need_volunteer_id,
)

_RETRIES = 5


class TimeBankStore:
    """Tasks, ledger and the records around them, on one SQLAlchemy engine.

    Create with `TimeBankStore(url)`; with `create=True` (the default) the store is made ready:
    created if empty, upgraded to the newest revision if older. Thread-safe (one engine, a
    connection per call). `clock` returns naive UTC and is injectable for tests.
    """

    def __init__(self, url: str, *, clock: Callable[[], datetime] = utcnow, create: bool = True):
        self.url = url
        self._engine = make_engine(url)
        self._clock = clock
        self.unreadable_visit_parts: list[str] = []  # seen by the last visit flush
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

    def create_schema(self) -> migrate.Upgrade:
        """Create the store, or upgrade it to the newest revision."""
        return migrate.upgrade(self._engine)

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
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect().execution_options(twincare_read=True) as conn, conn.begin():
            yield conn

    def _write(
        self,
        operation: str,
        idempotency_key: str | None,
        actor: Actor | None,
        request: Mapping[str, Any],
        body: Callable[[Connection, datetime], dict],
    ) -> tuple[Any, bool]:
        """Run `body` in one transaction under the caller's idempotency key.

        Returns its JSON response and whether it was a replay of a stored response. A
        unique-constraint race (e.g. two openers of the same resident/reason, or two requests
        with one key) rolls back and retries, and the retry sees the winner's row.
        """
        key = None if idempotency_key is None else idempotency.need_key(idempotency_key)
        caller = idempotency.caller_of(actor)
        req_hash = idempotency.request_hash(operation, request)
        last: Exception | None = None
        for _ in range(_RETRIES):
            try:
                with self._engine.begin() as conn:
                    now = self._clock()
                    if key is not None:
                        stored, replayed = idempotency.reserve(conn, caller, key, operation, req_hash, now)
                        if replayed:
                            return stored, True
                    response = jsonable(body(conn, now))
                    if key is not None:
                        idempotency.remember(conn, caller, key, response)
                    return response, False
            except IntegrityError as e:
                last = e
        raise Conflict(f"{operation}: the request kept clashing with concurrent writes; retry") from last

    def _task_write(self, operation: str, key: str, actor: Actor | None, request: Mapping[str, Any],
                    body: Callable[[Connection, datetime], dict]) -> Task:
        d, replayed = self._write(operation, key, actor, request, body)
        return replace(Task.from_dict(d), replayed=replayed)

    # -- tasks: writes ---------------------------------------------------------------------------

    def open_task(self, spec: TaskSpec, *, idempotency_key: str, actor: Actor | None = None) -> OpenResult:
        """Open a task unless one is already active for this resident and reason.

        Returns the new task (`created=True`) or the active one (`created=False`).
        """
        tasks.check_spec(spec)

        def body(conn: Connection, now: datetime) -> dict:
            task, created = tasks.open_task(conn, spec, now, idempotency_key)
            if created:
                outbox.emit(conn, "task.opened", task, now)
                audit.record(conn, actor, "task.open", spec.resident_id,
                             {"task_id": task.task_id, "reason": spec.reason, "kind": spec.kind}, now)
            return OpenResult(task, created).to_dict()

        d, replayed = self._write("open_task", idempotency_key, actor, tasks.open_request(spec), body)
        return OpenResult(Task.from_dict(d["task"]), d["created"], replayed)

    def claim_task(
        self, task_id: str, volunteer_id: str, *, idempotency_key: str, actor: Actor | None = None
    ) -> Task:
        """open -> claimed by `volunteer_id`; a task that is not open raises Conflict."""
        need_id(task_id, "task id")
        need_volunteer_id(volunteer_id)

        def body(conn: Connection, now: datetime) -> dict:
            task = tasks.claim(conn, task_id, volunteer_id, now)
            outbox.emit(conn, "task.claimed", task, now)
            audit.record(conn, actor, "task.claim", task.resident_id,
                         {"task_id": task_id, "volunteer_id": volunteer_id}, now)
            return task.to_dict()

        request = {"task_id": task_id, "volunteer_id": volunteer_id}
        return self._task_write("claim_task", idempotency_key, actor, request, body)

    def complete_task(
        self, task_id: str, volunteer_id: str, *, idempotency_key: str, actor: Actor | None = None
    ) -> Task:
        """claimed -> completed by the claiming volunteer, in one transaction with:
        the credit transfer fund:community -> volunteer:<id>, the visit write-back record
        (flushed to the twin history by `flush_visits`), the webhook event and the audit row.
        """
        need_id(task_id, "task id")
        need_volunteer_id(volunteer_id)

        def body(conn: Connection, now: datetime) -> dict:
            task = tasks.complete(conn, task_id, volunteer_id, now)
            ledger.pay_for_task(conn, task, now)
            visits.add(conn, task, now)
            outbox.emit(conn, "task.completed", task, now)
            audit.record(conn, actor, "task.complete", task.resident_id,
                         {"task_id": task_id, "volunteer_id": volunteer_id, "credits": task.credits}, now)
            return task.to_dict()

        request = {"task_id": task_id, "volunteer_id": volunteer_id}
        return self._task_write("complete_task", idempotency_key, actor, request, body)

    def cancel_task(
        self, task_id: str, *, idempotency_key: str, note: str = "", actor: Actor | None = None,
        volunteer_id: str | None = None,
    ) -> Task:
        """open/claimed -> cancelled; a finished task raises Conflict. With `volunteer_id` (a
        volunteer cancelling) only a task that volunteer claimed, else Forbidden."""
        need_id(task_id, "task id")
        if volunteer_id is not None:
            need_volunteer_id(volunteer_id)
        if not isinstance(note, str) or len(note) > 500:
            raise InvalidInput("note must be text of at most 500 characters")

        def body(conn: Connection, now: datetime) -> dict:
            task = tasks.cancel(conn, task_id, now, volunteer_id)
            outbox.emit(conn, "task.cancelled", task, now)
            audit.record(conn, actor, "task.cancel", task.resident_id, {"task_id": task_id, "note": note}, now)
            return task.to_dict()

        request = {"task_id": task_id, "note": note, **({"volunteer_id": volunteer_id} if volunteer_id else {})}
        return self._task_write("cancel_task", idempotency_key, actor, request, body)

    def expire_overdue(
        self, *, today: date | None = None, idempotency_key: str | None = None, actor: Actor | None = None
    ) -> list[Task]:
        """Open or claimed tasks whose due date is before `today` -> expired (safe to re-run)."""
        def body(conn: Connection, now: datetime) -> dict:
            expired = tasks.expire_overdue(conn, today or now.date(), now)
            for task in expired:
                outbox.emit(conn, "task.expired", task, now)
                audit.record(conn, actor, "task.expire", task.resident_id, {"task_id": task.task_id}, now)
            return {"tasks": [t.to_dict() for t in expired]}

        req = {"today": None if today is None else today.isoformat()}
        d, _ = self._write("expire_overdue", idempotency_key, actor, req, body)
        return [Task.from_dict(t) for t in d["tasks"]]

    # -- tasks: reads ----------------------------------------------------------------------------

    def get_task(self, task_id: str) -> Task:
        need_id(task_id, "task id")
        with self._read() as conn:
            return tasks.load(conn, task_id)

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
        q = tasks.page_query(status=status, grid_id=grid_id, resident_id=resident_id, limit=limit, cursor=cursor)
        with self._read() as conn:
            rows = conn.execute(q).all()
        return tasks.page_of(rows, limit)

    def list_open_tasks(
        self, *, grid_id: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> TaskPage:
        """The volunteers' feed: open tasks, optionally in one grid cell."""
        return self.list_tasks(status="open", grid_id=grid_id, limit=limit, cursor=cursor)

    def active_task_for(self, resident_id: str, reason: str) -> Task | None:
        """The open or claimed task for this resident and reason, if any."""
        with self._read() as conn:
            return tasks.active_task(conn, resident_id, reason)

    # -- ledger ----------------------------------------------------------------------------------

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
            ledger.post(conn, tid, legs, memo, now)
            audit.record(conn, actor, "ledger.transfer", None,
                         {"transfer_id": tid, "from": from_account, "to": to_account, "hours": hours}, now)
            return {"transfer_id": tid}

        req = {"from": from_account, "to": to_account, "minutes": minutes, "memo": memo}
        return self._write("transfer", idempotency_key, actor, req, body)[0]["transfer_id"]

    def movements(
        self, *, account: str | None = None, transfer_id: str | None = None, limit: int | None = None
    ) -> list[Movement]:
        with self._read() as conn:
            return ledger.movements(conn, account=account, transfer_id=transfer_id, limit=limit)

    def balance_minutes(self) -> dict[str, int]:
        """Minutes per account, summed from the movements in SQL (exact)."""
        with self._read() as conn:
            return ledger.balance_minutes(conn)

    def balances(self) -> dict[str, float]:
        """Hours per account (derived from movements; there is no stored balance to drift)."""
        return {a: minutes_to_hours(m) for a, m in self.balance_minutes().items()}

    def balance(self, account: str) -> float:
        with self._read() as conn:
            return minutes_to_hours(ledger.account_minutes(conn, account))

    # -- visit write-back ------------------------------------------------------------------------

    def pending_visits(self) -> pd.DataFrame:
        """Completed-task visits not yet written to the twin history (VISITS columns)."""
        with self._read() as conn:
            return visits.pending(conn)

    def flush_visits(self, history: Any) -> int:
        """Append pending visits to the twin history (`twin.store.HistoryStore`); safe to retry.

        The visit id is the task id. Visits already in the history (a previous flush that died
        before marking them) are skipped, so a visit is written exactly once. A file lock in the
        history root keeps two flushers on one machine from racing. Returns the number appended.
        """
        with visits.flush_lock(history.root):
            pending = self.pending_visits()
            if pending.empty:
                return 0
            appended, self.unreadable_visit_parts = visits.append_new(history, pending)
            with self._engine.begin() as conn:
                visits.mark_flushed(conn, list(pending["visit_id"]), self._clock())
            return appended

    # -- webhook outbox (used by serving.webhook) -------------------------------------------------

    def due_events(self, *, now: datetime | None = None, limit: int = 100) -> list[OutboxEvent]:
        """Undelivered events whose next attempt is due, oldest first."""
        now = now or self._clock()
        with self._read() as conn:
            return outbox.due(conn, now, limit)

    def events(self, *, task_id: str | None = None) -> list[OutboxEvent]:
        with self._read() as conn:
            return outbox.events(conn, task_id)

    def lease_event(self, ev: OutboxEvent, until: datetime) -> bool:
        """Take an event for one delivery attempt (False if another deliverer took it)."""
        with self._engine.begin() as conn:
            return outbox.lease(conn, ev, until)

    def mark_delivered(self, event_id: str, *, attempts: int) -> None:
        with self._engine.begin() as conn:
            outbox.mark(conn, event_id, delivered_at=self._clock(), attempts=attempts, last_error=None)

    def mark_failed(self, event_id: str, *, attempts: int, next_attempt_at: datetime, error: str) -> None:
        with self._engine.begin() as conn:
            outbox.mark(conn, event_id, attempts=attempts, next_attempt_at=next_attempt_at, last_error=error[:500])

    def prune(self, before: datetime) -> dict[str, int]:
        """Forget delivered webhook events, flushed visit records and idempotency keys created
        before `before` (a retention window, e.g. 30 days). A key older than that is no longer
        recognised as a retry. Tasks, movements, audit rows and scores are never pruned."""
        with self._engine.begin() as conn:
            return {
                "webhook_events": outbox.prune(conn, before),
                "visits": visits.prune(conn, before),
                "idempotency_keys": idempotency.prune(conn, before),
            }

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
            audit.record(conn, actor, action, resident_id, detail or {}, self._clock())

    def audit_log(
        self, *, resident_id: str | None = None, actor: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """Most recent first."""
        with self._read() as conn:
            return audit.entries(conn, resident_id=resident_id, actor=actor, limit=limit)

    # -- risk scores -----------------------------------------------------------------------------

    def record_scores(self, records: Iterable[ScoreRecord]) -> int:
        """Add scores to the history; a (resident, model, version, as_of) already stored is kept.

        Returns the number of new rows.
        """
        rows = scores.score_rows(records, self._clock())
        if not rows:
            return 0
        with self._engine.begin() as conn:
            return scores.add(conn, rows)

    def score_history(self, resident_id: str, *, model: str | None = None) -> list[ScoreRecord]:
        """Every stored score of a resident, oldest as-of first (for trends)."""
        with self._read() as conn:
            return scores.history(conn, resident_id, model)

    def latest_scores(
        self, model: str, *, band: str | None = None, grid_ids: Sequence[str] | None = None, limit: int = 100
    ) -> list[ScoreRecord]:
        """The most recently recorded score of each resident for `model`, highest probability
        first (the care managers' ranked at-risk list)."""
        with self._read() as conn:
            return scores.latest(conn, model, band=band, limit=limit)

    # -- export to the twin's tables -------------------------------------------------------------

    def tasks_frame(self) -> pd.DataFrame:
        """All tasks as a frame valid under `twin.schema.TASKS`."""
        with self._read() as conn:
            return tasks.tasks_frame(conn)

    def ledger_frame(self) -> pd.DataFrame:
        """All movements as a frame valid under `twin.schema.LEDGER` (hours)."""
        return ledger.ledger_frame(self.movements())


def open_store(url: str | None = None, *, home: str | os.PathLike | None = None, **kw: Any) -> TimeBankStore:
    """The store at `url`, or the embedded SQLite file under `home` (TWINCARE_HOME)."""
    if url is None:
        if home is None:
            raise ValueError("open_store needs a database URL or the TWINCARE_HOME directory")
        url = default_url(home)
    return TimeBankStore(url, **kw)
