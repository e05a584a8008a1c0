"""The time-bank store on SQLite and PostgreSQL: lifecycle, idempotency, feed, ledger,
write-back, concurrency and crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from serving.ledger import FUND_ACCOUNT
from serving.store import (
    Conflict,
    Forbidden,
    IdempotencyConflict,
    InvalidInput,
    NotFound,
    ScoreRecord,
    TimeBankStore,
    open_store,
    tasks_table,
)
from tests.serving.conftest import make_spec, reset
from twin.schema import TABLES, validate
from twin.store import HistoryStore


def _open(store, resident="R0001", reason="fall_risk", key=None, **kw):
    return store.open_task(make_spec(resident, reason, **kw), idempotency_key=key or f"open-{resident}-{reason}")


# --- lifecycle ---------------------------------------------------------------------------------


def test_full_lifecycle_moves_credits_and_records_everything(store, clock, tmp_path):
    t = _open(store).task
    assert t.status == "open" and t.credits == 2.25 and t.reasons[0]["feature"] == "night_toilet_visits_7d"
    clock.advance(hours=2)
    t = store.claim_task(t.task_id, "V0007", idempotency_key="claim-1")
    assert (t.status, t.volunteer_id) == ("claimed", "V0007")
    clock.advance(hours=20)
    t = store.complete_task(t.task_id, "V0007", idempotency_key="done-1")
    assert t.status == "completed" and t.completed_at == clock()

    assert store.balances() == {FUND_ACCOUNT: -2.25, "volunteer:V0007": 2.25}
    moves = store.movements(transfer_id=f"task-{t.task_id}")
    assert sorted(m.minutes for m in moves) == [-135, 135]
    assert [e.event_type for e in store.events(task_id=t.task_id)] == [
        "task.opened", "task.claimed", "task.completed",
    ]
    assert [a.action for a in store.audit_log(resident_id="R0001")] == [
        "task.complete", "task.claim", "task.open",
    ]
    visits = store.pending_visits()
    assert list(visits["visit_id"]) == [t.task_id] and visits["hours"].iloc[0] == 1.5
    assert validate(visits, TABLES["visits"]).ok


def test_claim_conflicts_and_wrong_volunteer_is_forbidden(store):
    t = _open(store).task
    store.claim_task(t.task_id, "V1", idempotency_key="c1")
    with pytest.raises(Conflict, match="claimed by V1") as e:
        store.claim_task(t.task_id, "V2", idempotency_key="c2")
    assert e.value.status == 409
    with pytest.raises(Forbidden) as e:
        store.complete_task(t.task_id, "V2", idempotency_key="d2")
    assert e.value.status == 403
    assert store.balances() == {}


def test_complete_needs_a_claim_and_unknown_task_is_not_found(store):
    t = _open(store).task
    with pytest.raises(Conflict, match="only a claimed task"):
        store.complete_task(t.task_id, "V1", idempotency_key="d1")
    with pytest.raises(NotFound) as e:
        store.claim_task("T-nope", "V1", idempotency_key="c9")
    assert e.value.status == 404


def test_cancel_and_expire(store, clock):
    a = _open(store, "R1").task
    b = _open(store, "R2").task
    c = _open(store, "R3", due_date=date(2026, 3, 20)).task
    assert store.cancel_task(a.task_id, idempotency_key="x1", note="moved away").status == "cancelled"
    with pytest.raises(Conflict):
        store.cancel_task(a.task_id, idempotency_key="x2")
    store.claim_task(b.task_id, "V1", idempotency_key="cb")
    expired = store.expire_overdue(today=date(2026, 3, 5))
    assert [t.task_id for t in expired] == [b.task_id]
    assert store.get_task(c.task_id).status == "open"
    assert store.expire_overdue(today=date(2026, 3, 5)) == []
    # a finished task frees the slot: the resident can get a new task for the same reason
    assert _open(store, "R2", key="again").created


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(kind="dance"), "task kind"),
        (dict(credits=float("nan")), "credits"),
        (dict(credits=-1.0), "credits"),
        (dict(urgency="urgent"), "urgency"),
        (dict(resident_id="R 1"), "resident id"),
        (dict(probability=1.5), "probability"),
    ],
)
def test_bad_task_spec_is_rejected_with_what_was_wrong(store, bad, match):
    with pytest.raises(InvalidInput, match=match) as e:
        store.open_task(make_spec(**bad), idempotency_key="k")
    assert e.value.status == 422
    assert store.list_tasks(status=None).tasks == []


def test_writes_need_an_idempotency_key(store):
    with pytest.raises(InvalidInput, match="idempotency key"):
        store.open_task(make_spec(), idempotency_key="")
    with pytest.raises(InvalidInput, match="idempotency key"):
        store.claim_task("T1", "V1", idempotency_key="has space")


# --- idempotency -------------------------------------------------------------------------------


def _snapshot(store: TimeBankStore) -> dict:
    with store.engine.connect() as conn:
        return {
            t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
            for t in ("tasks", "ledger_movements", "webhook_outbox", "visit_outbox", "audit_log", "idempotency_keys")
        }


def test_retried_writes_with_the_same_key_change_nothing(store, clock):
    first = _open(store, key="k-open")
    claimed = store.claim_task(first.task.task_id, "V1", idempotency_key="k-claim")
    done = store.complete_task(first.task.task_id, "V1", idempotency_key="k-done")
    before, balances = _snapshot(store), store.balances()
    clock.advance(hours=1)

    again = _open(store, key="k-open")
    assert again.replayed and again.task == first.task and again.created
    assert not claimed.replayed and not done.replayed
    again_claim = store.claim_task(first.task.task_id, "V1", idempotency_key="k-claim")
    again_done = store.complete_task(first.task.task_id, "V1", idempotency_key="k-done")
    assert again_claim == claimed and again_claim.replayed
    assert again_done == done and again_done.replayed and again_done.to_dict() == done.to_dict()
    assert _snapshot(store) == before and store.balances() == balances


def test_same_key_with_a_different_request_is_a_conflict(store):
    t = _open(store, key="k1").task
    store.claim_task(t.task_id, "V1", idempotency_key="k2")
    with pytest.raises(IdempotencyConflict, match="different request"):
        store.complete_task(t.task_id, "V1", idempotency_key="k2")
    with pytest.raises(IdempotencyConflict):
        store.claim_task(t.task_id, "V9", idempotency_key="k2")
    assert store.get_task(t.task_id).status == "claimed"


def test_idempotency_keys_are_scoped_by_caller(store):
    from serving.auth import Principal

    desk_a, desk_b = Principal("desk-a", "timebank"), Principal("desk-b", "timebank")
    named_system = Principal("system", "admin")  # an API key that happens to be named "system"
    t1, t2 = _open(store, "R1").task, _open(store, "R2").task

    a = store.claim_task(t1.task_id, "V1", idempotency_key="shared", actor=desk_a)
    # another client using the same key text is an independent request, not A's replay
    b = store.claim_task(t2.task_id, "V2", idempotency_key="shared", actor=desk_b)
    assert (a.task_id, a.volunteer_id, b.task_id, b.volunteer_id) == (t1.task_id, "V1", t2.task_id, "V2")
    assert not a.replayed and not b.replayed
    # same caller, same key, same request: the first answer again, nothing changes
    before = _snapshot(store)
    again = store.claim_task(t1.task_id, "V1", idempotency_key="shared", actor=desk_a)
    assert again.replayed and again == a and _snapshot(store) == before
    # same caller, same key, another request: refused, as before
    with pytest.raises(IdempotencyConflict):
        store.complete_task(t1.task_id, "V1", idempotency_key="shared", actor=desk_a)
    # a third client sending A's exact request under the key gets its own answer, never A's
    with pytest.raises(Conflict, match="claimed by V1"):
        store.claim_task(t1.task_id, "V1", idempotency_key="shared", actor=Principal("desk-c", "timebank"))
    # the system actor has a scope of its own, which no API key's name can reach
    sys_open = store.open_task(make_spec("R3"), idempotency_key="nightly")
    key_open = store.open_task(make_spec("R3"), idempotency_key="nightly", actor=named_system)
    assert sys_open.created and not sys_open.replayed
    assert not key_open.created and not key_open.replayed and key_open.task == sys_open.task
    assert store.open_task(make_spec("R3"), idempotency_key="nightly").replayed


def test_a_failed_write_does_not_burn_its_key(store):
    t = _open(store).task
    with pytest.raises(Conflict):
        store.complete_task(t.task_id, "V1", idempotency_key="k-early")
    store.claim_task(t.task_id, "V1", idempotency_key="k-claim")
    assert store.complete_task(t.task_id, "V1", idempotency_key="k-early").status == "completed"


def test_second_open_for_same_resident_and_reason_returns_the_active_task(store):
    a = _open(store, key="k1")
    b = _open(store, key="k2", kind="walk")
    c = _open(store, reason="isolation", key="k3", kind="companionship")
    assert a.created and not b.created and b.task.task_id == a.task.task_id
    assert c.created and c.task.task_id != a.task.task_id


def test_the_database_itself_refuses_a_second_active_task(store):
    t = _open(store).task
    row = {c.name: getattr(t, c.name, None) for c in tasks_table.columns if c.name != "seq"}
    row.update(task_id="T-dup", credit_minutes=60, reasons=[], details={}, status="claimed")
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(tasks_table.insert().values(**row))


# --- the feed ------------------------------------------------------------------------------------


def test_open_task_feed_pages_with_a_stable_cursor_and_grid_filter(store):
    ids = [_open(store, f"R{i:03d}", grid_id="G01" if i % 2 else "G02").task.task_id for i in range(7)]
    seen, cursor = [], None
    while True:
        page = store.list_open_tasks(limit=3, cursor=cursor)
        seen += [t.task_id for t in page.tasks]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        # a task claimed while paging does not shift later pages
        if len(seen) == 3:
            store.claim_task(ids[4], "V1", idempotency_key="c4")
    assert seen == ids[:4] + ids[5:]
    g1 = store.list_open_tasks(grid_id="G01", limit=50)
    assert [t.task_id for t in g1.tasks] == [i for n, i in enumerate(ids) if n % 2 and n != 4]
    # a poller keeping its cursor sees new tasks exactly once
    last = store.list_open_tasks(limit=2, cursor=store.list_open_tasks(limit=5).next_cursor)
    new = _open(store, "R999").task
    tail = store.list_open_tasks(limit=50, cursor=last.next_cursor or store.list_open_tasks(limit=5).next_cursor)
    assert new.task_id in [t.task_id for t in tail.tasks]


@pytest.mark.parametrize("cursor", ["garbage", "dDE6LTE", "eDk6MQ"])
def test_bad_cursor_or_limit_is_invalid_input(store, cursor):
    with pytest.raises(InvalidInput, match="cursor"):
        store.list_open_tasks(cursor=cursor)
    with pytest.raises(InvalidInput, match="limit"):
        store.list_open_tasks(limit=0)
    with pytest.raises(InvalidInput, match="status"):
        store.list_tasks(status="done")


# --- ledger, scores, audit, exports ---------------------------------------------------------------


def test_balances_are_sums_of_movements_and_transfers_balance(store):
    for i, v in enumerate(["V1", "V2", "V1"]):
        t = _open(store, f"R{i}", credits=1.0 + i * 0.25).task
        store.claim_task(t.task_id, v, idempotency_key=f"c{i}")
        store.complete_task(t.task_id, v, idempotency_key=f"d{i}")
    store.transfer("volunteer:V1", "volunteer:V2", 0.5, "gift", idempotency_key="g1")
    b = store.balances()
    assert b == {FUND_ACCOUNT: -3.75, "volunteer:V1": 2.0, "volunteer:V2": 1.75}
    assert sum(store.balance_minutes().values()) == 0
    assert store.balance("volunteer:V2") == 1.75 and store.balance("volunteer:nobody") == 0.0
    ledger = store.ledger_frame()
    assert validate(ledger, TABLES["ledger"]).ok and len(ledger) == 8
    assert validate(store.tasks_frame(), TABLES["tasks"]).ok
    with pytest.raises(InvalidInput, match="two different accounts"):
        store.transfer("volunteer:V1", "volunteer:V1", 1.0, "self", idempotency_key="g2")
    with pytest.raises(InvalidInput, match="account"):
        store.transfer("bank:X", "volunteer:V1", 1.0, "x", idempotency_key="g3")


def test_scores_history_keeps_trends_and_ranks_latest(store):
    recs = [
        ScoreRecord("R1", "fall_risk", "3", date(2026, 2, 23), 0.2, "medium", [{"feature": "a"}]),
        ScoreRecord("R1", "fall_risk", "3", date(2026, 3, 2), 0.6, "high"),
        ScoreRecord("R2", "fall_risk", "3", date(2026, 3, 2), 0.4, "high"),
        ScoreRecord("R2", "isolation", "1", date(2026, 3, 2), 0.9, "high"),
    ]
    assert store.record_scores(recs) == 4
    assert store.record_scores(recs[:2]) == 0  # the same point is stored once
    hist = store.score_history("R1", model="fall_risk")
    assert [r.probability for r in hist] == [0.2, 0.6] and hist[0].reasons == [{"feature": "a"}]
    assert [r.resident_id for r in store.latest_scores("fall_risk")] == ["R1", "R2"]
    assert [r.resident_id for r in store.latest_scores("fall_risk", band="medium")] == []
    with pytest.raises(InvalidInput, match="probability"):
        store.record_scores([ScoreRecord("R3", "fall_risk", "3", date(2026, 3, 2), float("nan"), "low")])


def test_audit_rows_name_the_actor(store):
    from serving.auth import Principal

    p = Principal("care-desk", "care_manager")
    _open(store, key="k")
    store.record_audit(p, "resident.read", resident_id="R0001", detail={"route": "/residents/R0001"})
    log = store.audit_log(resident_id="R0001")
    assert (log[0].actor, log[0].role, log[0].action) == ("care-desk", "care_manager", "resident.read")
    assert (log[1].actor, log[1].action) == ("system", "task.open")


def test_ping_and_url_never_shows_the_password(store):
    assert store.ping()
    assert ":***@" in repr(store) or store.dialect == "sqlite"


# --- visit write-back -----------------------------------------------------------------------------


def test_flush_visits_writes_each_visit_once_even_after_a_crash(store, tmp_path):
    history = HistoryStore(tmp_path / "history")
    done = []
    for i in range(3):
        t = _open(store, f"R{i}").task
        store.claim_task(t.task_id, "V1", idempotency_key=f"c{i}")
        done.append(store.complete_task(t.task_id, "V1", idempotency_key=f"d{i}").task_id)
    # a flusher that died after appending but before marking: the visits are in the history
    history.append("visits", store.pending_visits().iloc[:2])
    assert store.flush_visits(history) == 1
    assert store.flush_visits(history) == 0
    visits = history.read("visits")
    assert sorted(visits["visit_id"]) == sorted(done)
    assert set(visits["source"]) == {"timebank"} and set(visits["kind"]) == {"home_hazard_check"}
    assert store.pending_visits().empty


# --- concurrency ----------------------------------------------------------------------------------


def _race(n: int, fn) -> list:
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - the test inspects what each thread got
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_concurrent_openers_of_one_resident_and_reason_get_one_task(store):
    for round_ in range(3):
        res = _race(4, lambda i, r=round_: _open(store, f"R{r}", key=f"k{r}-{i}"))
        assert all(not isinstance(x, Exception) for x in res), res
        assert len({x.task.task_id for x in res}) == 1
        assert sum(x.created for x in res) == 1
    assert len(store.list_tasks(status=None).tasks) == 3


def test_concurrent_claims_have_one_winner(store):
    t = _open(store).task
    res = _race(4, lambda i: store.claim_task(t.task_id, f"V{i}", idempotency_key=f"c{i}"))
    wins = [x for x in res if not isinstance(x, Exception)]
    assert len(wins) == 1 and all(isinstance(x, Conflict) for x in res if x not in wins)
    assert store.get_task(t.task_id).volunteer_id == wins[0].volunteer_id


def test_concurrent_retries_of_one_completion_pay_once(store):
    t = _open(store).task
    store.claim_task(t.task_id, "V1", idempotency_key="c")
    res = _race(4, lambda i: store.complete_task(t.task_id, "V1", idempotency_key="same-key"))
    assert all(not isinstance(x, Exception) for x in res), res
    assert len({x.completed_at for x in res}) == 1
    assert store.balances() == {FUND_ACCOUNT: -2.25, "volunteer:V1": 2.25}


# --- durability -----------------------------------------------------------------------------------


def test_sqlite_store_is_wal_with_durable_commits(tmp_path):
    s = open_store(home=tmp_path)
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    assert (tmp_path / "timebank.db").exists()
    with pytest.raises(ValueError, match="unsupported store URL"):
        TimeBankStore("mysql://u:secret@h/db")


_WORKER = textwrap.dedent(
    """
    import sys
    from datetime import date, timedelta
    from serving.store import TaskSpec, TimeBankStore
    s = TimeBankStore(sys.argv[1])
    i = 0
    while True:
        spec = TaskSpec(resident_id=f"R{i}", grid_id="G1", kind="walk", reason="fall_risk",
                        due_date=date(2030, 1, 1), credits=1.25 + (i % 4) * 0.25)
        t = s.open_task(spec, idempotency_key=f"o{i}").task
        s.claim_task(t.task_id, f"V{i % 5}", idempotency_key=f"c{i}")
        s.complete_task(t.task_id, f"V{i % 5}", idempotency_key=f"d{i}")
        print(f"ack {t.task_id}", flush=True)
        i += 1
    """
)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_mid_write_loses_no_acknowledged_op_and_ledger_sums_to_zero(backend, tmp_path, request):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'timebank.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    s = TimeBankStore(url)
    reset(s)
    s.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER, url], stdout=subprocess.PIPE, text=True, env=env
    )
    acked = []
    try:
        for line in proc.stdout:
            acked.append(line.split()[1])
            if len(acked) >= 25:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert len(acked) >= 25

    s = TimeBankStore(url)
    status = {t.task_id: t.status for t in s.list_tasks(status=None, limit=500).tasks}
    assert all(status[t] == "completed" for t in acked)
    assert sum(s.balance_minutes().values()) == 0
    with s.engine.connect() as conn:
        unbalanced = conn.execute(sa.text(
            "SELECT transfer_id FROM ledger_movements GROUP BY transfer_id HAVING SUM(amount_minutes) != 0"
        )).all()
        assert unbalanced == []
        if backend == "sqlite":
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    # every completion is whole: status, transfer, visit record and event together or not at all
    paid = {m.task_id for m in s.movements()}
    visits = set(s.pending_visits()["visit_id"])
    events = {e.task_id for e in s.events() if e.event_type == "task.completed"}
    completed = {t for t, st in status.items() if st == "completed"}
    assert completed == paid == visits == events
    s.close()



def test_reasons_with_numpy_numbers_and_nan_are_stored_as_plain_json(store):
    import numpy as np

    reasons = ({"feature": "steps_7d", "contribution": np.float32(0.25), "value": float("nan"),
                "rank": np.int64(1)},)
    t = _open(store, reasons=reasons).task
    assert store.get_task(t.task_id).reasons == [
        {"feature": "steps_7d", "contribution": 0.25, "value": None, "rank": 1}
    ]


def test_prune_forgets_only_finished_outbox_rows_and_old_keys(store, clock, tmp_path):
    t = _open(store, key="k-old").task
    store.claim_task(t.task_id, "V1", idempotency_key="c-old")
    store.complete_task(t.task_id, "V1", idempotency_key="d-old")
    store.flush_visits(HistoryStore(tmp_path / "history"))
    clock.advance(days=40)
    fresh = _open(store, "R2", key="k-new").task  # its event is not delivered: kept
    out = store.prune(clock() - timedelta(days=30))
    assert out == {"webhook_events": 0, "visits": 1, "idempotency_keys": 3}
    assert [e.task_id for e in store.events()] == [t.task_id] * 3 + [fresh.task_id]
    assert store.balances() == {FUND_ACCOUNT: -2.25, "volunteer:V1": 2.25}
    assert _open(store, "R2", key="k-new").replayed
