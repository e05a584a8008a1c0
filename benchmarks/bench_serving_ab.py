"""Serving A/B: this checkout's server against an earlier revision's, both up at once, load interleaved.

    python -m benchmarks.bench_serving_ab --before REV [--workdir DIR] [--before-workdir DIR]
                                          [--rounds 4] [--requests 1000]

The earlier revision is checked out into a temporary git worktree. Each side serves a twin trained
by its own code: `--workdir` for this checkout (a trained TWINCARE_HOME, as for bench_serving) and
`--before-workdir` for the earlier one; a side without one simulates the default twin (2,000 x 730,
seed 7) and trains it with its own code first, as `bench_serving` does. Both servers then run at
once, and each round measures /healthz, /assess and /assess with act=false, at 1 and 50 clients, on
one side and then the other (the order alternates), with the same load generator (bench_serving's
`measure_latency`, aiohttp). Both sides see the same machine, so the comparison holds on a shared, noisy one
where a single run's ratio does not. The revision must have `benchmarks/bench_serving.py` with
`prepare_home` and `tests/e2e/conftest.py` with `start_server` (every revision since the service
has had them).

Writes benchmarks/results/serving_ab.json: per side and concurrency the median over rounds of each
figure and of each round's ratio to /healthz, and every round's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_serving import measure_latency

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "serving_ab.json"

# Run inside each side's own tree (its own modules first on the path): a trained home, the real
# server, then the address and a care manager's key written to OUT; serves until SIGTERM.
SIDE = """
import json, os, shutil, signal, sys, tempfile, time
from pathlib import Path
repo, workdir, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
sys.path.insert(0, repo)
os.chdir(repo)
from benchmarks.bench_serving import prepare_home
from features.online import OnlineStore
from tests.e2e.conftest import start_server, stop_server
tmp = Path(tempfile.mkdtemp(prefix="bench-ab-"))
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
try:
    home, keys, info = prepare_home(Path(workdir) if workdir else None, tmp)
    server = start_server(home, tmp)
    try:
        # (the earlier revision's Server may lack `failed`; BentoML's arbiter outlives a failed start-up)
        up = server.process.poll() is None and "startup failed" not in server.output()
        out.write_text(json.dumps({"url": server.url, "key": keys["care_manager"], "up": up, "info": info,
                                   "residents": OnlineStore(home / "online.db").resident_ids(),
                                   "log": "" if up else server.output()[-2000:]}))
        while up and not stop:
            time.sleep(0.5)
    finally:
        stop_server(server)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
"""


def start_side(repo: Path, workdir: Path | None, out: Path, log: Path) -> subprocess.Popen:
    script = out.with_suffix(".py")
    script.write_text(SIDE)
    return subprocess.Popen([sys.executable, str(script), str(repo), str(workdir or ""), str(out)],
                            cwd=repo, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_ready(sides: dict[str, tuple[subprocess.Popen, Path, Path]], timeout: float) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    ready: dict[str, dict] = {}
    while len(ready) < len(sides):
        for name, (proc, out, log) in sides.items():
            if name in ready:
                continue
            if out.exists():
                ready[name] = json.loads(out.read_text())
                if not ready[name]["up"]:
                    raise SystemExit(f"{name}: the server did not start:\n{ready[name]['log']}")
            elif proc.poll() is not None:
                raise SystemExit(f"{name}: the side exited:\n{log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit("the servers were not ready in time")
        time.sleep(1)
    return ready


def summary(rounds: list[dict]) -> dict:
    out: dict = {}
    for clients in ("clients_1", "clients_50"):
        cells = [r[clients] for r in rounds]

        def med(route: str, key: str, cells: list[dict] = cells) -> float:
            return round(statistics.median(c[route][key] for c in cells), 3)

        def ratio(route: str, key: str, cells: list[dict] = cells) -> float:
            return round(statistics.median(c[route][key] / c["healthz"][key] for c in cells), 2)

        out[clients] = {
            "healthz_p50_ms": med("healthz", "p50_ms"),
            "healthz_p99_ms": med("healthz", "p99_ms"),
            "assess_p50_ms": med("assess", "p50_ms"),
            "assess_p99_ms": med("assess", "p99_ms"),
            "assess_rps": med("assess", "throughput_rps"),
            "assess_without_actions_p50_ms": med("assess_without_actions", "p50_ms"),
            "assess_without_actions_rps": med("assess_without_actions", "throughput_rps"),
            "p50_ratio": ratio("assess", "p50_ms"),
            "p99_ratio": ratio("assess", "p99_ms"),
            "errors": sum(c[r]["errors"] for c in cells for r in ("healthz", "assess", "assess_without_actions")),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the earlier revision (any git rev)")
    parser.add_argument("--workdir", type=Path, default=None, help="a trained TWINCARE_HOME for this checkout")
    parser.add_argument("--before-workdir", type=Path, default=None, help="one trained by the earlier revision")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=1000, help="requests per route, concurrency and round")
    args = parser.parse_args()

    before = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.strip()
    after = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench-serving-ab-") as d:
        tmp = Path(d)
        tree = tmp / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), before], cwd=REPO, check=True,
                       capture_output=True)
        procs: dict[str, tuple[subprocess.Popen, Path, Path]] = {}
        try:
            for name, repo, workdir in (("before", tree, args.before_workdir), ("after", REPO, args.workdir)):
                out, log = tmp / f"{name}.json", tmp / f"{name}.log"
                procs[name] = (start_side(repo, workdir, out, log), out, log)
            sides = wait_ready(procs, timeout=1800)
            rounds: dict[str, list[dict]] = {name: [] for name in sides}
            for k in range(args.rounds):
                for name in (("before", "after") if k % 2 == 0 else ("after", "before")):
                    side = sides[name]
                    rounds[name].append(measure_latency(side["url"], {"care_manager": side["key"]},
                                                        side["residents"], args.requests))
                    print(k, name, json.dumps(summary(rounds[name][-1:])), flush=True)
        finally:
            for proc, _, _ in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc, _, _ in procs.values():
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)
    result = {
        "benchmark": "serving_ab",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg(),
                    "note": "2 cores shared with other work; both sides measured in the same run, interleaved"},
        "revisions": {"before": before, "after": after},
        "twins": {name: {"residents": len(side["residents"]), **side["info"]} for name, side in sides.items()},
        "load": "aiohttp, 1 and 50 concurrent clients, one resident per /assess",
        "rounds": args.rounds,
        "requests_per_phase": args.requests,
        "median_over_rounds": {name: summary(rows) for name, rows in rounds.items()},
        "per_round": rounds,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median_over_rounds"], indent=2))


if __name__ == "__main__":
    main()
