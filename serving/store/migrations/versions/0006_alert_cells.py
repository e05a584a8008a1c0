"""A no-movement alert keeps the place and time of day whose stillness limit it passed (its
`cell`, e.g. "living/day"), so that rating it tunes that limit alone; alerts stored before this
revision have none, and their ratings tune the kind as they did.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("cell", sa.String(80)))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("cell")
