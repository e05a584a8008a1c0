"""A false alarm's rating may say why it was false: "out" (the resident was out; the front door's
sensor missed the opening), which tunes no wait and counts against the door's sensor; ratings
stored before this revision have no reason.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("rating_reason", sa.String(16)))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("rating_reason")
