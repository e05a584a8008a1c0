"""The time-bank store: tasks, the credit ledger, idempotency keys, outboxes, audit log, scores.

One SQLAlchemy schema on SQLite (default; WAL, `synchronous=FULL`, so an acknowledged commit
survives a crash) or PostgreSQL (`postgresql+psycopg://...`), versioned by Alembic revisions
(`migrations/`; a store is brought to the newest when opened, or by `python -m serving migrate`).
Every write is one transaction: the state change, its ledger movements, its webhook event, its
visit write-back record, its audit row and its idempotency record are committed together or not
at all.

Write rules the service relies on:
- every write takes an idempotency key, scoped by the caller; the same caller's same key with
  the same request returns the stored response and changes nothing; with a different request it
  raises `IdempotencyConflict`; another caller's key of the same text is unrelated;
- at most one active (open or claimed) task per resident and reason, enforced by a unique
  partial index, so concurrent openers cannot double-book;
- balances are never stored: they are sums over the movements.

Errors are typed (`NotFound`, `Conflict`, `Forbidden`, `InvalidInput`) and carry `.status`
(404/409/403/422) so the service can map them without knowing each case.

At a glance (`store = open_store(config.store_url)`; every write takes `idempotency_key=` and
an optional `actor=` principal that the audit log records and the key is scoped by):
    open_task(TaskSpec) -> OpenResult(task, created, replayed)   (usually via serving.actions)
    claim_task(task_id, volunteer_id) / complete_task(task_id, volunteer_id)
    cancel_task(task_id, note=)  -> Task (`.replayed` True for a retried key)
    expire_overdue(today=)       -> list[Task]
    list_open_tasks(grid_id=, limit=, cursor=) / list_tasks(status=, resident_id=, ...) -> TaskPage
    get_task, active_task_for, balances, balance, movements, transfer
    flush_visits(HistoryStore) -> int; record_scores, score_history, latest_scores
    record_audit, audit_log; ping, close, prune; tasks_frame / ledger_frame (twin schema frames)

The parts, each keeping one kind of record and taking the caller's connection: `tasks`,
`ledger`, `idempotency`, `outbox` (webhook events), `visits` (write-back), `audit`, `scores`;
`schema` holds the tables, `migrate` the revisions, `timebank` the `TimeBankStore` composing them.
"""

from serving.ledger import FUND_ACCOUNT
from serving.store.engine import default_url, make_engine, redact_url, utcnow
from serving.store.errors import (
    Conflict,
    Forbidden,
    IdempotencyConflict,
    InvalidInput,
    NotFound,
    StoreError,
)
from serving.store.outbox import EVENT_TYPES, event_id_for
from serving.store.records import (
    SYSTEM,
    Actor,
    AuditEntry,
    OpenResult,
    OutboxEvent,
    ScoreRecord,
    SystemActor,
    Task,
    TaskPage,
    TaskSpec,
)
from serving.store.schema import (
    ACTIVE_STATUSES,
    audit_table,
    idempotency_table,
    ledger_table,
    metadata,
    scores_table,
    tasks_table,
    visit_outbox_table,
    webhook_outbox_table,
)
from serving.store.tasks import MAX_PAGE, URGENCIES, decode_cursor, encode_cursor
from serving.store.timebank import TimeBankStore, open_store

__all__ = [
    "ACTIVE_STATUSES",
    "EVENT_TYPES",
    "FUND_ACCOUNT",
    "MAX_PAGE",
    "SYSTEM",
    "URGENCIES",
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
    "SystemActor",
    "Task",
    "TaskPage",
    "TaskSpec",
    "TimeBankStore",
    "audit_table",
    "decode_cursor",
    "default_url",
    "encode_cursor",
    "event_id_for",
    "idempotency_table",
    "ledger_table",
    "make_engine",
    "metadata",
    "open_store",
    "redact_url",
    "scores_table",
    "tasks_table",
    "utcnow",
    "visit_outbox_table",
    "webhook_outbox_table",
]
