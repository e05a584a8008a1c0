"""Live sensor events and alerts: the raw events home gateways send, the sensor_days rows they
make, and the alerts raised from them (with their acknowledgement, escalation and rating).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("resident_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("time", sa.DateTime, nullable=False),
        sa.Column("end_time", sa.DateTime),
        sa.Column("sensor", sa.String(64), nullable=False),
        sa.Column("value", sa.String(32), nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("resident_id", "event_id", name="uq_device_events_id"),
    )
    op.create_index("ix_device_events_resident_time", "device_events", ["resident_id", "time"])
    op.create_table(
        "live_sensor_days",
        sa.Column("resident_id", sa.String(64), nullable=False),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("measures", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("resident_id", "date", name="pk_live_sensor_days"),
    )
    op.create_table(
        "alerts",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(64), nullable=False, unique=True),
        sa.Column("resident_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("since", sa.DateTime, nullable=False),
        sa.Column("due_at", sa.DateTime, nullable=False),
        sa.Column("raised_at", sa.DateTime, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("urgent", sa.Boolean, nullable=False),
        sa.Column("task_id", sa.String(64)),
        sa.Column("acknowledged_at", sa.DateTime),
        sa.Column("acknowledged_by", sa.String(128)),
        sa.Column("escalated_at", sa.DateTime),
        sa.Column("rating", sa.String(8)),
        sa.Column("rated_at", sa.DateTime),
        sa.Column("rated_by", sa.String(128)),
        sa.CheckConstraint("rating IS NULL OR rating IN ('real','false')", name="ck_alerts_rating"),
    )
    op.create_index("ix_alerts_resident", "alerts", ["resident_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_alerts_resident", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("live_sensor_days")
    op.drop_index("ix_device_events_resident_time", table_name="device_events")
    op.drop_table("device_events")
