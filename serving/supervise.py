"""Run `bentoml serve` as a child and own its whole process tree.

BentoML starts its worker in a session of its own, so a signal to the server's process group
does not reach it, and a killed server leaves the worker holding the port. The supervisor keeps
every process of the tree (pid and start time) in `<workdir>/serve.pids`, stops the whole tree
on SIGTERM or SIGINT, and at the next start stops whatever a previous, killed supervisor left
behind (matched by pid *and* start time, so a recycled pid is never touched).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

PID_FILE = "serve.pids"
GRACE_S = 10.0


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return [root]


def _record(path: Path, procs: Sequence[psutil.Process]) -> None:
    rows = []
    for p in procs:
        try:
            rows.append({"pid": p.pid, "started": p.create_time()})
        except psutil.Error:
            continue
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(rows))
    os.replace(tmp, path)


def stop_tree(procs: Sequence[psutil.Process], grace_s: float = GRACE_S) -> None:
    """SIGTERM every process, wait up to `grace_s`, then SIGKILL the ones still alive."""
    alive = []
    for p in procs:
        try:
            p.terminate()
            alive.append(p)
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(alive, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(alive, timeout=5)


def reap_leftovers(workdir: Path) -> int:
    """Stop the processes a previous supervisor recorded and left running; returns how many."""
    path = workdir / PID_FILE
    try:
        rows = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return 0
    found = []
    for row in rows if isinstance(rows, list) else []:
        try:
            p = psutil.Process(int(row["pid"]))
            if abs(p.create_time() - float(row["started"])) < 0.01 and p.pid != os.getpid():
                found.append(p)
        except (psutil.Error, KeyError, TypeError, ValueError):
            continue
    if found:
        stop_tree(found)
    path.unlink(missing_ok=True)
    return len(found)


def supervise(cmd: Sequence[str], env: dict[str, str], workdir: Path) -> int:
    """Run `cmd` until it exits or we are told to stop; returns its exit code (or 128+signal)."""
    workdir.mkdir(parents=True, exist_ok=True)
    left = reap_leftovers(workdir)
    if left:
        print(f"stopped {left} process(es) left by a previous server", file=sys.stderr, flush=True)
    path = workdir / PID_FILE
    stop = {"signal": 0}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    child = subprocess.Popen(list(cmd), env=env)
    root = psutil.Process(child.pid)
    known: list[psutil.Process] = [psutil.Process(), root]
    try:
        while child.poll() is None and not stop["signal"]:
            tree = _tree(root)
            if {p.pid for p in tree} - {p.pid for p in known}:
                known = [psutil.Process(), *tree]
                _record(path, known)
            elif not path.exists():
                _record(path, known)
            time.sleep(0.5)
    finally:
        stop_tree(_tree(root) + [p for p in known[1:] if p.is_running()])
        path.unlink(missing_ok=True)
    if stop["signal"]:
        return 128 + stop["signal"]
    return child.returncode or 0
