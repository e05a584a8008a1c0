"""Process hygiene: `python -m serving serve` (what `twincare serve` becomes) stops its whole tree
on SIGTERM and SIGINT, and a start after its supervisor was SIGKILLed stops what was left and serves."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from tests.e2e.conftest import REPO, free_port, fresh_home, server_env
from tests.serving.test_api import serving_home  # noqa: F401  (session fixture: trained workdir)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.reliability]


def _serve(home, tmp, port) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "serving", "serve", "--port", str(port)], cwd=REPO,
                            env=server_env(home, tmp), stdout=(tmp / f"serve-{time.monotonic_ns()}.log").open("wb"),
                            stderr=subprocess.STDOUT)


def _ready(port: int, proc: subprocess.Popen, wait: float = 240) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("not ready")


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _port_free(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1)
        return False
    except httpx.HTTPError:
        return True


def test_serve_stops_its_whole_tree_and_restarts_after_a_kill(serving_home, tmp_path):  # noqa: F811
    home = fresh_home(serving_home[0], tmp_path / "home")
    port = free_port()
    for sig in (signal.SIGTERM, signal.SIGINT):
        proc = _serve(home, tmp_path, port)
        _ready(port, proc)
        tree = _tree(proc.pid)
        assert len(tree) >= 3, "supervisor, bentoml serve and its worker"
        proc.send_signal(sig)
        proc.wait(timeout=60)
        gone, alive = psutil.wait_procs(tree, timeout=30)
        assert not alive, f"{sig.name} left {[p.pid for p in alive]} running"
        assert _port_free(port) and not (home / "serve.pids").exists()

    # the supervisor dies without a word: its server and worker keep the port ...
    proc = _serve(home, tmp_path, port)
    _ready(port, proc)
    time.sleep(1.5)  # the pid file has caught up with the whole tree
    orphans = _tree(proc.pid)[1:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert any(p.is_running() for p in orphans) and not _port_free(port)
    # ... and the next start stops them and serves on the same port
    again = _serve(home, tmp_path, port)
    try:
        _ready(port, again)
        gone, alive = psutil.wait_procs(orphans, timeout=30)
        assert not alive
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=60)
