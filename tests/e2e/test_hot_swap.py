"""The real server under a bounded load while a new champion is promoted: no request fails and
the responses switch to the new version (and stay there)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.e2e.conftest import fresh_home, start_server, stop_server
from tests.serving.test_api import serving_home  # noqa: F401  (session fixture: trained workdir)
from tests.serving.test_hot_swap import register_copy

pytestmark = pytest.mark.e2e

CLIENTS = 4


def test_a_promoted_champion_is_swapped_in_under_load_with_no_failed_request(serving_home, tmp_path):  # noqa: F811
    from models.registry import default_tracking_uri
    from training.tracking import CHAMPION, alias_version, set_alias

    trained, keys = serving_home
    home = fresh_home(trained, tmp_path / "home")
    server = start_server(home, tmp_path, env={"TWINCARE_MODEL_POLL_SECONDS": "1"})
    assert not server.failed(), server.output()[-3000:]
    uri = default_tracking_uri(home)
    old = alias_version(uri, "fall_risk", CHAMPION)
    stop = threading.Event()
    seen: list[tuple[float, int, str | None]] = []
    lock = threading.Lock()

    def load():
        body = {"resident_ids": ["R000001", "R000002"], "act": False, "models": ["fall_risk"]}
        with httpx.Client(base_url=server.url, headers={"X-API-Key": keys["care_manager"]}, timeout=30) as c:
            while not stop.is_set():
                try:
                    r = c.post("/assess", json=body)
                    version = r.json().get("model_versions", {}).get("fall_risk") if r.status_code == 200 else None
                    status = r.status_code
                except httpx.HTTPError as exc:
                    status, version = -1, type(exc).__name__
                with lock:
                    seen.append((time.monotonic(), status, version))

    threads = [threading.Thread(target=load) for _ in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        time.sleep(3)
        new = register_copy(uri, "fall_risk", old, shift=0.5)
        promoted_at = time.monotonic()
        set_alias(uri, "fall_risk", CHAMPION, new)  # what `twincare promote` does once the gate passes
        deadline = promoted_at + 60
        while time.monotonic() < deadline:
            with lock:
                if any(v == new for _, _, v in seen):
                    break
            time.sleep(0.2)
        time.sleep(3)  # keep the load on after the swap
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        metrics = httpx.get(f"{server.url}/metrics", headers={"X-API-Key": keys["admin"]}, timeout=10)
        stop_server(server)

    failed = [(s, v) for _, s, v in seen if s != 200]
    assert not failed, f"{len(failed)} of {len(seen)} requests failed: {failed[:5]}"
    versions = [v for _, _, v in sorted(seen)]
    assert versions[0] == old and versions[-1] == new, (old, new, versions[:3], versions[-3:])
    first_new = next(i for i, v in enumerate(versions) if v == new)
    late_old = sum(v == old for v in versions[first_new + CLIENTS:])  # requests already in flight aside
    assert late_old == 0, f"{late_old} responses came from v{old} after v{new} was served"
    switch = next(t for t, _, v in sorted(seen) if v == new) - promoted_at
    assert switch < 30, f"the new champion took {switch:.1f}s to be served"
    assert len(seen) > 20
    assert ready.status_code == 200 and ready.json()["models"]["fall_risk"] == new
    gauge = [line for line in metrics.text.splitlines()
             if line.startswith("twincare_model_version{") and 'model="fall_risk"' in line]
    assert gauge and all(line.endswith(f" {float(new)}") for line in gauge), gauge
