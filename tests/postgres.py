"""A real PostgreSQL server on loopback for tests: found, started or created, never mocked.

`postgres_database(prefix)` uses `TWINCARE_TEST_PG_URL` when set; otherwise it finds the Debian
cluster (`pg_lsclusters`; creates one if the server is installed without a cluster), starts it
when it is down (needs root), creates a role with a random password and a fresh database, and
yields a URL on 127.0.0.1. It skips, saying why, only when no server can be started. A cluster it
started is left running for the next run (starting one takes seconds).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


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


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """URL of an empty PostgreSQL database, dropped afterwards."""
    if os.environ.get("TWINCARE_TEST_PG_URL"):
        yield os.environ["TWINCARE_TEST_PG_URL"]
        return
    port, why = _start_postgres()
    if port is None:
        pytest.skip(f"PostgreSQL tests skipped: {why}")
    password = secrets.token_hex(16)
    # a role and database per session, so test runs started side by side do not collide
    role = dbname = f"{prefix}_{os.getpid()}"
    try:
        _create_role_and_db(port, role, password, dbname)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"PostgreSQL tests skipped: cannot create the test role/database ({e})")
    yield f"postgresql+psycopg://{role}:{password}@127.0.0.1:{port}/{dbname}"
    with contextlib.suppress(RuntimeError, OSError, subprocess.SubprocessError):
        _psql(port, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        _psql(port, f"DROP ROLE IF EXISTS {role}")


def _create_role_and_db(port: int, role: str, password: str, dbname: str) -> None:
    _psql(port, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    _psql(port, f"DROP ROLE IF EXISTS {role}")
    _psql(port, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    _psql(port, f"CREATE DATABASE {dbname} OWNER {role}")
