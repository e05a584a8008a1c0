"""The ledger's rows: posting balanced transfers and summing movements (the double-entry rules
themselves are pure and live in `serving.ledger`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from serving.ledger import (
    FUND_ACCOUNT,
    Movement,
    check_balanced,
    hours_to_minutes,
    transfer_legs,
    volunteer_account,
)
from serving.store.records import Task
from serving.store.schema import ledger_table
from twin.schema import LEDGER, conform, require_valid


def post(
    conn: Connection,
    transfer_id: str,
    legs: Iterable[tuple[str, int]],
    memo: str,
    now: datetime,
    task_id: str | None = None,
) -> None:
    """Book one transfer; its legs must sum to zero (checked before anything is written)."""
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


def pay_for_task(conn: Connection, task: Task, now: datetime) -> None:
    """Credits of a completed task: fund:community -> the volunteer who did it (none if zero)."""
    minutes = hours_to_minutes(task.credits)
    if minutes > 0:
        post(
            conn, f"task-{task.task_id}",
            transfer_legs(FUND_ACCOUNT, volunteer_account(task.volunteer_id), minutes),
            f"{task.kind} for {task.resident_id} (task {task.task_id})", now, task.task_id,
        )


def movements(
    conn: Connection, *, account: str | None = None, transfer_id: str | None = None, limit: int | None = None
) -> list[Movement]:
    q = sa.select(ledger_table)
    if account is not None:
        q = q.where(ledger_table.c.account == account)
    if transfer_id is not None:
        q = q.where(ledger_table.c.transfer_id == transfer_id)
    q = q.order_by(ledger_table.c.timestamp, ledger_table.c.entry_id)
    if limit is not None:
        q = q.limit(limit)
    return [
        Movement(r.entry_id, r.transfer_id, r.timestamp, r.account, r.amount_minutes, r.memo, r.task_id)
        for r in conn.execute(q)
    ]


def balance_minutes(conn: Connection) -> dict[str, int]:
    """Minutes per account, summed from the movements in SQL (exact)."""
    q = sa.select(ledger_table.c.account, sa.func.sum(ledger_table.c.amount_minutes)).group_by(
        ledger_table.c.account
    )
    return {a: int(m) for a, m in conn.execute(q)}


def account_minutes(conn: Connection, account: str) -> int:
    q = sa.select(sa.func.coalesce(sa.func.sum(ledger_table.c.amount_minutes), 0)).where(
        ledger_table.c.account == account
    )
    return int(conn.execute(q).scalar_one())


def ledger_frame(ms: Iterable[Movement]) -> pd.DataFrame:
    """Movements as a frame valid under `twin.schema.LEDGER` (hours)."""
    ms = list(ms)
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
