"""Store fixtures: a SQLite file store and a real PostgreSQL server on loopback (see tests/postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from serving.store import TaskSpec, TimeBankStore, metadata
from tests.postgres import postgres_database


class FakeClock:
    """A settable naive-UTC clock for the store."""

    def __init__(self, start: datetime = datetime(2026, 3, 2, 9, 0, 0)):
        self.t = start

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw) -> None:
        self.t += timedelta(**kw)

@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of an empty PostgreSQL database for this test session."""
    with postgres_database("twincare_test") as url:
        yield url


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
