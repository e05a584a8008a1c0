"""The webhook outbox: one event per task transition, written with the transition and delivered
later by `serving.webhook` (lease, deliver, mark)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from serving.store.records import OutboxEvent, Task, jsonable
from serving.store.schema import webhook_outbox_table

EVENT_TYPES = ("task.opened", "task.claimed", "task.completed", "task.cancelled", "task.expired")


def event_id_for(task_id: str, event_type: str) -> str:
    """Stable id of a task event: a task goes through each transition at most once."""
    return f"{task_id}.{event_type.removeprefix('task.')}"


def emit(conn: Connection, event_type: str, task: Task, now: datetime) -> None:
    eid = event_id_for(task.task_id, event_type)
    payload = {"event_id": eid, "type": event_type, "occurred_at": now.isoformat(), "task": task.to_dict()}
    conn.execute(
        webhook_outbox_table.insert().values(
            event_id=eid,
            event_type=event_type,
            task_id=task.task_id,
            payload=jsonable(payload),
            created_at=now,
            attempts=0,
            next_attempt_at=now,
        )
    )


def due(conn: Connection, now: datetime, limit: int) -> list[OutboxEvent]:
    """Undelivered events whose next attempt is due, oldest first."""
    q = (
        sa.select(webhook_outbox_table)
        .where(webhook_outbox_table.c.delivered_at.is_(None), webhook_outbox_table.c.next_attempt_at <= now)
        .order_by(webhook_outbox_table.c.seq)
        .limit(limit)
    )
    return [_event(r) for r in conn.execute(q)]


def events(conn: Connection, task_id: str | None = None) -> list[OutboxEvent]:
    q = sa.select(webhook_outbox_table).order_by(webhook_outbox_table.c.seq)
    if task_id is not None:
        q = q.where(webhook_outbox_table.c.task_id == task_id)
    return [_event(r) for r in conn.execute(q)]


def lease(conn: Connection, ev: OutboxEvent, until: datetime) -> bool:
    """Take an event for one delivery attempt (False if another deliverer took it)."""
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


def mark(conn: Connection, event_id: str, **values: Any) -> None:
    conn.execute(
        webhook_outbox_table.update().where(webhook_outbox_table.c.event_id == event_id).values(**values)
    )


def prune(conn: Connection, before: datetime) -> int:
    """Forget delivered events created before `before`."""
    return conn.execute(
        webhook_outbox_table.delete().where(
            webhook_outbox_table.c.delivered_at.is_not(None), webhook_outbox_table.c.created_at < before
        )
    ).rowcount


def _event(r: Any) -> OutboxEvent:
    return OutboxEvent(
        r.event_id, r.event_type, r.task_id, dict(r.payload), r.attempts, r.next_attempt_at,
        r.delivered_at, r.last_error,
    )
