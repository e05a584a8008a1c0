"""The audit log: who did what to which resident's records, written in the acting transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from serving.store.records import SYSTEM, Actor, AuditEntry, jsonable
from serving.store.schema import audit_table


def record(
    conn: Connection,
    actor: Actor | None,
    action: str,
    resident_id: str | None,
    detail: Mapping[str, Any],
    now: datetime,
) -> None:
    """One audit row; no actor means the system itself."""
    a = actor or SYSTEM
    conn.execute(
        audit_table.insert().values(
            at=now,
            actor=str(a.name),
            role=str(a.role),
            action=action,
            resident_id=resident_id,
            detail=jsonable(dict(detail)),
        )
    )


def entries(
    conn: Connection, *, resident_id: str | None = None, actor: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    """Most recent first."""
    q = sa.select(audit_table).order_by(audit_table.c.id.desc()).limit(limit)
    if resident_id is not None:
        q = q.where(audit_table.c.resident_id == resident_id)
    if actor is not None:
        q = q.where(audit_table.c.actor == actor)
    return [
        AuditEntry(r.id, r.at, r.actor, r.role, r.action, r.resident_id, dict(r.detail or {}))
        for r in conn.execute(q)
    ]
