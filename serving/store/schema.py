"""The store's tables at the newest revision (`migrations/` brings an older database here).

A change to a table here goes with a new revision in `migrations/versions/`; a test compares the
two on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

from twin.schema import TASK_STATUSES

ACTIVE_STATUSES = ("open", "claimed")

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
        "status IN (" + ",".join(f"'{s}'" for s in TASK_STATUSES) + ")", name="ck_tasks_status"
    ),
)
active = tasks_table.c.status.in_(ACTIVE_STATUSES)
"""Open or claimed: the tasks that hold a resident's slot for a reason."""

sa.Index(
    "uq_tasks_one_active_per_reason",
    tasks_table.c.resident_id,
    tasks_table.c.reason,
    unique=True,
    sqlite_where=active,
    postgresql_where=active,
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
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("operation", sa.String(64), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("response", sa.JSON),
    sa.Column("created_at", sa.DateTime, nullable=False),
    # whose key it is (see idempotency.caller_of); '' = stored before keys were scoped
    sa.Column("caller", sa.String(200), nullable=False),
    sa.PrimaryKeyConstraint("caller", "key", name="pk_idempotency_keys"),
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
    # missing data that raised the score, apart from the reasons (revision 0005; NULL before it)
    sa.Column("missing_data", sa.JSON),
    sa.UniqueConstraint("resident_id", "model", "model_version", "as_of", name="uq_scores_point"),
)
sa.Index("ix_scores_model_resident", scores_table.c.model, scores_table.c.resident_id)

# -- live events and alerts (revision 0003) ----------------------------------------------------

device_events_table = sa.Table(
    "device_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),  # arrival order (ties in time)
    sa.Column("resident_id", sa.String(64), nullable=False),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("time", sa.DateTime, nullable=False),  # the home's local clock, as the gateway sent it
    sa.Column("end_time", sa.DateTime),  # intervals only
    sa.Column("sensor", sa.String(64), nullable=False),
    sa.Column("value", sa.String(32), nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("resident_id", "event_id", name="uq_device_events_id"),
)
sa.Index("ix_device_events_resident_time", device_events_table.c.resident_id, device_events_table.c.time)

live_days_table = sa.Table(
    "live_sensor_days",
    metadata,
    sa.Column("resident_id", sa.String(64), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("measures", sa.JSON, nullable=False),  # the sensor_days measures (null: not measured)
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.PrimaryKeyConstraint("resident_id", "date", name="pk_live_sensor_days"),
)

alerts_table = sa.Table(
    "alerts",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.String(64), nullable=False, unique=True),
    sa.Column("resident_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("since", sa.DateTime, nullable=False),  # home clock: since when the sign was seen
    sa.Column("due_at", sa.DateTime, nullable=False),  # home clock: when the rule's limit passed
    sa.Column("raised_at", sa.DateTime, nullable=False),  # home clock: when the service raised it
    sa.Column("created_at", sa.DateTime, nullable=False),  # UTC
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("urgent", sa.Boolean, nullable=False),
    sa.Column("task_id", sa.String(64)),
    sa.Column("acknowledged_at", sa.DateTime),
    sa.Column("acknowledged_by", sa.String(128)),
    sa.Column("escalated_at", sa.DateTime),
    sa.Column("rating", sa.String(8)),  # real | false
    sa.Column("rated_at", sa.DateTime),
    sa.Column("rated_by", sa.String(128)),
    sa.Column("cell", sa.String(80)),  # no_movement: the place and time of day a rating tunes (0006)
    sa.Column("rating_reason", sa.String(16)),  # why a false alarm was false: out (0007)
    sa.CheckConstraint("rating IS NULL OR rating IN ('real','false')", name="ck_alerts_rating"),
)
sa.Index("ix_alerts_resident", alerts_table.c.resident_id, alerts_table.c.seq)

# -- per-home alert settings (revision 0004) -----------------------------------------------------

away_spans_table = sa.Table(
    "away_spans",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("resident_id", sa.String(64), nullable=False),
    sa.Column("start", sa.DateTime, nullable=False),  # home clock
    sa.Column("end", sa.DateTime, nullable=False),  # home clock
    sa.Column("note", sa.String(200)),
    sa.Column("created_at", sa.DateTime, nullable=False),  # UTC
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("cancelled_at", sa.DateTime),
    sa.Column("cancelled_by", sa.String(128)),
    sa.CheckConstraint('"end" > start', name="ck_away_spans_order"),
)
sa.Index("ix_away_spans_resident", away_spans_table.c.resident_id, away_spans_table.c.seq)

quiet_hours_table = sa.Table(
    "quiet_hours",
    metadata,
    sa.Column("resident_id", sa.String(64), primary_key=True),
    sa.Column("start_minute", sa.Integer, nullable=False),  # minutes after midnight, home clock
    sa.Column("end_minute", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
    sa.CheckConstraint("start_minute >= 0 AND start_minute < 1440 AND end_minute >= 0 AND end_minute < 1440",
                       name="ck_quiet_hours_minutes"),
)
