"""Visit write-back: a completed task's visit waits in the visit outbox until it is appended to
the twin history (`twin.store.HistoryStore`), exactly once, under a file lock in the history root."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from serving.store.records import Task
from serving.store.schema import visit_outbox_table
from twin.schema import VISITS, conform


def add(conn: Connection, task: Task, now: datetime) -> None:
    """The visit a completed task stands for (visit id = task id)."""
    conn.execute(
        visit_outbox_table.insert().values(
            visit_id=task.task_id,
            resident_id=task.resident_id,
            date=now.date(),
            kind=task.kind,
            source="timebank",
            hours=task.hours,
            task_id=task.task_id,
            created_at=now,
        )
    )


def pending(conn: Connection) -> pd.DataFrame:
    """Visits not yet written to the twin history (VISITS columns), oldest first."""
    rows = conn.execute(
        sa.select(visit_outbox_table)
        .where(visit_outbox_table.c.flushed_at.is_(None))
        .order_by(visit_outbox_table.c.created_at, visit_outbox_table.c.visit_id)
    ).all()
    return _visits_frame(rows)


@contextmanager
def flush_lock(root: str | Path) -> Iterator[None]:
    """One flusher per history root on this machine."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".visits-flush.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append_new(history: Any, visits: pd.DataFrame) -> tuple[int, list[str]]:
    """Append the visits the history does not hold yet (a flusher may have died after appending
    and before marking); returns how many were appended and the visit parts that could not be
    read. An unreadable part is reported, not fatal: a visit it might hold was written by the
    service, whose own parts are tagged and readable, so write-back goes on."""
    have: set[str] = set()
    unreadable: list[str] = []
    for part in history.parts("visits"):
        try:
            have.update(pq.read_table(part, columns=["visit_id"]).column("visit_id").to_pylist())
        except (OSError, pa.ArrowException) as exc:
            unreadable.append(f"{part}: {exc}")
    new = visits[~visits["visit_id"].isin(have)]
    if len(new):
        history.append("visits", new, tag="timebank")
    return int(len(new)), unreadable


def mark_flushed(conn: Connection, visit_ids: Sequence[str], now: datetime) -> None:
    conn.execute(
        visit_outbox_table.update()
        .where(visit_outbox_table.c.visit_id.in_(list(visit_ids)))
        .values(flushed_at=now)
    )


def prune(conn: Connection, before: datetime) -> int:
    """Forget flushed visit records created before `before`."""
    return conn.execute(
        visit_outbox_table.delete().where(
            visit_outbox_table.c.flushed_at.is_not(None), visit_outbox_table.c.created_at < before
        )
    ).rowcount


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
