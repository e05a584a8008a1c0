"""Schema revisions of the time-bank store on SQLite and PostgreSQL: each revision builds the
schema it declares, an old store keeps every row through the upgrade and goes on working, the
`migrate` command reports what it did, and concurrent openers of a fresh store both succeed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from serving.__main__ import main
from serving.auth import Principal
from serving.ledger import FUND_ACCOUNT
from serving.store import (
    IdempotencyConflict,
    ScoreRecord,
    TimeBankStore,
    metadata,
    migrate,
    tasks_table,
)
from serving.store.engine import make_engine
from tests.serving import store_v0001
from tests.serving.conftest import make_spec
from twin.store import HistoryStore

REPO = Path(__file__).resolve().parents[2]
DESK_A = Principal("desk-a", "timebank")
DESK_B = Principal("desk-b", "timebank")
ADMIN = Principal("ops", "admin")
HEAD = "0007"  # the newest revision


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    """URL of an empty database: a SQLite file, or a fresh schema on the test PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'timebank.db'}"
        return
    base = sa.engine.make_url(request.getfixturevalue("pg_url"))
    schema = f"mig_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _diff(url: str, md: sa.MetaData) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), md)
    finally:
        engine.dispose()


# columns later revisions added to tables that are older than them
ADDED_COLUMNS = {"0005": {("risk_scores", "missing_data")}, "0006": {("alerts", "cell")},
                 "0007": {("alerts", "rating_reason")}}


def _metadata_at(revision: str, without: set[str]) -> sa.MetaData:
    """Today's tables as they stood at `revision` (revisions 0002 and later): the tables
    `without` left out and the columns later revisions added taken off."""
    later = {c for rev, cols in ADDED_COLUMNS.items() if rev > revision for c in cols}
    out = sa.MetaData()
    for t in metadata.sorted_tables:
        if t.name in without:
            continue
        copy = t.to_metadata(out)
        for table, column in later:
            if table == t.name:
                copy._columns.remove(copy.c[column])
    return out


def _revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return migrate.revision_of(engine)
    finally:
        engine.dispose()


def _columns(url: str, table: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def _downgrade(url: str, revision: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(migrate.alembic_config(conn), revision)
    finally:
        engine.dispose()


def _forget_revisions(url: str) -> None:
    """What a store made by `create_all` before revisions existed looks like: no version table."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE alembic_version"))
    finally:
        engine.dispose()


def _rows(store: TimeBankStore) -> dict[str, list[tuple]]:
    """Every row of every table, in the columns revision 0001 has."""
    with store.engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
            for t in store_v0001.metadata.sorted_tables
        }


# --- each revision builds what it declares ---------------------------------------------------------


def test_revision_0001_is_the_old_schema_and_head_is_todays(empty_url):
    assert migrate.upgrade(make_engine(empty_url), "0001").after == "0001"
    assert _diff(empty_url, store_v0001.metadata) == []
    s = TimeBankStore(empty_url)
    s.close()
    assert _revision(empty_url) == migrate.head_revision() == HEAD
    assert _diff(empty_url, metadata) == []


def test_a_fresh_store_is_created_at_head_and_downgrades_to_the_old_schema(empty_url):
    TimeBankStore(empty_url).close()
    assert _revision(empty_url) == HEAD and _diff(empty_url, metadata) == []
    _downgrade(empty_url, "0001")
    assert _diff(empty_url, store_v0001.metadata) == []


def test_a_store_made_by_the_old_create_all_is_adopted_and_upgraded(empty_url):
    engine = make_engine(empty_url)
    store_v0001.metadata.create_all(engine)
    result = migrate.upgrade(engine)
    engine.dispose()
    assert (result.before, result.after, result.adopted) == (None, HEAD, True)
    assert _diff(empty_url, metadata) == []


# --- an old store with data: nothing lost, everything still works ---------------------------------


def _populate(s: TimeBankStore, clock, history: HistoryStore) -> dict:
    """Rows in every table, through the store's own operations."""
    done = s.open_task(make_spec("R1"), idempotency_key="open-1", actor=DESK_A).task
    s.claim_task(done.task_id, "V1", idempotency_key="claim-1", actor=DESK_A)
    clock.advance(hours=3)
    first = s.complete_task(done.task_id, "V1", idempotency_key="done-1", actor=DESK_A)
    assert s.flush_visits(history) == 1  # a visit already written back
    pending = s.open_task(make_spec("R2"), idempotency_key="open-2").task
    s.claim_task(pending.task_id, "V2", idempotency_key="claim-2", actor=DESK_B)
    s.complete_task(pending.task_id, "V2", idempotency_key="done-2", actor=DESK_B)  # visit pending
    claimed = s.open_task(make_spec("R3"), idempotency_key="open-3").task
    s.claim_task(claimed.task_id, "V3", idempotency_key="claim-3", actor=DESK_A)
    cancelled = s.open_task(make_spec("R4"), idempotency_key="open-4").task
    s.cancel_task(cancelled.task_id, idempotency_key="cancel-4", note="moved away", actor=DESK_B)
    s.transfer(FUND_ACCOUNT, "volunteer:V2", 0.5, "welcome credit", idempotency_key="gift-1", actor=ADMIN)
    s.record_scores([
        ScoreRecord("R1", "fall_risk", "3", clock().date(), 0.41, "high", [{"feature": "steps_7d"}]),
        ScoreRecord("R2", "isolation", "1", clock().date(), 0.12, "low"),
    ])
    s.record_audit(DESK_A, "resident.read", resident_id="R1", detail={"route": "/residents/R1"})
    delivered, failed = s.due_events()[:2]
    assert s.lease_event(delivered, clock())
    s.mark_delivered(delivered.event_id, attempts=1)
    s.mark_failed(failed.event_id, attempts=1, next_attempt_at=clock(), error="receiver said 500")
    return {"done": done, "first": first, "claimed": claimed}


@pytest.mark.parametrize("old", ["revision_0001", "before_revisions"])
def test_an_old_store_keeps_every_row_and_still_works_after_the_upgrade(empty_url, clock, tmp_path, old):
    # the rows are written by today's store, then the schema is taken back to 0001 (and, for a
    # store from before revisions, its version table dropped): the store an operator upgrades
    s = TimeBankStore(empty_url, clock=clock)
    made = _populate(s, clock, HistoryStore(tmp_path / "history"))
    before = _rows(s)
    s.close()
    _downgrade(empty_url, "0001")
    assert _diff(empty_url, store_v0001.metadata) == []
    if old == "before_revisions":
        _forget_revisions(empty_url)
    assert _revision(empty_url) == ("0001" if old == "revision_0001" else None)
    assert all(before[t] for t in before), {t: len(v) for t, v in before.items()}

    clock.advance(days=1)
    s = TimeBankStore(empty_url, clock=clock)
    try:
        assert _revision(empty_url) == HEAD
        assert _rows(s) == before  # no row lost or changed
        with s.engine.connect() as conn:
            assert set(conn.execute(sa.text("SELECT caller FROM idempotency_keys")).scalars()) == {""}

        # a retry of a key stored before the upgrade still gets the first answer (such keys stay
        # unscoped until pruned), and the same key for another request is still refused
        again = s.complete_task(made["done"].task_id, "V1", idempotency_key="done-1", actor=DESK_A)
        assert again.replayed and again == made["first"] and again.to_dict() == made["first"].to_dict()
        with pytest.raises(IdempotencyConflict):
            s.claim_task(made["done"].task_id, "V9", idempotency_key="claim-1", actor=DESK_A)
        assert _rows(s) == before

        # and the store goes on working: complete the claimed task, keys are scoped from now on
        t = made["claimed"]
        done = s.complete_task(t.task_id, "V3", idempotency_key="done-3", actor=DESK_A)
        assert done.status == "completed" and not done.replayed
        assert s.complete_task(t.task_id, "V3", idempotency_key="done-3", actor=DESK_A).replayed
        assert s.open_task(make_spec("R5"), idempotency_key="done-3", actor=DESK_B).task.resident_id == "R5"
        assert sum(s.balance_minutes().values()) == 0
        assert s.balances() == {FUND_ACCOUNT: -7.25, "volunteer:V1": 2.25, "volunteer:V2": 2.75,
                                "volunteer:V3": 2.25}
        assert [e.event_type for e in s.events(task_id=t.task_id)][-1] == "task.completed"
        assert set(s.pending_visits()["visit_id"]) == {made["claimed"].task_id} | {
            r[0] for r in before["visit_outbox"] if r[-1] is None
        }
        # the one-active-task rule survived the upgrade
        row = {c.name: getattr(done, c.name, None) for c in tasks_table.columns if c.name != "seq"}
        row.update(task_id="T-dup", resident_id="R5", credit_minutes=60, reasons=[], details={}, status="open")
        with pytest.raises(sa.exc.IntegrityError), s.engine.begin() as conn:
            conn.execute(tasks_table.insert().values(**row))
    finally:
        s.close()


# --- the migrate command --------------------------------------------------------------------------


def test_migrate_command_reports_the_revisions_of_an_old_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'timebank.db'}"
    engine = make_engine(url)
    store_v0001.metadata.create_all(engine)
    engine.dispose()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TWINCARE_HOME": str(tmp_path / "unused")}
    out = subprocess.run([sys.executable, "-m", "serving", "migrate", "--url", url],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "revision before: none recorded (tables from before revisions, taken as 0001)" in out.stdout
    assert f"revision after: {HEAD} (head)" in out.stdout
    assert _revision(url) == HEAD and _diff(url, metadata) == []


def test_migrate_command_defaults_to_the_configured_store(tmp_path, monkeypatch, capsys, request):
    monkeypatch.setenv("TWINCARE_HOME", str(tmp_path))
    monkeypatch.delenv("TWINCARE_STORE_URL", raising=False)
    assert main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert "timebank.db" in out and "revision before: none (empty database)" in out
    assert main(["migrate"]) == 0
    assert f"revision before: {HEAD}\nrevision after: {HEAD} (head), unchanged" in capsys.readouterr().out
    # a PostgreSQL store at 0001, named by --url, with its password kept out of the output
    url = request.getfixturevalue("pg_url")
    schema = f"mig_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        scoped = sa.engine.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        scoped_url = scoped.render_as_string(hide_password=False)
        migrate.upgrade(make_engine(scoped_url), "0001")
        assert main(["migrate", "--url", scoped_url]) == 0
        out = capsys.readouterr().out
        assert f"revision before: 0001\nrevision after: {HEAD} (head)\n" in out
        assert scoped.password is None or scoped.password not in out
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_a_store_from_a_newer_version_is_refused_not_touched(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'timebank.db'}"
    TimeBankStore(url).close()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(migrate.SchemaError, match="revision '0099'"):
        TimeBankStore(url)
    assert main(["migrate", "--url", url]) == 1
    assert "revision '0099'" in capsys.readouterr().err
    assert _revision(url) == "0099"


# --- concurrent openers ---------------------------------------------------------------------------

_OPENER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from serving.store import TimeBankStore, migrate
    print("ready", flush=True)
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.002)
    s = TimeBankStore(sys.argv[1])
    print(migrate.revision_of(s.engine), flush=True)
    s.close()
    """
)


def test_two_processes_opening_one_fresh_store_at_once_both_get_it_ready(empty_url, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", _OPENER, empty_url, str(go)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["ready"] * 2
        go.touch()  # both open the store at once
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert [out.strip() for out, _ in outs] == [HEAD] * 2
    assert _diff(empty_url, metadata) == []


def test_opening_a_fresh_sqlite_store_waits_for_a_writer_instead_of_failing(tmp_path):
    # Switching a file to WAL needs an exclusive lock that SQLite takes without its busy handler:
    # an opener racing a writer of the fresh file used to fail with "database is locked".
    import sqlite3
    import threading
    import time

    path = tmp_path / "timebank.db"
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("CREATE TABLE t (x)")
    raw.execute("BEGIN IMMEDIATE")
    raw.execute("INSERT INTO t VALUES (1)")  # the write lock another opener holds while it writes
    outcome: dict = {}

    def open_store():
        try:
            with make_engine(f"sqlite:///{path}").connect() as conn:
                outcome["mode"] = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = e

    opener = threading.Thread(target=open_store)
    opener.start()
    time.sleep(0.5)
    raw.execute("COMMIT")
    opener.join(timeout=30)
    raw.close()
    assert outcome == {"mode": "wal"}


# --- revision 0003: the live events and alerts ------------------------------------------------------

LIVE_TABLES = {"device_events", "live_sensor_days", "alerts"}


def test_revision_0003_adds_the_live_tables_and_goes_back_without_touching_the_rest(empty_url):
    from datetime import datetime

    from serving.store.live import DeviceEvent, LiveStore

    s = TimeBankStore(empty_url)
    s.open_task(make_spec("R1"), idempotency_key="open-1")
    live = LiveStore(s)
    with s.engine.begin() as conn:
        live.add_events(conn, "R1", [DeviceEvent("e1", datetime(2026, 1, 1, 8), "BED", "OFF")], datetime(2026, 1, 1, 8, 1))
    live.add_alert("R1", "not_up", datetime(2026, 1, 1, 8), datetime(2026, 1, 1, 8, 30), datetime(2026, 1, 1, 8, 31),
                   "still in bed at 08:30; usually up by 08:00", True)
    before = _rows(s)
    s.close()

    _downgrade(empty_url, "0002")
    assert _revision(empty_url) == "0002"
    engine = make_engine(empty_url)
    assert not LIVE_TABLES & set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert _diff(empty_url, _metadata_at("0002", without=LIVE_TABLES | SETTINGS_TABLES)) == []

    s = TimeBankStore(empty_url)  # upgraded again on opening
    try:
        assert _revision(empty_url) == HEAD and _diff(empty_url, metadata) == []
        assert _rows(s) == before
        assert LiveStore(s).event_count() == 0 and LiveStore(s).list_alerts() == []
    finally:
        s.close()


# --- revision 0004: the per-home alert settings -----------------------------------------------------

SETTINGS_TABLES = {"away_spans", "quiet_hours"}


def test_revision_0004_adds_the_alert_settings_and_goes_back_without_touching_the_rest(empty_url):
    from datetime import datetime

    from serving.store.live import LiveStore

    s = TimeBankStore(empty_url)
    s.open_task(make_spec("R1"), idempotency_key="open-1")
    live = LiveStore(s)
    live.add_alert("R1", "not_up", datetime(2026, 1, 1, 8), datetime(2026, 1, 1, 8, 30), datetime(2026, 1, 1, 8, 31),
                   "still in bed at 08:30; usually up by 08:00", True)
    live.settings.add_away("R1", datetime(2026, 1, 2, 9), datetime(2026, 1, 5, 18), "daughter's", actor=None)
    live.settings.set_quiet_hours("R1", 21 * 60 + 30, 6 * 60, actor=None)
    before = {k: v for k, v in _rows(s).items() if k not in SETTINGS_TABLES}
    s.close()

    _downgrade(empty_url, "0003")
    assert _revision(empty_url) == "0003"
    engine = make_engine(empty_url)
    assert not SETTINGS_TABLES & set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert _diff(empty_url, _metadata_at("0003", without=SETTINGS_TABLES)) == []

    s = TimeBankStore(empty_url)  # upgraded again on opening
    try:
        assert _revision(empty_url) == HEAD and _diff(empty_url, metadata) == []
        assert {k: v for k, v in _rows(s).items() if k not in SETTINGS_TABLES} == before
        assert LiveStore(s).settings.away_spans("R1") == [] and LiveStore(s).settings.quiet_hours("R1") is None
        assert [a.kind for a in LiveStore(s).list_alerts()] == ["not_up"]
    finally:
        s.close()


# --- revision 0005: missing data kept apart from a stored score's reasons ------------------------------


def test_revision_0005_keeps_the_missing_data_of_a_score_and_old_scores_read_as_having_none(empty_url):
    from datetime import date

    day = date(2026, 3, 2)
    no_steps = {"feature": "steps_7d", "contribution": 0.4, "value": None, "text": "no steps data"}
    s = TimeBankStore(empty_url)
    s.record_scores([ScoreRecord("R1", "fall_risk", "3", day, 0.41, "high", [{"feature": "falls_365d"}],
                                 missing_data=[no_steps])])
    assert s.latest_scores("fall_risk")[0].missing_data == [no_steps]
    s.close()

    _downgrade(empty_url, "0004")
    assert _revision(empty_url) == "0004"
    assert "missing_data" not in _columns(empty_url, "risk_scores")

    s = TimeBankStore(empty_url)  # upgraded again on opening: the score is kept, its missing data was dropped
    try:
        assert _revision(empty_url) == HEAD and _diff(empty_url, metadata) == []
        [kept] = s.latest_scores("fall_risk")
        assert (kept.probability, kept.reasons, kept.missing_data) == (0.41, [{"feature": "falls_365d"}], [])
    finally:
        s.close()


# --- revision 0006: a no-movement alert keeps the place and time of day a rating tunes ----------------


def test_revision_0006_keeps_an_alerts_place_and_an_older_alert_rated_tunes_the_whole_kind(empty_url):
    from datetime import datetime

    from models.alerts import ResidentMonitor
    from serving.store.live import LiveStore

    since = datetime(2026, 1, 1, 10)
    s = TimeBankStore(empty_url)
    live = LiveStore(s)
    live.add_alert("R1", "no_movement", since, datetime(2026, 1, 1, 10, 40), datetime(2026, 1, 1, 10, 41),
                   "no movement since 10:00 (last in the living room)", True, "living/day")
    [alert] = live.list_alerts()
    assert alert.cell == "living/day"
    live.rate(alert.alert_id, "false", ADMIN)
    assert live.ratings("R1") == [("no_movement", False, since, "living/day", None)]
    s.close()

    _downgrade(empty_url, "0005")
    assert _revision(empty_url) == "0005"
    assert "cell" not in _columns(empty_url, "alerts")

    s = TimeBankStore(empty_url)  # upgraded again: the alert and its rating are kept, its place was dropped
    try:
        assert _revision(empty_url) == HEAD and _diff(empty_url, metadata) == []
        [(kind, real, when, cell, reason)] = LiveStore(s).ratings("R1")
        assert (kind, real, when, cell, reason) == ("no_movement", False, since, None, None)
        mon = ResidentMonitor("R1", {})
        mon.rate(kind, real, since=when, cell=cell)  # as a monitor is rebuilt from stored ratings
        assert mon.tuning["no_movement"] == 1.25 and mon.cell_tuning == {}
    finally:
        s.close()


# --- revision 0007: a false alarm's rating may say the resident was out -------------------------------


def test_revision_0007_keeps_why_a_false_alarm_was_false_and_older_ratings_have_no_reason(empty_url):
    from datetime import datetime

    from serving.store.errors import InvalidInput
    from serving.store.live import LiveStore

    since = datetime(2026, 1, 1, 10)
    s = TimeBankStore(empty_url)
    live = LiveStore(s)
    for i, cell in enumerate(("motion/day", "living/day")):
        live.add_alert("R1", "no_movement", since.replace(hour=10 + i), since.replace(hour=10 + i, minute=40),
                       since.replace(hour=10 + i, minute=41), "no movement since 10:00 (last in the hall)", True, cell)
    first, second = sorted(live.list_alerts(), key=lambda a: a.since)
    with pytest.raises(InvalidInput, match="only with the rating false"):
        live.rate(first.alert_id, "real", ADMIN, "out")
    assert live.rate(first.alert_id, "false", ADMIN, "out")[0].rating_reason == "out"
    live.rate(second.alert_id, "false", ADMIN)
    assert [r[4] for r in live.ratings("R1")] == ["out", None]
    s.close()

    _downgrade(empty_url, "0006")
    assert "rating_reason" not in _columns(empty_url, "alerts")

    s = TimeBankStore(empty_url)  # upgraded again: the ratings are kept, their reasons were dropped
    try:
        assert _revision(empty_url) == HEAD and _diff(empty_url, metadata) == []
        assert [(r[1], r[3], r[4]) for r in LiveStore(s).ratings("R1")] == [(False, "motion/day", None),
                                                                           (False, "living/day", None)]
    finally:
        s.close()
