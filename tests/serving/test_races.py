"""Races on the time-bank store (SQLite and PostgreSQL): many volunteers claim one task, many
completes of one task, one idempotency key reused with another body; one winner, paid once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from serving.auth import Principal
from serving.store import Conflict, Forbidden, IdempotencyConflict, StoreError

N = 16


def _together(n: int, fn):
    """Run fn(i) for i < n, released at once; returns each result or the StoreError raised."""
    gate = threading.Barrier(n)

    def run(i):
        gate.wait()
        try:
            return fn(i)
        except StoreError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_many_volunteers_claim_one_task_one_wins(store, spec_factory):
    task = store.open_task(spec_factory(), idempotency_key="open-1").task
    out = _together(N, lambda i: store.claim_task(task.task_id, f"V{i:04d}", idempotency_key=f"claim-{i}"))
    winners = [o for o in out if not isinstance(o, StoreError)]
    assert len(winners) == 1 and all(isinstance(o, Conflict) for o in out if o not in winners)
    assert store.get_task(task.task_id).volunteer_id == winners[0].volunteer_id


def test_many_completes_of_one_task_pay_once(store, spec_factory):
    task = store.open_task(spec_factory(), idempotency_key="open-1").task
    store.claim_task(task.task_id, "V0001", idempotency_key="claim")
    out = _together(N, lambda i: store.complete_task(task.task_id, "V0001" if i % 2 else "V0002",
                                                     idempotency_key=f"complete-{i}"))
    done = [o for o in out if not isinstance(o, StoreError)]
    assert len(done) == 1
    assert all(isinstance(o, Conflict | Forbidden) for o in out if o not in done)
    assert store.balance("volunteer:V0001") == pytest.approx(task.credits)
    assert store.balance("volunteer:V0002") == 0
    assert sum(store.balances().values()) == pytest.approx(0)


def test_same_key_retried_concurrently_completes_once(store, spec_factory):
    task = store.open_task(spec_factory(), idempotency_key="open-1").task
    store.claim_task(task.task_id, "V0001", idempotency_key="claim")
    out = _together(N, lambda i: store.complete_task(task.task_id, "V0001", idempotency_key="same"))
    assert all(not isinstance(o, StoreError) or isinstance(o, Conflict) for o in out)
    assert sum(1 for o in out if not isinstance(o, StoreError)) >= 1
    assert [m.minutes for m in store.movements(account="volunteer:V0001")] == [round(task.credits * 60)]


def test_key_reused_with_another_body_is_refused_and_other_callers_keys_are_theirs(store, spec_factory):
    a = store.open_task(spec_factory("R0001"), idempotency_key="open-a").task
    b = store.open_task(spec_factory("R0002"), idempotency_key="open-b").task
    me, other = Principal("app-1", "timebank"), Principal("app-2", "timebank")
    store.claim_task(a.task_id, "V0001", idempotency_key="k", actor=me)
    with pytest.raises(IdempotencyConflict):
        store.claim_task(b.task_id, "V0001", idempotency_key="k", actor=me)
    assert store.claim_task(b.task_id, "V0002", idempotency_key="k", actor=other).volunteer_id == "V0002"


def test_many_openers_of_one_resident_and_reason_open_one_task(store, spec_factory):
    out = _together(N, lambda i: store.open_task(spec_factory(), idempotency_key=f"open-{i}"))
    assert sum(1 for o in out if not isinstance(o, StoreError) and o.created) == 1
    assert len(store.list_tasks(status="open", limit=50).tasks) == 1


def test_a_volunteer_cannot_cancel_anothers_claimed_task(store, spec_factory):
    task = store.open_task(spec_factory(), idempotency_key="open-1").task
    store.claim_task(task.task_id, "V0001", idempotency_key="claim")
    with pytest.raises(Forbidden):
        store.cancel_task(task.task_id, idempotency_key="c", volunteer_id="V0002")
    assert store.cancel_task(task.task_id, idempotency_key="c2", volunteer_id="V0001").status == "cancelled"


def test_a_volunteer_id_the_api_accepts_can_be_paid():
    """One id rule: what the claim body accepts is a valid ledger account."""
    import re

    from serving.ledger import VOLUNTEER_ID_PATTERN, volunteer_account
    from serving.schemas import ClaimBody

    for vid in ("V0001", "a.b-c_d", "x" * 64):
        assert ClaimBody(volunteer_id=vid).volunteer_id == vid and volunteer_account(vid)
    for vid in ("vol:1", "", "x" * 65, "a b"):
        assert not re.match(VOLUNTEER_ID_PATTERN, vid)
        with pytest.raises(ValueError):
            ClaimBody(volunteer_id=vid)
