"""Store fixtures: a SQLite file store and a real PostgreSQL server on loopback.

The PostgreSQL fixture uses `TWINCARE_TEST_PG_URL` when set; otherwise it finds the Debian
cluster (`pg_lsclusters`; creates one if the server is installed without a cluster), starts it
when it is down (needs root), creates a test role with a random password and a fresh database, and connects on 127.0.0.1 with that password. It skips,
saying why, only when no server can be started. A cluster it started is left running for the
next run (starting one takes seconds).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from serving.store import TaskSpec, TimeBankStore, metadata


class FakeClock:
    """A settable naive-UTC clock for the store."""

    def __init__(self, start: datetime = datetime(2026, 3, 2, 9, 0, 0)):
        self.t = start

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw) -> None:
        self.t += timedelta(**kw)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def _clusters() -> list[dict]:
    if not shutil.which("pg_lsclusters"):
        return []
    out = _run(["pg_lsclusters", "--no-header"]).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            rows.append({"version": parts[0], "name": parts[1], "port": int(parts[2]), "status": parts[3]})
    return rows


def _as_postgres(args: list[str]) -> list[str]:
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *args]
    return ["su", "postgres", "-c", " ".join(f"'{a}'" for a in args)]


def _start_postgres() -> tuple[int | None, str]:
    """Port of a running cluster (starting one if needed), or None and why not."""
    clusters = _clusters()
    if not clusters:
        versions = sorted(
            (p.name for p in Path("/usr/lib/postgresql").glob("*") if (p / "bin" / "postgres").exists()),
            key=float,
        )
        if not versions or not shutil.which("pg_createcluster"):
            return None, "PostgreSQL is not installed (no pg_lsclusters/server binaries; run `make system-deps`)"
        if os.geteuid() != 0:
            return None, "PostgreSQL is installed but has no cluster, and creating one needs root"
        r = _run(["pg_createcluster", versions[-1], "main"])
        if r.returncode != 0:
            return None, f"could not create a PostgreSQL {versions[-1]} cluster: {r.stderr.strip()}"
        clusters = _clusters()
    clusters.sort(key=lambda c: (c["status"] != "online", -float(c["version"])))
    c = clusters[0]
    if c["status"] == "online":
        return c["port"], ""
    if os.geteuid() != 0:
        return None, f"PostgreSQL {c['version']}/{c['name']} is down and starting it needs root"
    r = _run(["pg_ctlcluster", "--skip-systemctl-redirect", c["version"], c["name"], "start"])
    if r.returncode != 0 and "already running" not in (r.stderr + r.stdout):
        return None, f"could not start PostgreSQL {c['version']}/{c['name']}: {r.stderr.strip()}"
    return c["port"], ""


def _psql(port: int, sql: str, db: str = "postgres") -> None:
    r = _run(_as_postgres(["psql", "-p", str(port), "-d", db, "-v", "ON_ERROR_STOP=1", "-qc", sql]))
    if r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr.strip()}")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of an empty PostgreSQL database for this test session."""
    if os.environ.get("TWINCARE_TEST_PG_URL"):
        yield os.environ["TWINCARE_TEST_PG_URL"]
        return
    port, why = _start_postgres()
    if port is None:
        pytest.skip(f"PostgreSQL store tests skipped: {why}")
    password = secrets.token_hex(16)
    # a role and database per session, so test runs started side by side do not collide
    role = dbname = f"twincare_test_{os.getpid()}"
    try:
        _create_role_and_db(port, role, password, dbname)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"PostgreSQL store tests skipped: cannot create the test role/database ({e})")
    yield f"postgresql+psycopg://{role}:{password}@127.0.0.1:{port}/{dbname}"
    with contextlib.suppress(RuntimeError, OSError, subprocess.SubprocessError):
        _psql(port, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        _psql(port, f"DROP ROLE IF EXISTS {role}")


def _create_role_and_db(port: int, role: str, password: str, dbname: str) -> None:
    _psql(port, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    _psql(port, f"DROP ROLE IF EXISTS {role}")
    _psql(port, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    _psql(port, f"CREATE DATABASE {dbname} OWNER {role}")


def reset(store: TimeBankStore) -> None:
    """Empty every table (keeps the schema)."""
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            names = ", ".join(t.name for t in metadata.sorted_tables)
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for t in reversed(metadata.sorted_tables):
                conn.execute(t.delete())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sqlite_store(tmp_path, clock) -> Iterator[TimeBankStore]:
    s = TimeBankStore(f"sqlite:///{tmp_path / 'timebank.db'}", clock=clock)
    yield s
    s.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path, clock) -> Iterator[TimeBankStore]:
    """The same store suite on SQLite (a WAL file) and on a real PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'timebank.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    s = TimeBankStore(url, clock=clock)
    reset(s)
    yield s
    s.close()


def make_spec(resident: str = "R0001", reason: str = "fall_risk", **kw) -> TaskSpec:
    """A task spec with sensible defaults for tests."""
    base = dict(
        resident_id=resident,
        grid_id="G01",
        kind="home_hazard_check",
        reason=reason,
        due_date=date(2026, 3, 4),
        credits=2.25,
        urgency="high",
        hours=1.5,
        explanation="Fall risk is high (41%): night-time toilet visits rose",
        reasons=({"feature": "night_toilet_visits_7d", "contribution": 0.31, "text": "night-time toilet visits rose"},),
        model="fall_risk",
        model_version="3",
        probability=0.41,
        band="high",
        as_of=date(2026, 3, 2),
    )
    base.update(kw)
    return TaskSpec(**base)


@pytest.fixture
def spec_factory():
    return make_spec
