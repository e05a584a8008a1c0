"""The audit trail of reads: nothing recorded is lost, and a burst is written without waiting."""

from __future__ import annotations

import time

from serving.auth import Principal
from serving.runtime import AuditTrail
from serving.store import TimeBankStore

CARE = Principal(name="care-1", role="care_manager")


def _reads(store: TimeBankStore) -> list[str]:
    return sorted(r.resident_id for r in store.audit_log(limit=1000) if r.action == "resident.read")


def test_rows_recorded_are_written_by_flush_and_by_close(tmp_path):
    store = TimeBankStore(f"sqlite:///{tmp_path / 'tb.db'}")
    trail = AuditTrail(store, interval=60)  # the writer would not wake on its own during the test
    for rid in ("r1", "r2", "r3"):
        trail.record(CARE, "resident.read", rid)
    trail.flush()
    assert _reads(store) == ["r1", "r2", "r3"]
    trail.record(CARE, "resident.read", "r4")
    trail.record(CARE, "resident.read", "r5")
    trail.close()  # a shutdown writes what still waits
    assert _reads(store) == ["r1", "r2", "r3", "r4", "r5"]


def test_a_full_batch_is_written_without_a_flush(tmp_path):
    store = TimeBankStore(f"sqlite:///{tmp_path / 'tb.db'}")
    trail = AuditTrail(store, interval=60, batch=10)
    for i in range(10):
        trail.record(CARE, "resident.read", f"r{i:02d}")
    deadline = time.monotonic() + 10
    while len(_reads(store)) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_reads(store)) == 10
    trail.close()


def test_quiet_rows_are_written_within_the_interval(tmp_path):
    store = TimeBankStore(f"sqlite:///{tmp_path / 'tb.db'}")
    trail = AuditTrail(store, interval=0.2)
    trail.record(CARE, "resident.read", "r1")
    deadline = time.monotonic() + 10
    while not _reads(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _reads(store) == ["r1"]
    trail.close()
