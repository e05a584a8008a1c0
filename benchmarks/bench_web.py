"""Web page benchmark: time from navigation to the ranked list drawn, and to a resident view drawn,
measured in the browser (Debian's Chromium driven by Playwright) against the real server.

    python -m benchmarks.bench_web [--workdir DIR] [--runs N]

Without --workdir it simulates the default twin (2,000 residents x 730 days, seed 7, ending
yesterday), trains the three models, then scores eight past weeks and tonight (as `make demo`
does), in a temporary folder. With --workdir it copies a trained TWINCARE_HOME (its task store
too, when it has one). The times are the page's own `performance.now()` when a view has drawn
its data and charts (ms since navigation started); the first run fetches the page and ECharts,
later runs load them from the browser's cache. The JSON request's own time is reported beside.

Writes benchmarks/results/web.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "web.json"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
PAST_WEEKS = 8


def score_nights(home: Path) -> dict:
    """Scores of the past weeks and tonight, tasks opened (the demo's nightly batch)."""
    from serving.batch import score_all, score_past
    from serving.config import ServingConfig
    from serving.runtime import build_runtime

    rt = build_runtime(ServingConfig.from_env({"TWINCARE_HOME": str(home)}), need_keys=False)
    try:
        t0 = time.perf_counter()
        past = score_past(rt, PAST_WEEKS)
        tonight = score_all(rt)
        return {"past_scores": past, "scores": tonight.scores_stored, "tasks_opened": tonight.tasks_opened,
                "score_seconds": round(time.perf_counter() - t0, 1)}
    finally:
        rt.close()


def prepare_home(workdir: Path | None, tmp: Path) -> tuple[Path, dict[str, str], dict]:
    from serving.auth import DEMO_KEYS, create_keys_file

    home = tmp / "home"
    info: dict = {}
    if workdir is not None:
        home.mkdir()
        for name in ("mlflow.db", "online.db", "timebank.db"):
            if (workdir / name).exists():
                shutil.copy(workdir / name, home / name)
        shutil.copytree(workdir / "history", home / "history")
        info["source"] = str(workdir)
        if not (home / "timebank.db").exists():
            info.update(score_nights(home))
    else:
        from tests.serving.test_api import build_workdir
        from twin.simulate import simulate

        start = (date.today() - timedelta(days=730)).isoformat()
        t0 = time.perf_counter()
        simulate(out=home / "history", residents=2000, days=730, seed=7, start=start)
        info["simulate_seconds"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        build_workdir(home / "history", home, trees=200)
        info["train_seconds"] = round(time.perf_counter() - t0, 1)
        info["source"] = f"default twin 2000 x 730, seed 7, from {start}; default booster settings"
        info.update(score_nights(home))
    clear = create_keys_file(home / "api_keys.json", overwrite=True)
    roles = dict(DEMO_KEYS)
    return home, {roles[n]: k for n, k in clear.items() if n in roles}, info  # volunteers hold keys too


def _timed_view(context, url: str, view: str, api_path: str) -> dict:
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("(v) => window.twincareDrawn && window.twincareDrawn[v] > 0", arg=view, timeout=120_000)
    out = page.evaluate(
        """([v, path]) => {
          const nav = performance.getEntriesByType('navigation')[0];
          const req = performance.getEntriesByType('resource').filter(e => e.name.includes(path)).pop();
          return {drawn_ms: window.twincareDrawn[v], data_ms: window.twincareDrawn[v + ':data'], dom_content_loaded_ms: nav.domContentLoadedEventEnd,
                  api_ms: req ? req.duration : null, items: document.querySelectorAll('#risk-list li.risk-item').length,
                  charts: document.querySelectorAll('#main .chart svg, #main .spark svg').length};
        }""",
        [view, api_path],
    )
    page.close()
    return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in out.items()}


def measure(url: str, key: str, runs: int) -> dict:
    import httpx
    from playwright.sync_api import sync_playwright

    ranked = httpx.get(f"{url}/cockpit/at-risk", params={"limit": 1}, headers={"X-API-Key": key}, timeout=120).json()
    resident = ranked["items"][0]["resident_id"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            r = context.request.post(f"{url}/session", headers={"X-API-Key": key})
            assert r.ok, r.text()
            at_risk = [_timed_view(context, f"{url}/#/at-risk", "at-risk", "/cockpit/at-risk") for _ in range(runs)]
            one = [_timed_view(context, f"{url}/#/resident/{resident}", "resident", "/cockpit/residents/") for _ in range(runs)]
        finally:
            browser.close()

    def summary(rows: list[dict]) -> dict:
        warm = rows[1:] or rows
        return {
            "first_run_drawn_ms": rows[0]["drawn_ms"],
            "median_drawn_ms": round(statistics.median(r["drawn_ms"] for r in warm), 1),
            "median_data_arrived_ms": round(statistics.median(r["data_ms"] for r in warm), 1),
            "median_api_ms": round(statistics.median(r["api_ms"] for r in warm if r["api_ms"] is not None), 1),
            "median_dom_content_loaded_ms": round(statistics.median(r["dom_content_loaded_ms"] for r in warm), 1),
            "runs": rows,
        }

    return {"ranked_list": summary(at_risk), "resident_view": {"resident_id": resident, **summary(one)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="a trained TWINCARE_HOME to copy")
    parser.add_argument("--runs", type=int, default=6, help="page loads per view (the first one cold)")
    args = parser.parse_args()

    from tests.e2e.conftest import start_server, stop_server

    with tempfile.TemporaryDirectory(prefix="bench-web-") as d:
        tmp = Path(d)
        home, keys, data = prepare_home(args.workdir, tmp)
        from features.online import OnlineStore

        online = OnlineStore(home / "online.db")
        data["residents"] = len(online.resident_ids())
        data["features_as_of"] = str(online.as_of.date()) if online.as_of is not None else None
        server = start_server(home, tmp)
        try:
            if server.failed():
                raise SystemExit(f"the server did not start:\n{server.output()[-2000:]}")
            timings = measure(server.url, keys["care_manager"], args.runs)
        finally:
            stop_server(server)
    result = {
        "benchmark": "web",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "browser": "Debian chromium, headless",
                    "note": "2 cores shared with other work"},
        "data": data,
        "what": "ms from navigation start to the view drawn with its data and charts (the page's performance.now()); "
                "ranked list = 50 residents with trend sparklines; resident = the top-ranked resident",
        **timings,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "runs"} if isinstance(v, dict) else v
                      for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
