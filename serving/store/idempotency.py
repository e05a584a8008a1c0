"""Idempotency keys, scoped by caller: the same key from the same caller with the same request
replays the stored response; with a different request it is refused; another caller's key of
the same text is a different key.

A caller is an API key's name (`key:<name>`) or the system itself (`system:<name>`; no API key
can hold the system role). Keys stored before keys were scoped have the caller '' and keep their
old meaning until pruned: any caller retrying one gets its stored response.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from serving.store.errors import IdempotencyConflict, InvalidInput
from serving.store.records import SYSTEM, Actor
from serving.store.schema import idempotency_table

UNSCOPED = ""
"""The caller of keys stored before revision 0002."""

_KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces
_t = idempotency_table.c


def need_key(key: Any) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise InvalidInput("an idempotency key is required: 1-200 printable ASCII characters without spaces")
    return key


def caller_of(actor: Actor | None) -> str:
    """The scope of the keys `actor` uses."""
    a = actor or SYSTEM
    kind = "system" if a.role == SYSTEM.role else "key"
    return f"{kind}:{a.name}"


def request_hash(operation: str, request: Mapping[str, Any]) -> str:
    body = json.dumps({"op": operation, "req": request}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def reserve(
    conn: Connection, caller: str, key: str, operation: str, req_hash: str, now: datetime
) -> tuple[Any, bool]:
    """Take `key` for this request, or find it already used.

    Returns (stored response, True) for a retry, (None, False) when the key is new and now
    held by this transaction; raises IdempotencyConflict for a different request. The key row
    is inserted first, so on PostgreSQL a concurrent request with the same key waits on it.
    """
    rows = conn.execute(
        sa.select(idempotency_table).where(_t.key == key, _t.caller.in_((caller, UNSCOPED)))
    ).all()
    row = next((r for r in rows if r.caller == caller), rows[0] if rows else None)
    if row is not None:
        if row.operation != operation or row.request_hash != req_hash:
            raise IdempotencyConflict(
                f"idempotency key {key!r} was already used for a different "
                f"request ({row.operation}); use a new key for a new request"
            )
        return row.response, True
    conn.execute(
        idempotency_table.insert().values(
            caller=caller, key=key, operation=operation, request_hash=req_hash, created_at=now
        )
    )
    return None, False


def remember(conn: Connection, caller: str, key: str, response: Any) -> None:
    """Store the response a retry of (caller, key) will get."""
    conn.execute(
        idempotency_table.update().where(_t.caller == caller, _t.key == key).values(response=response)
    )


def prune(conn: Connection, before: datetime) -> int:
    """Forget keys created before `before`; a retry with one is then a new request."""
    return conn.execute(idempotency_table.delete().where(_t.created_at < before)).rowcount
