"""Live events benchmark: POST /events throughput and latency for 200 homes, the alerts' delay from
planted incidents, and no acknowledged event lost when the server is SIGKILLed under load.

    python -m benchmarks.bench_live [--homes 200] [--days 30] [--workdir DIR]
    python -m benchmarks.bench_live --paced-minutes 5 --days 16   # 200 gateways at their real rate

Without --workdir it simulates the test twin (300 residents x 300 days, seed 11) and trains the
models on it (the events do not use them, the server needs them to start). The event twin covers
the last `--days` days of `--homes` residents (seed 5). Against the real server (`bentoml serve`):
0. the homes' older days are written into the store directly (what a server that has been taking
   them would hold); each home's monitor learns from them when its first batch arrives;
1. history: the `--http-days` days before the last through the route, one batch per home-day,
   8 clients at once (the bulk rate);
2. live: the last day's first `--live-hours` hours as 200 gateways send them, one batch per home
   per simulated minute (with the gateway's clock), as fast as the server takes them (8 clients);
   the rate needed in real time is 200 batches a minute;
3. delay: every alert the server raised (steps 1, 2 and 4) against the twin's planted incidents
   of those days: the rule's delay (limit passed - incident start) and the server's (raised -
   incident start), with 95% bootstrap intervals over incidents; recall; false alarms per
   resident-month;
4. SIGKILL: the next `--kill-hours` in 5-minute batches, the server killed mid-stream, restarted;
   every event of an acknowledged batch must be stored; then everything is resent (idempotent).

Writes benchmarks/results/live.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).parent / "results" / "live.json"
CLIENTS = 8
GRACE = pd.Timedelta(minutes=30)
TOILET_GRACE = pd.Timedelta(hours=6)


def pct(values, q) -> float | None:
    return None if not len(values) else round(float(np.percentile(np.asarray(values), q)), 1)


def items(ev: pd.DataFrame) -> list[dict]:
    stamps = ev["time"].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    return [{"id": i, "line": f"{t} {s} {v}"} for i, t, s, v in
            zip(ev["event_id"], stamps, ev["sensor"], ev["value"], strict=True)]


async def send_all(url: str, batches: list[tuple[str, dict]], keys: dict[str, str], clients: int = CLIENTS,
                   stop_after: float | None = None) -> dict:
    """POST every (resident, body) in order per home (one client per home at a time); latency of each."""
    import httpx

    by_home: dict[str, list[dict]] = {}
    for rid, body in batches:
        by_home.setdefault(rid, []).append(body)
    queue: asyncio.Queue = asyncio.Queue()
    for rid in by_home:
        queue.put_nowait(rid)
    lat: list[float] = []
    acked: list[str] = []
    errors: list[str] = []
    events = 0
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        async def worker() -> None:
            nonlocal events
            while True:
                try:
                    rid = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                # a home's batches one after the other, a minute at a time, interleaved with the
                # other homes': take the home's next batch, then put the home back in line
                body = by_home[rid].pop(0)
                s = time.perf_counter()
                try:
                    r = await client.post("/events", json=body, headers={"X-API-Key": keys[rid]})
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                    if stop_after is not None:
                        return
                else:
                    lat.append((time.perf_counter() - s) * 1000)
                    if r.status_code == 200:
                        acked.extend(e["id"] for e in body["events"])
                        events += len(body["events"])
                    else:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                if by_home[rid]:
                    queue.put_nowait(rid)

        await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - t0
    return {"batches": len(lat), "events": events, "seconds": round(wall, 1),
            "events_per_s": round(events / wall, 1), "batches_per_s": round(len(lat) / wall, 1),
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "errors": len(errors), "error_examples": errors[:5],
            "acked": acked}


def minute_batches(twin_events: pd.DataFrame, lo: pd.Timestamp, hi: pd.Timestamp, minutes: int) -> list[tuple[str, dict]]:
    """Per home and per `minutes` of the home clock in [lo, hi): one batch with the gateway's clock."""
    out = []
    ev = twin_events[(twin_events["time"] >= lo) & (twin_events["time"] < hi)]
    step = pd.Timedelta(minutes=minutes)
    slot = ((ev["time"] - lo) // step).astype(int)
    groups = {k: g for k, g in ev.groupby([ev["resident_id"], slot])}
    n = int(np.ceil((hi - lo) / step))
    for k in range(n):
        for rid in sorted(twin_events["resident_id"].unique()):
            g = groups.get((rid, k))
            part = items(g) if g is not None else []
            out.append((rid, {"events": part, "sent_at": (lo + (k + 1) * step).isoformat()}))
    return out


def delays(alerts: pd.DataFrame, incidents: pd.DataFrame, eligible_from: pd.Timestamp, alerts_end: pd.Timestamp) -> dict:
    from models.alerts import INCIDENT_OF

    out = {}
    inc = incidents[(incidents["start"] >= eligible_from) & (incidents["start"] < alerts_end)]
    for kind, group in inc.groupby("kind"):
        rule, raised, found = [], [], 0
        for r in group.itertuples():
            grace = TOILET_GRACE if kind == "toilet_surge" else GRACE
            hit = alerts[(alerts["resident_id"] == r.resident_id) & (alerts["kind"].map(INCIDENT_OF) == kind)
                         & (alerts["due_at"] >= r.start) & (alerts["due_at"] <= r.end + grace)]
            if len(hit):
                found += 1
                first = hit.sort_values("due_at").iloc[0]
                rule.append((first["due_at"] - r.start).total_seconds() / 60)
                raised.append((first["raised_at"] - r.start).total_seconds() / 60)
        out[kind] = {"incidents": len(group), "recall": round(found / len(group), 3),
                     "rule_delay_min": {"median": pct(rule, 50), "p90": pct(rule, 90)},
                     "raised_delay_min": {"median": pct(raised, 50), "median_95ci": boot(raised, 50),
                                          "p90": pct(raised, 90), "p90_95ci": boot(raised, 90)}}
    return out


def false_alarms(alerts: pd.DataFrame, incidents: pd.DataFrame, eligible_from: pd.Timestamp, end: pd.Timestamp,
                 homes: int) -> dict:
    from models.alerts import INCIDENT_OF

    a = alerts[alerts["due_at"] >= eligible_from]
    false = 0
    for r in a.itertuples():
        kind = INCIDENT_OF[r.kind]
        grace = TOILET_GRACE if kind == "toilet_surge" else GRACE
        m = incidents[(incidents["resident_id"] == r.resident_id) & (incidents["kind"] == kind)
                      & (incidents["start"] <= r.due_at) & (incidents["end"] + grace >= r.due_at)]
        false += m.empty
    months = homes * (end - eligible_from).total_seconds() / 86400 / 30.44
    return {"alerts": len(a), "false": int(false), "resident_months": round(months, 1),
            "false_alarms_per_resident_month": round(false / months, 2) if months else None}


def preload(home: Path, ev: pd.DataFrame) -> None:
    """Write events into the store as the route would have (ids, times, arrival order)."""
    from serving.store import TimeBankStore
    from serving.store.live import DeviceEvent, LiveStore

    store = TimeBankStore(f"sqlite:///{home / 'timebank.db'}")
    live = LiveStore(store)
    for rid, g in ev.groupby("resident_id", sort=True):
        rows = [DeviceEvent(i, t, sn, v) for i, t, sn, v in
                zip(g["event_id"], g["time"].dt.to_pydatetime(), g["sensor"], g["value"], strict=True)]
        with store.engine.begin() as conn:
            live.add_events(conn, str(rid), rows, store.now())
    store.close()


def boot(values: list[float], q: float, n: int = 2000, seed: int = 0) -> list[float] | None:
    """95% bootstrap interval of a percentile (resampling incidents)."""
    if len(values) < 3:
        return None
    rng = np.random.default_rng(seed)
    v = np.asarray(values)
    stats = [np.percentile(rng.choice(v, len(v)), q) for _ in range(n)]
    return [round(float(np.percentile(stats, 2.5)), 1), round(float(np.percentile(stats, 97.5)), 1)]


async def paced(url: str, batches: list[tuple[str, dict]], keys: dict[str, str], per_minute: int) -> dict:
    """Send the batches at `per_minute` a minute, evenly spaced (each home's in order), open loop."""
    import httpx

    lat: list[float] = []
    errors: list[str] = []
    gap = 60.0 / per_minute
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=400)) as client:
        async def one(k: int, rid: str, body: dict) -> None:
            await asyncio.sleep(max(0.0, t0 + k * gap - time.perf_counter()))
            s = time.perf_counter()
            r = await client.post("/events", json=body, headers={"X-API-Key": keys[rid]})
            lat.append((time.perf_counter() - s) * 1000)
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.text[:200]}")

        await asyncio.gather(*(one(k, rid, body) for k, (rid, body) in enumerate(batches)))
    return {"batches": len(lat), "seconds": round(time.perf_counter() - t0, 1), "per_minute": per_minute,
            "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90), "p99_ms": pct(lat, 99), "max_ms": pct(lat, 100),
            "errors": len(errors), "error_examples": errors[:5]}


def homes_with_events(home: Path, homes: int, days: int, workdir: Path | None = None):
    """A trained TWINCARE_HOME (copied from `workdir`, or the test twin simulated and trained), the
    event twin of the last `days` days of its first `homes` residents with days in them, their gateway keys and the sensor
    map; returns (event twin, resident id -> device key)."""
    from tests.serving.test_live import gateway_keys
    from twin.events import SENSOR_MAP, simulate_events
    from twin.store import HistoryStore

    if workdir:
        shutil.copytree(workdir, home, ignore=shutil.ignore_patterns("timebank.db*"))
    else:
        from tests.conftest import SMALL_TWIN
        from tests.serving.test_api import build_workdir
        from twin.simulate import simulate

        simulate(out=home / "history", **SMALL_TWIN)
        build_workdir(home / "history", home)
    hist = HistoryStore(home / "history")
    residents = hist.read("residents")
    sd = hist.read("sensor_days")
    sd = sd[sd["date"] > sd["date"].max() - pd.Timedelta(days=days)]
    chosen = sorted(set(sd["resident_id"]))[:homes]  # residents still at home in those days
    twin = simulate_events(residents, sd, seed=5, resident_ids=chosen)
    clear = gateway_keys(home, chosen)
    (home / "sensor_map.json").write_text(json.dumps(SENSOR_MAP))
    return twin, {r: clear[f"gateway-{r}"] for r in chosen}


def main_paced(args) -> None:
    """200 gateways at their real rate (a batch a minute each) for `--paced-minutes` minutes."""
    import psutil

    from tests.e2e.conftest import start_server, stop_server

    tmp = Path(tempfile.mkdtemp(prefix="bench-live-paced-"))
    home = tmp / "home"
    twin, keys = homes_with_events(home, args.homes, args.days, args.workdir)
    ev = twin.events
    homes = sorted(ev["resident_id"].unique())
    last_day = ev["time"].max().normalize()
    start = last_day + pd.Timedelta(hours=7)  # the morning: people get up, more events a minute
    preload(home, ev[ev["time"] < start])
    server = start_server(home, tmp, env={"TWINCARE_ALERT_TICK_SECONDS": "15", "TWINCARE_MODEL_POLL_SECONDS": "0"})
    try:
        # first contact: each home's monitor learns from its stored days (once per process)
        warm = minute_batches(ev[ev["resident_id"].isin(homes)], start, start + pd.Timedelta(minutes=1), 1)
        first = asyncio.run(send_all(server.url, warm, keys))
        batches = minute_batches(ev, start + pd.Timedelta(minutes=1),
                                 start + pd.Timedelta(minutes=1 + args.paced_minutes), 1)
        result = asyncio.run(paced(server.url, batches, keys, per_minute=len(homes)))
        events = sum(len(b["events"]) for _, b in batches)
    finally:
        stop_server(server)
    log = server.output().splitlines()
    problems = [line for line in log if "ERROR" in line or "Traceback" in line or "Error" in line]
    out = {"benchmark": "live_paced",
           "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version(),
                       "note": "2 cores shared with other work; client and server on the same machine"},
           "homes": len(homes), "window": f"{start} + {args.paced_minutes} min (home clock)",
           "first_contact": {k: v for k, v in first.items() if k != "acked"},
           "paced": {**result, "events": events},
           "server_log_problems": problems[:40]}
    path = RESULTS.with_name("live_paced.json")
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps(out, indent=2, default=str))
    shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--live-hours", type=float, default=2.0)
    parser.add_argument("--kill-hours", type=float, default=2.0)
    parser.add_argument("--http-days", type=int, default=5)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--paced-minutes", type=int, default=0,
                        help="Only the real-rate run: every home sends a batch a minute for this many minutes "
                             "(writes results/live_paced.json).")
    args = parser.parse_args()
    if args.paced_minutes:
        return main_paced(args)

    import psutil

    from serving.store import TimeBankStore
    from serving.store.live import LiveStore
    from tests.e2e.conftest import kill_tree, start_server, stop_server

    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    home = tmp / "home"
    t_setup = time.perf_counter()
    twin, keys = homes_with_events(home, args.homes, args.days, args.workdir)
    ev = twin.events
    chosen = sorted(keys)
    setup_s = time.perf_counter() - t_setup
    env = {"TWINCARE_ALERT_TICK_SECONDS": "5", "TWINCARE_MODEL_POLL_SECONDS": "0"}
    last_day = ev["time"].max().normalize()
    day0 = ev["time"].min().normalize()
    print(f"{len(ev)} events of {len(chosen)} homes, {day0.date()} to {last_day.date()}; setup {setup_s:.0f}s", flush=True)

    http_from = last_day - pd.Timedelta(days=args.http_days)
    t_pre = time.perf_counter()
    preload(home, ev[ev["time"] < http_from])
    preload_s = time.perf_counter() - t_pre
    print(f"preloaded {int((ev['time'] < http_from).sum())} events in {preload_s:.0f}s", flush=True)
    server = start_server(home, tmp, env=env)
    result: dict = {}
    try:
        part = ev[(ev["time"] >= http_from) & (ev["time"] < last_day)]
        hist_batches = [(rid, {"events": items(g)}) for (rid, _), g in
                        part.groupby(["resident_id", part["time"].dt.normalize()])]
        r1 = asyncio.run(send_all(server.url, hist_batches, keys))
        print("history", {k: v for k, v in r1.items() if k != "acked"}, flush=True)
        live_hi = last_day + pd.Timedelta(hours=args.live_hours)
        r2 = asyncio.run(send_all(server.url, minute_batches(ev, last_day, live_hi, 1), keys))
        print("live", {k: v for k, v in r2.items() if k != "acked"}, flush=True)

        # SIGKILL mid-stream: the rest of the last day, killed after a few seconds of load
        rest_hi = live_hi + pd.Timedelta(hours=args.kill_hours)
        rest = minute_batches(ev, live_hi, rest_hi, 5)
        rest_ids = {e["id"] for _, b in rest for e in b["events"]}

        async def killed_run() -> dict:
            async def killer() -> None:
                await asyncio.sleep(8)
                kill_tree(server.process.pid)
            k = asyncio.create_task(killer())
            res = await send_all(server.url, rest, keys, stop_after=0)
            await k
            return res

        r3 = asyncio.run(killed_run())
        server.process.wait(timeout=30)
        acked = set(r3["acked"]) & rest_ids
        store = TimeBankStore(f"sqlite:///{home / 'timebank.db'}")
        stored_after_kill = {e for _, e in LiveStore(store).event_ids()}
        store.close()
        lost = sorted(acked - stored_after_kill)
        print(f"killed: {len(acked)} events acknowledged, {len(lost)} of them lost", flush=True)
        server = start_server(home, tmp, env=env)
        r4 = asyncio.run(send_all(server.url, rest, keys))
        time.sleep(8)  # a tick of the alert clock (escalations, visits) after the last batch

        store = TimeBankStore(f"sqlite:///{home / 'timebank.db'}")
        live = LiveStore(store)
        total_stored = live.event_count()
        alerts = pd.DataFrame([a.to_dict() for a in live.list_alerts(limit=100_000)])
        store.close()
        for c in ("due_at", "raised_at", "since"):
            alerts[c] = pd.to_datetime(alerts[c])
        eligible = http_from
        live_alerts = alerts[(alerts["due_at"] >= last_day) & (alerts["raised_at"] < live_hi)]
        result = {
            "benchmark": "live",
            "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version(),
                        "note": "2 cores shared with other work; client and server on the same machine"},
            "data": {"homes": len(chosen), "days": args.days, "events": int(len(ev)),
                     "preloaded_events": int((ev["time"] < http_from).sum()), "preload_s": round(preload_s),
                     "through_the_route_from": str(http_from.date()),
                     "first_day": str(day0.date()), "last_day": str(last_day.date()),
                     "events_per_home_day": round(len(ev) / len(chosen) / args.days, 1)},
            "history_load": {k: v for k, v in r1.items() if k != "acked"},
            "live_minute_batches": {**{k: v for k, v in r2.items() if k != "acked"},
                                    "needed_batches_per_s_real_time": round(len(chosen) / 60, 2),
                                    "headroom_x": round(r2["batches_per_s"] / (len(chosen) / 60), 1),
                                    "alerts_raised": int(len(live_alerts)),
                                    "raised_after_limit_s_max": None if live_alerts.empty else
                                    float((live_alerts["raised_at"] - live_alerts["due_at"]).dt.total_seconds().max())},
            "sigkill": {"events_acknowledged_before_kill": len(acked), "acknowledged_lost": len(lost),
                        "lost_examples": lost[:5], "batches_before_kill": r3["batches"],
                        "resend_after_restart": {k: v for k, v in r4.items() if k != "acked"},
                        "events_stored_at_end": total_stored, "events_sent": int((ev["time"] < rest_hi).sum())},
            "delay": delays(alerts, twin.incidents, eligible, rest_hi - pd.Timedelta(hours=2)),
            "false_alarms": false_alarms(alerts, twin.incidents[twin.incidents["start"] < rest_hi], eligible,
                                         rest_hi, len(chosen)),
            "note": ("history was sent a home-day per batch, so an alert found there is raised at the next event "
                     "after its limit (heartbeats every 30 min); live gateways send a batch a minute, which "
                     "raises it within that minute (live_minute_batches.raised_after_limit_s_max, alerts whose limit "
                     "passed inside the minute-batch hours)"),
        }
    finally:
        stop_server(server)
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine",)}, indent=2, default=str))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
