"""Per-home alert settings the care managers set: away spans (no alerts while the resident is
away) and quiet hours (non-urgent alerts held until they end).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "away_spans",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("resident_id", sa.String(64), nullable=False),
        sa.Column("start", sa.DateTime, nullable=False),
        sa.Column("end", sa.DateTime, nullable=False),
        sa.Column("note", sa.String(200)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("cancelled_at", sa.DateTime),
        sa.Column("cancelled_by", sa.String(128)),
        sa.CheckConstraint('"end" > start', name="ck_away_spans_order"),
    )
    op.create_index("ix_away_spans_resident", "away_spans", ["resident_id", "seq"])
    op.create_table(
        "quiet_hours",
        sa.Column("resident_id", sa.String(64), primary_key=True),
        sa.Column("start_minute", sa.Integer, nullable=False),
        sa.Column("end_minute", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.CheckConstraint("start_minute >= 0 AND start_minute < 1440 AND end_minute >= 0 AND end_minute < 1440",
                           name="ck_quiet_hours_minutes"),
    )


def downgrade() -> None:
    op.drop_table("quiet_hours")
    op.drop_index("ix_away_spans_resident", table_name="away_spans")
    op.drop_table("away_spans")
