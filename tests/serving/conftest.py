"""Store fixtures: a SQLite file store and a real PostgreSQL server on loopback (see tests/postgres.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from serving.store import TaskSpec, TimeBankStore, metadata
from tests.postgres import postgres_database


class Receiver:
    """A local webhook receiver: answers 500 to the first `fail_first` requests, then 200."""

    def __init__(self, fail_first: int = 0, delay_s: float = 0.0):
        self.fail_first = fail_first
        self.delay_s = delay_s
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests.append({"headers": dict(self.headers), "body": body})
                    n = len(receiver.requests)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                code = 500 if n <= receiver.fail_first else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/twincare"

    def event_ids(self) -> list[str]:
        return [r["headers"]["X-TwinCare-Event-Id"] for r in self.requests]


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
