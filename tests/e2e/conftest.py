"""End-to-end fixtures: a trained workdir and the real `bentoml serve` process on a free port."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import Receiver
from tests.serving.test_api import serving_home  # noqa: F401  (session fixture: trained workdir)

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_home(trained: Path, dest: Path) -> Path:
    """A private TWINCARE_HOME from a trained one: same models, own history copy and task store."""
    dest.mkdir(parents=True)
    for name in ("mlflow.db", "online.db", "api_keys.json", "volunteer.secret"):
        shutil.copy(trained / name, dest / name)
    shutil.copytree(trained / "history", dest / "history")
    return dest


@dataclass
class Server:
    url: str
    home: Path
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def failed(self) -> bool:
        """The process exited, or the app's start-up failed (BentoML's arbiter then stays alive
        and starts the worker again, so the process alone does not tell)."""
        return self.process.poll() is not None or "startup failed" in self.output()


def server_env(home: Path, tmp: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINCARE_")}
    env.update(extra or {})
    env.update(
        TWINCARE_HOME=str(home),
        BENTOML_HOME=str(tmp / "bentoml"),
        BENTOML_DO_NOT_TRACK="True",
        PYTHONUNBUFFERED="1",
    )
    return env


def start_server(home: Path, tmp: Path, *, wait: float = 180.0, env: dict[str, str] | None = None) -> Server:
    """Start `bentoml serve serving.service:TwinCare` and wait for /readyz (or its exit)."""
    port = free_port()
    log = tmp / f"server-{port}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:TwinCare",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=server_env(home, tmp, env), stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(f"http://127.0.0.1:{port}", home, proc, log)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if server.failed():
            return server
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"the server did not become ready in {wait:.0f}s:\n{server.output()[-3000:]}")


def kill_tree(pid: int) -> None:
    """SIGKILL a server and every process under it (BentoML's workers run in sessions of their own)."""
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        for proc in [*root.children(recursive=True), root]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill_tree(server.process.pid)
            server.process.wait(timeout=10)


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on loopback that records every task event POSTed to it."""
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture(scope="session")
def live_server(serving_home, tmp_path_factory, webhook_receiver) -> Iterator[tuple[Server, dict[str, str]]]:  # noqa: F811
    """The real server on a private copy of the trained workdir, sending task events to
    `webhook_receiver`; yields (server, role -> key)."""
    trained, keys = serving_home
    tmp = tmp_path_factory.mktemp("live")
    server = start_server(fresh_home(trained, tmp / "home"), tmp, env={"TWINCARE_WEBHOOK_URL": webhook_receiver.url,
                                                                  "TWINCARE_VISIT_FLUSH_S": "1"})
    if server.failed():
        stop_server(server)
        raise RuntimeError(f"the server exited at start-up:\n{server.output()[-3000:]}")
    try:
        yield server, keys
    finally:
        stop_server(server)
