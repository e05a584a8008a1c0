"""Homes do not wait on each other: building one home's monitor (a replay of its stored days, a
second or more at first contact) never holds up another home's batches or the alert clock."""

from __future__ import annotations

import threading
import time

from serving.live import LiveAlerts
from serving.store import TimeBankStore
from twin.events import SENSOR_MAP


def test_one_homes_first_build_does_not_hold_up_another_homes_batch_or_the_clock(tmp_path):
    store = TimeBankStore(f"sqlite:///{tmp_path / 'timebank.db'}")
    live = LiveAlerts(store, SENSOR_MAP)
    try:
        assert live.ingest("B", "casas", []).accepted == 0  # home B's monitor is built
        started, release = threading.Event(), threading.Event()
        build = live._build
        builds: list[str] = []

        def slow_build(resident_id: str):
            builds.append(resident_id)
            if resident_id == "A":
                started.set()
                release.wait(20)  # home A's first contact takes long
            return build(resident_id)

        live._build = slow_build
        first = [threading.Thread(target=live.ingest, args=("A", "casas", [])) for _ in range(2)]
        first[0].start()
        assert started.wait(10)
        first[1].start()  # a second batch of home A waits for the one build
        t0 = time.monotonic()
        line = {"id": "b1", "line": "2024-01-01 08:00:00.000000 " + next(iter(SENSOR_MAP)) + " ON"}
        assert live.ingest("B", "casas", [line]).accepted == 1
        live.tick()
        waited = time.monotonic() - t0
        assert waited < 5, f"home B waited {waited:.1f} s on home A's build"
        assert first[0].is_alive()  # A is still being built meanwhile
        release.set()
        for t in first:
            t.join(20)
        assert builds == ["A"]  # built once, for both of A's batches
        assert set(live._homes) == {"A", "B"}
    finally:
        live.stop()
        store.close()
