"""Idempotency keys scoped by caller: two time-bank clients using the same key no longer collide.

Adds `idempotency_keys.caller` and makes (caller, key) the primary key. Keys already stored get
the caller '' ("unscoped"): any caller's retry of one still gets its stored response, as before,
until the retention window prunes it.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _pk_name() -> str | None:
    return sa.inspect(op.get_bind()).get_pk_constraint("idempotency_keys").get("name")


@contextmanager
def _rebuilt():
    """Batch-rebuild the table (SQLite) or alter it in place (PostgreSQL).

    The SQLite rebuild copies the old column flags before the new primary key replaces them, and
    SQLAlchemy warns about that mismatch; the table it creates has the new key only.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*_alembic_tmp_idempotency_keys.*primary")
        with op.batch_alter_table("idempotency_keys", recreate="auto") as batch:
            yield batch


def upgrade() -> None:
    old_pk = _pk_name()
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.add_column(sa.Column("caller", sa.String(200), nullable=False, server_default=""))
    with _rebuilt() as batch:
        batch.alter_column("caller", existing_type=sa.String(200), server_default=None)
        if old_pk:
            batch.drop_constraint(old_pk, type_="primary")
        batch.create_primary_key("pk_idempotency_keys", ["caller", "key"])


def downgrade() -> None:
    # one row per key again: keep the earliest use of each key text
    op.execute(
        "DELETE FROM idempotency_keys WHERE EXISTS (SELECT 1 FROM idempotency_keys o "
        "WHERE o.key = idempotency_keys.key AND (o.created_at < idempotency_keys.created_at "
        "OR (o.created_at = idempotency_keys.created_at AND o.caller < idempotency_keys.caller)))"
    )
    with _rebuilt() as batch:
        batch.drop_constraint("pk_idempotency_keys", type_="primary")
        batch.drop_column("caller")
        batch.create_primary_key("idempotency_keys_pkey", ["key"])
