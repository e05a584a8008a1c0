"""Bringing a store's schema to the newest revision (Alembic; the scripts are in `migrations/`).

- an empty database gets today's tables and is stamped at head;
- a store made by `create_all` before revisions existed (its tables, no `alembic_version`) is
  stamped 0001 and upgraded;
- a store at an older revision is upgraded.

Everything happens in one transaction that holds a lock, so two processes opening the same
fresh store do not both create it: on PostgreSQL a transaction-scoped advisory lock (DDL is
transactional there), on SQLite the database write lock that `BEGIN IMMEDIATE` takes (the second
opener waits up to the busy timeout). The second opener then finds the store at head. Within
one process, migrations run one at a time (Alembic keeps its context in module globals).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from serving.store.schema import metadata

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"
"""The revision a store made before revisions existed is at."""

BASELINE_TABLES = frozenset(
    {"tasks", "ledger_movements", "idempotency_keys", "webhook_outbox", "visit_outbox", "audit_log", "risk_scores"}
)
_PG_LOCK = 0x74696D6562616E6B  # "timebank": one advisory lock id for schema changes
_ALEMBIC = threading.Lock()  # Alembic's `context`/`op` are process globals: one migration at a time


class SchemaError(RuntimeError):
    """The database holds something the store cannot take as one of its revisions."""


@dataclass(frozen=True)
class Upgrade:
    """What opening did to the schema."""

    before: str | None  # revision found; None for an empty database or a store from before revisions
    after: str
    adopted: bool = False  # tables from before revisions were taken as BASELINE

    @property
    def changed(self) -> bool:
        return self.adopted or self.before != self.after


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the store's scripts, migrating `connection` when given."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "the store has no migration scripts"
    return head


def known_revisions() -> list[str]:
    """Every revision this code can upgrade from, oldest first."""
    return [s.revision for s in reversed(list(_scripts().walk_revisions()))]


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def revision_of(engine: Engine) -> str | None:
    """The store's recorded revision (None: none recorded)."""
    with engine.connect().execution_options(twincare_read=True) as conn, conn.begin():
        return current_revision(conn)


def upgrade(engine: Engine, revision: str = "head") -> Upgrade:
    """Bring the store at `engine` to `revision` (default: head); see the module doc."""
    target = head_revision() if revision == "head" else revision
    with engine.connect().execution_options(twincare_read=True) as conn, conn.begin():
        found = current_revision(conn)
    if found == target:  # the usual case: nothing to do, no lock taken
        return Upgrade(found, found)
    with _ALEMBIC, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK})
        before = current_revision(conn)
        if before is not None and before not in known_revisions():
            raise SchemaError(
                f"the store is at revision {before!r}, which this version does not know "
                f"(it knows {', '.join(known_revisions())}); a newer version has upgraded it"
            )
        cfg = alembic_config(conn)
        adopted = False
        if before is None:
            present = BASELINE_TABLES & set(sa.inspect(conn).get_table_names())
            if present and present != BASELINE_TABLES:
                raise SchemaError(
                    f"the database has some of the store's tables ({', '.join(sorted(present))}) "
                    f"but not {', '.join(sorted(BASELINE_TABLES - present))}; it is not a store to upgrade"
                )
            adopted = bool(present)
            if adopted:
                command.stamp(cfg, BASELINE)
            elif target == head_revision():
                metadata.create_all(conn)
                command.stamp(cfg, "head")
        if before != target:
            command.upgrade(cfg, target)
        return Upgrade(before, current_revision(conn) or "", adopted)
