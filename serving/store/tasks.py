"""Tasks: opening one per resident and reason, the status transitions, the volunteers' feed and
the export in the twin's TASKS schema. Functions take the caller's connection (one transaction)."""

from __future__ import annotations

import base64
import binascii
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from serving.ledger import hours_to_minutes, minutes_to_hours
from serving.store.errors import Conflict, Forbidden, InvalidInput, NotFound
from serving.store.records import Task, TaskPage, TaskSpec, jsonable, need_id
from serving.store.schema import ACTIVE_STATUSES, active, tasks_table
from twin.schema import TASK_KINDS, TASK_STATUSES, TASKS, conform, require_valid

URGENCIES = ("high", "medium", "low")
MAX_PAGE = 500


def check_spec(s: TaskSpec) -> None:
    need_id(s.resident_id, "resident id")
    need_id(s.grid_id, "grid id")
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


def open_request(spec: TaskSpec) -> dict:
    """What identifies an open request under its idempotency key."""
    return {
        "resident_id": spec.resident_id,
        "reason": spec.reason,
        "kind": spec.kind,
        "grid_id": spec.grid_id,
        "due_date": spec.due_date.isoformat(),
        "credit_minutes": hours_to_minutes(spec.credits),
        "urgency": spec.urgency,
    }


def load(conn: Connection, task_id: str, *, lock: bool = False) -> Task:
    q = sa.select(tasks_table).where(tasks_table.c.task_id == task_id)
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"task {task_id!r} does not exist")
    return Task.from_row(row)


def active_task(conn: Connection, resident_id: str, reason: str) -> Task | None:
    """The open or claimed task for this resident and reason, if any."""
    r = conn.execute(
        sa.select(tasks_table).where(
            tasks_table.c.resident_id == resident_id, tasks_table.c.reason == reason, active
        )
    ).first()
    return None if r is None else Task.from_row(r)


def open_task(conn: Connection, spec: TaskSpec, now: datetime, open_key: str) -> tuple[Task, bool]:
    """The new task and True, or the one already active for the resident and reason and False."""
    existing = active_task(conn, spec.resident_id, spec.reason)
    if existing is not None:
        return existing, False
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
            credit_minutes=hours_to_minutes(spec.credits),
            urgency=spec.urgency,
            hours=float(spec.hours),
            model=spec.model,
            model_version=spec.model_version,
            probability=None if spec.probability is None else float(spec.probability),
            band=spec.band,
            as_of=spec.as_of,
            reasons=jsonable([dict(r) for r in spec.reasons]),
            explanation=spec.explanation,
            details=jsonable(dict(spec.details)),
            open_key=open_key,
        )
    )
    return load(conn, task_id), True


def _transition(
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


def claim(conn: Connection, task_id: str, volunteer_id: str, now: datetime) -> Task:
    """open -> claimed by `volunteer_id`; a task that is not open raises Conflict."""
    ok = _transition(
        conn, task_id, ("open",), {"status": "claimed", "volunteer_id": volunteer_id, "claimed_at": now}
    )
    task = load(conn, task_id)
    if not ok:
        who = f" by {task.volunteer_id}" if task.status == "claimed" else ""
        raise Conflict(f"task {task_id} is {task.status}{who}; only an open task can be claimed")
    return task


def complete(conn: Connection, task_id: str, volunteer_id: str, now: datetime) -> Task:
    """claimed -> completed, only by the volunteer who claimed it."""
    ok = _transition(
        conn, task_id, ("claimed",),
        {"status": "completed", "completed_at": now, "closed_at": now},
        (tasks_table.c.volunteer_id == volunteer_id,),
    )
    task = load(conn, task_id)
    if not ok:
        if task.status == "claimed":
            raise Forbidden(f"task {task_id} was claimed by another volunteer; only they can complete it")
        raise Conflict(f"task {task_id} is {task.status}; only a claimed task can be completed")
    return task


def cancel(conn: Connection, task_id: str, now: datetime, volunteer_id: str | None = None) -> Task:
    """open/claimed -> cancelled; a finished task raises Conflict. A volunteer (`volunteer_id`)
    may cancel only the task they claimed."""
    if volunteer_id is None:
        ok = _transition(conn, task_id, ACTIVE_STATUSES, {"status": "cancelled", "closed_at": now})
    else:
        ok = _transition(conn, task_id, ("claimed",), {"status": "cancelled", "closed_at": now},
                         (tasks_table.c.volunteer_id == volunteer_id,))
    task = load(conn, task_id)
    if not ok and volunteer_id is not None and task.status in ACTIVE_STATUSES:
        raise Forbidden(f"task {task_id} is not claimed by volunteer {volunteer_id}; only a care manager can cancel it")
    if not ok:
        raise Conflict(f"task {task_id} is {task.status}; only an open or claimed task can be cancelled")
    return task


def expire_overdue(conn: Connection, day: date, now: datetime) -> list[Task]:
    """Open or claimed tasks due before `day` -> expired, oldest first."""
    ids = [
        r.task_id
        for r in conn.execute(
            sa.select(tasks_table.c.task_id)
            .where(active, tasks_table.c.due_date < day)
            .order_by(tasks_table.c.seq)
        )
    ]
    return [
        load(conn, tid)
        for tid in ids
        if _transition(conn, tid, ACTIVE_STATUSES, {"status": "expired", "closed_at": now})
    ]


def page_query(
    *,
    status: str | Sequence[str] | None,
    grid_id: str | None,
    resident_id: str | None,
    limit: int,
    cursor: str | None,
) -> sa.Select:
    """The query for one page of the feed; bad filters raise InvalidInput."""
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
        q = q.where(tasks_table.c.grid_id == need_id(grid_id, "grid id"))
    if resident_id is not None:
        q = q.where(tasks_table.c.resident_id == need_id(resident_id, "resident id"))
    if cursor:
        q = q.where(tasks_table.c.seq > decode_cursor(cursor))
    return q.order_by(tasks_table.c.seq).limit(limit)


def page_of(rows: Sequence[Any], limit: int) -> TaskPage:
    nxt = encode_cursor(rows[-1].seq) if len(rows) == limit else None
    return TaskPage([Task.from_row(r) for r in rows], nxt)


CURSOR_PATTERN = r"^[0-9]{1,18}$"
"""A cursor is the insert sequence number of the last task seen: any such number is a valid place."""


def encode_cursor(seq: int) -> str:
    return str(int(seq))


def decode_cursor(cursor: str) -> int:
    if isinstance(cursor, str) and re.match(CURSOR_PATTERN, cursor):
        return int(cursor)
    try:  # cursors handed out before they were plain sequence numbers
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, seq = raw.split(":", 1)
        if tag != "t1":
            raise ValueError(tag)
        n = int(seq)
        if not 0 <= n < 2**62 or not seq.isdigit():  # a sequence number fits a 64-bit column
            raise ValueError(seq)
        return n
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidInput(f"cursor {cursor!r} is not valid; pass back next_cursor unchanged") from None


def tasks_frame(conn: Connection) -> pd.DataFrame:
    """All tasks as a frame valid under `twin.schema.TASKS`."""
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
