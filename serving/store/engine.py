"""Engines with the store's durability settings, and the store's URLs."""

from __future__ import annotations

import os
import random
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool


def utcnow() -> datetime:
    """Naive UTC now (the store keeps naive UTC timestamps, like the twin history)."""
    return datetime.now(UTC).replace(tzinfo=None)


def default_url(home: str | os.PathLike) -> str:
    """The embedded default: `<TWINCARE_HOME>/timebank.db`."""
    return f"sqlite:///{Path(home) / 'timebank.db'}"


def redact_url(url: str) -> str:
    """The URL with any password hidden (safe to log)."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


_BUSY_MS = 30_000


def _set_wal(cur) -> None:
    """Switch a file database to WAL, waiting for other connections as the busy timeout would.

    SQLite takes the exclusive lock this needs without calling the busy handler, so a fresh store
    opened by two processes at once could fail one of them with "database is locked" while the
    other was writing it; the switch is retried until the busy timeout instead.
    """
    deadline = time.monotonic() + _BUSY_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + random.random() * 0.04)


def make_engine(url: str) -> Engine:
    """An engine with the store's durability settings (SQLite: WAL, synchronous=FULL)."""
    u = sa.engine.make_url(url)
    if u.get_backend_name() == "sqlite":
        memory = u.database in (None, "", ":memory:")
        if not memory:
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        kw: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if memory:  # one shared connection, single-threaded use (tests)
            kw["poolclass"] = StaticPool
        engine = sa.create_engine(u, **kw)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised via every test
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
            if not memory:
                _set_wal(cur)
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            # Writers take the write lock up front, so a check-then-write is serialised;
            # readers use a deferred transaction and never block writers under WAL.
            if conn.get_execution_options().get("twincare_read"):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if u.get_backend_name() == "postgresql":
        return sa.create_engine(u, pool_pre_ping=True)
    raise ValueError(f"unsupported store URL {redact_url(url)!r}: use sqlite:/// or postgresql+psycopg://")
