"""The store as it was first deployed (what `metadata.create_all` made before revisions existed).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# frozen here: a later change to twin.schema must not change what this revision creates
_TASK_STATUSES = ("open", "claimed", "completed", "expired", "cancelled")
_ACTIVE = sa.column("status").in_(("open", "claimed"))


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
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
        sa.Column("hours", sa.Float, nullable=False),
        sa.Column("model", sa.String(64)),
        sa.Column("model_version", sa.String(64)),
        sa.Column("probability", sa.Float),
        sa.Column("band", sa.String(16)),
        sa.Column("as_of", sa.Date),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("explanation", sa.Text, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("open_key", sa.String(200)),
        sa.CheckConstraint("credit_minutes >= 0", name="ck_tasks_credit_nonneg"),
        sa.CheckConstraint(
            "status IN (" + ",".join(f"'{s}'" for s in _TASK_STATUSES) + ")", name="ck_tasks_status"
        ),
    )
    op.create_index(
        "uq_tasks_one_active_per_reason", "tasks", ["resident_id", "reason"], unique=True,
        sqlite_where=_ACTIVE, postgresql_where=_ACTIVE,
    )
    op.create_index("ix_tasks_status_grid_seq", "tasks", ["status", "grid_id", "seq"])
    op.create_index("ix_tasks_resident", "tasks", ["resident_id"])

    op.create_table(
        "ledger_movements",
        sa.Column("entry_id", sa.String(96), primary_key=True),
        sa.Column("transfer_id", sa.String(96), nullable=False),
        sa.Column("timestamp", sa.DateTime, nullable=False),
        sa.Column("account", sa.String(96), nullable=False),
        sa.Column("amount_minutes", sa.Integer, nullable=False),
        sa.Column("memo", sa.Text, nullable=False),
        sa.Column("task_id", sa.String(64)),
        sa.UniqueConstraint("transfer_id", "account", name="uq_ledger_transfer_account"),
    )
    op.create_index("ix_ledger_movements_transfer_id", "ledger_movements", ["transfer_id"])
    op.create_index("ix_ledger_movements_account", "ledger_movements", ["account"])

    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response", sa.JSON),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )

    op.create_table(
        "webhook_outbox",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(128), nullable=False, unique=True),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("delivered_at", sa.DateTime),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("ix_outbox_pending", "webhook_outbox", ["delivered_at", "next_attempt_at"])

    op.create_table(
        "visit_outbox",
        sa.Column("visit_id", sa.String(64), primary_key=True),
        sa.Column("resident_id", sa.String(64), nullable=False),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("hours", sa.Float, nullable=False),
        sa.Column("task_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("flushed_at", sa.DateTime),
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resident_id", sa.String(64)),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_log_resident_id", "audit_log", ["resident_id"])

    op.create_table(
        "risk_scores",
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
    op.create_index("ix_scores_model_resident", "risk_scores", ["model", "resident_id"])


def downgrade() -> None:
    for table in (
        "risk_scores", "audit_log", "visit_outbox", "webhook_outbox", "idempotency_keys",
        "ledger_movements", "tasks",
    ):
        op.drop_table(table)
