"""Ledger invariants under random sequences of task operations (hypothesis).

Whatever order volunteers and care managers open, claim, complete, cancel and retry in:
every transfer sums to zero, balances equal the sum of movements, the fund and the volunteers
sum to zero, each volunteer holds exactly the credits of the tasks they completed, there is
never more than one active task per resident and reason, and a retried write changes nothing.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.ledger import (
    FUND_ACCOUNT,
    UnbalancedTransfer,
    balances_from,
    check_balanced,
    hours_to_minutes,
    transfer_legs,
)
from serving.store import StoreError, TimeBankStore
from tests.serving.conftest import make_spec, reset

RESIDENTS = ["R1", "R2", "R3"]
REASONS = ["fall_risk", "isolation"]
VOLUNTEERS = ["V1", "V2", "V3"]

ops = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(RESIDENTS), st.sampled_from(REASONS), st.integers(1, 16)),
    st.tuples(st.just("claim"), st.integers(0, 9), st.sampled_from(VOLUNTEERS)),
    st.tuples(st.just("complete"), st.integers(0, 9), st.sampled_from(VOLUNTEERS)),
    st.tuples(st.just("cancel"), st.integers(0, 9)),
    st.tuples(st.just("retry"), st.integers(0, 30)),
    st.tuples(st.just("expire"), st.integers(0, 3)),
)


def _counts(store: TimeBankStore) -> tuple:
    with store.engine.connect() as conn:
        return tuple(
            conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
            for t in ("tasks", "ledger_movements", "webhook_outbox", "visit_outbox", "audit_log")
        )


def _run(store: TimeBankStore, sequence) -> None:
    task_ids: list[str] = []
    done: list[tuple] = []  # (callable, ...) of writes that succeeded, for retries
    for n, op in enumerate(sequence):
        key = f"k{n}"
        kind = op[0]
        try:
            if kind == "open":
                _, resident, reason, quarters = op
                spec = make_spec(resident, reason, credits=quarters * 0.25)
                res = store.open_task(spec, idempotency_key=key)
                task_ids.append(res.task.task_id)
                done.append(("open", spec, key))
            elif kind == "retry":
                if not done:
                    continue
                before, balances = _counts(store), store.balances()
                w = done[op[1] % len(done)]
                if w[0] == "open":
                    store.open_task(w[1], idempotency_key=w[2])
                else:
                    getattr(store, w[0])(*w[1], idempotency_key=w[2])
                assert _counts(store) == before and store.balances() == balances
            elif kind == "expire":
                # make_spec's tasks fall due on 2026-03-04; days 0-1 expire nothing, 2-3 all
                store.expire_overdue(today=date(2026, 3, 3 + op[1]))
            elif task_ids:
                tid = task_ids[op[1] % len(task_ids)]
                if kind == "claim":
                    store.claim_task(tid, op[2], idempotency_key=key)
                    done.append(("claim_task", (tid, op[2]), key))
                elif kind == "complete":
                    store.complete_task(tid, op[2], idempotency_key=key)
                    done.append(("complete_task", (tid, op[2]), key))
                else:
                    store.cancel_task(tid, idempotency_key=key)
                    done.append(("cancel_task", (tid,), key))
        except StoreError:
            pass  # refused operations are part of the sequence; they must leave no trace
        _check_invariants(store)


def _check_invariants(store: TimeBankStore) -> None:
    movements = store.movements()
    per_transfer = Counter()
    for m in movements:
        per_transfer[m.transfer_id] += m.minutes
    assert all(v == 0 for v in per_transfer.values()), per_transfer
    minutes = store.balance_minutes()
    assert minutes == {a: v for a, v in balances_from(movements).items()}
    assert sum(minutes.values()) == 0
    tasks = store.list_tasks(status=None, limit=500).tasks
    earned = Counter()
    for t in tasks:
        if t.status == "completed":
            earned[f"volunteer:{t.volunteer_id}"] += hours_to_minutes(t.credits)
    assert {a: v for a, v in minutes.items() if a != FUND_ACCOUNT} == dict(earned)
    assert minutes.get(FUND_ACCOUNT, 0) == -sum(earned.values())
    active = Counter((t.resident_id, t.reason) for t in tasks if t.status in ("open", "claimed"))
    assert all(v == 1 for v in active.values()), active


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=30))
def test_ledger_invariants_hold_on_sqlite(sequence):
    store = TimeBankStore("sqlite://")
    try:
        _run(store, sequence)
    finally:
        store.close()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(sequence=st.lists(ops, min_size=1, max_size=20))
def test_ledger_invariants_hold_on_postgresql(pg_store, sequence):
    reset(pg_store)
    _run(pg_store, sequence)


@pytest.fixture(scope="module")
def pg_store(pg_url):
    s = TimeBankStore(pg_url)
    yield s
    s.close()


@given(st.lists(st.integers(-10_000, 10_000), min_size=2, max_size=6))
def test_check_balanced_accepts_exactly_the_zero_sum_transfers(amounts):
    legs = [(f"volunteer:V{i}", a) for i, a in enumerate(amounts)]
    if sum(amounts) == 0:
        assert check_balanced(legs) == legs
    else:
        with pytest.raises(UnbalancedTransfer):
            check_balanced(legs)


@given(st.integers(1, 100 * 60))
def test_transfer_legs_sum_to_zero(minutes):
    legs = transfer_legs(FUND_ACCOUNT, "volunteer:V1", minutes)
    assert sum(m for _, m in legs) == 0 and legs[1] == ("volunteer:V1", minutes)


@given(st.integers(0, 400))
def test_quarter_hours_round_trip_exactly(quarters):
    assert hours_to_minutes(quarters * 0.25) == quarters * 15
