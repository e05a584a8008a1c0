"""The store's tables as `metadata.create_all` made them before revisions existed (revision 0001),
frozen here so that tests can build an old store and check revision 0001 against it."""

from __future__ import annotations

import sqlalchemy as sa

_TASK_STATUSES = ("open", "claimed", "completed", "expired", "cancelled")

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
        "status IN (" + ",".join(f"'{s}'" for s in _TASK_STATUSES) + ")", name="ck_tasks_status"
    ),
)
_active = tasks_table.c.status.in_(("open", "claimed"))
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
