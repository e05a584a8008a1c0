"""Fault injection: every file the service reads, truncated, corrupted in place, missing or stale,
at start-up and under a running server; each case is named with the answer it must give.

At start-up the answer is a refusal naming the file (never a traceback or a crash); under a
running server it is 503 for a broken store, the last good vectors for a broken online store,
and a fault in /readyz that does not stop visit write-back for a broken history part.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from serving.config import ServingConfig
from tests.e2e.conftest import fresh_home
from tests.serving.test_api import H, V, service_app, service_env, serving_home  # noqa: F401
from tests.serving.test_model_files import _registered_copy

pytestmark = pytest.mark.slow


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])


def _scribble(p: Path) -> None:
    """Overwrite the data pages in place (same length, footer intact)."""
    data = bytearray(p.read_bytes())
    lo, hi = 8, len(data) * 3 // 4
    data[lo:hi] = b"\xff" * (hi - lo)
    p.write_bytes(bytes(data))


def _garbage_header(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[:100] = b"\x00" * 100
    p.write_bytes(bytes(data))


def _short_vector(home: Path) -> None:
    with sqlite3.connect(home / "online.db") as con:
        con.execute("UPDATE vectors SET vector = substr(vector, 1, 10) WHERE rowid = 1")


def _stale(home: Path) -> None:
    with sqlite3.connect(home / "online.db") as con:
        old = con.execute("SELECT value FROM meta WHERE key='as_of'").fetchone()[0]
        con.execute("UPDATE meta SET value = ? WHERE key='as_of'", (f"{int(old[:4]) - 6}{old[4:]}",))


def _other_schema(home: Path) -> None:
    with sqlite3.connect(home / "online.db") as con:
        con.execute("UPDATE meta SET value = 'not-this-code' WHERE key='schema_hash'")


def _part(home: Path, table: str) -> Path:
    return sorted((home / "history" / table).glob("*.parquet"))[0]


# name -> (fault, the words the refusal must contain)
START_UP = {
    "online.db missing -> refused: does not exist": (lambda h: (h / "online.db").unlink(), "does not exist"),
    "online.db truncated -> refused naming online.db": (lambda h: _truncate(h / "online.db"), "online.db"),
    "online.db header corrupted in place -> refused naming online.db": (lambda h: _garbage_header(h / "online.db"), "online.db"),
    "online.db vector truncated -> refused: unreadable vectors": (_short_vector, "unreadable vectors"),
    "online.db stale (6 years before the history) -> refused: stale": (_stale, "stale"),
    "online.db of another feature schema -> refused: feature schema": (_other_schema, "feature schema"),
    "history part truncated -> refused naming the part": (lambda h: _truncate(_part(h, "sensor_days")), "sensor_days"),
    "history residents part corrupted in place -> refused naming the history": (
        lambda h: _scribble(_part(h, "residents")), "history"),
    "api_keys.json missing -> refused: does not exist": (lambda h: (h / "api_keys.json").unlink(), "does not exist"),
    "api_keys.json truncated -> refused: not valid JSON": (lambda h: _truncate(h / "api_keys.json"), "not valid JSON"),
    "volunteer.secret truncated -> refused naming it": (
        lambda h: (h / "volunteer.secret").write_text("short"), "volunteer"),
    "timebank.db garbage -> refused naming the store": (
        lambda h: (h / "timebank.db").write_bytes(b"not a database" * 100), "time-bank store"),
}


@pytest.mark.parametrize("case", list(START_UP))
def test_start_up_fault_is_refused_by_name(serving_home, tmp_path, case):  # noqa: F811
    from models.registry import ChampionError
    from serving.runtime import StartupError, build_runtime

    fault, words = START_UP[case]
    home = fresh_home(serving_home[0], tmp_path / "home")
    fault(home)
    config = ServingConfig.from_env({"TWINCARE_HOME": str(home)})
    with pytest.raises((StartupError, ChampionError)) as info:
        build_runtime(config).close()
    assert words in str(info.value), str(info.value)


def test_model_without_its_mlmodel_file_is_refused_by_name(serving_home, tmp_path):  # noqa: F811
    from models.registry import ChampionError
    from serving.runtime import build_runtime

    config, booster, version = _registered_copy(serving_home[0], tmp_path / "w")
    (booster.parent / "MLmodel").unlink()
    with pytest.raises(ChampionError, match="fall_risk"):
        build_runtime(config).close()


def test_pre_start_check_prints_the_fault_not_a_traceback(serving_home, tmp_path):  # noqa: F811
    import subprocess
    import sys

    home = fresh_home(serving_home[0], tmp_path / "home")
    _truncate(home / "online.db")
    env = {"TWINCARE_HOME": str(home), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "serving", "serve", "--port", "1"], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and "TwinCare cannot start" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_faults_under_a_running_server(serving_home, tmp_path):  # noqa: F811
    """store file replaced by garbage -> 503; online.db corrupted -> last good vectors (200) and
    /readyz 503; a visits part corrupted -> completion 200, write-back goes on, /readyz names it."""
    from starlette.testclient import TestClient

    from serving.api.app import app as http_app

    trained, keys = serving_home
    home = fresh_home(trained, tmp_path / "home")
    with service_env(home), TestClient(service_app(), raise_server_exceptions=False) as client:
        care, tb = H(keys, "care_manager"), H(keys, "timebank")
        rt = http_app.state.runtime
        ids = rt.features.ids[:5]
        assert client.post("/assess", json={"resident_ids": rt.features.ids[:300]}, headers=care).status_code == 200
        tasks = client.get("/timebank/tasks?limit=5", headers=tb).json()["items"]
        assert tasks, "300 residents assessed open no task"
        assert client.get("/readyz").status_code == 200

        # a visits part corrupted in place: write-back still appends, /readyz reports the part
        (home / "history" / "visits").mkdir(exist_ok=True)
        bad = home / "history" / "visits" / "part-00000000000000000000-bad.parquet"
        bad.write_bytes(b"PAR1" + b"\x00" * 64)
        t = tasks[0]["task_id"]
        hv = {**tb, **V(home, "V0100")}
        assert client.post(f"/timebank/tasks/{t}/claim", json={}, headers={**hv, "Idempotency-Key": "f1"}).status_code == 200
        assert client.post(f"/timebank/tasks/{t}/complete", json={}, headers={**hv, "Idempotency-Key": "f2"}).status_code == 200
        assert rt.visit_writer.flush() == 1
        ok, detail = rt.readiness()
        assert not ok and any("bad.parquet" in f for f in detail["faults"])
        assert client.get("/readyz").status_code == 503
        bad.unlink()
        rt.visit_writer.flush()

        # online.db corrupted under the server: the last good vectors keep being served
        _garbage_header(home / "online.db")
        r = client.post("/assess", json={"resident_ids": ids, "act": False}, headers=care)
        assert r.status_code == 200
        assert client.get("/readyz").status_code == 503
        assert "online store" in (rt.features.fault or "")

        # the time-bank store's file replaced by garbage under the server: 503, never 500. (A new
        # file, as a bad restore leaves it: SQLite keeps serving an overwritten file's old pages to
        # the same process through the WAL index its open connections still map.)
        garbage = home / "timebank.db.restored"
        garbage.write_bytes(b"not a database" * 100)
        garbage.replace(home / "timebank.db")
        for wal in ("timebank.db-wal", "timebank.db-shm"):
            (home / wal).unlink(missing_ok=True)
        rt.store.engine.dispose()
        r = client.get("/tasks", headers=care)
        assert r.status_code == 503 and r.json() == {"error": "the time-bank store is unavailable; retry later"}
        r = client.get("/timebank/tasks", headers=tb)
        assert r.status_code == 503
