"""Routine stillness in the event twin: how often a resident, with no incident, makes no sensed
movement for a long time while up, at home, and seen by no bed or chair sensor.

    python -m benchmarks.bench_stillness [--residents 150] [--days 60] [--seed 3]
        [--chair-share 1] [--bedroom-chair-share 1] [--out benchmarks/results/stillness.json]

A no-movement rule that alerts after N minutes of such stillness raises at least this many false
alarms from routine alone, so it bounds what any rule reading these sensors can do. A span runs
from one sign of the resident (motion, door, bed or chair event) to the next, with the bed and
every chair sensor of the home empty; left out are spans that start at the front door (out of
home), that include a silent gateway (no event of any kind for 45 minutes), or that touch any
planted incident or confounder of that resident (naps, visitors, a second person, outings with a
missed door event, dropouts, flat batteries). Counts are per resident-month of observed days, by
the room of the last movement before the span (and, to weigh them, the planted falls by the room
of the last movement before the fall: a rule whose limit in a room is N minutes detects a fall there
about N minutes after it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULT = Path(__file__).parent / "results" / "stillness.json"
THRESHOLDS_MIN = (30, 45, 60)
DAYS_PER_MONTH = 30.44


def routine_spans(twin) -> pd.DataFrame:
    """Every still span of every home (resident_id, start, minutes, room) outside the truth."""
    roles = twin.sensor_map
    truth = pd.concat([twin.incidents[["resident_id", "start", "end"]], twin.confounders[["resident_id", "start", "end"]]])
    truth_by = {r: g for r, g in truth.groupby("resident_id")}
    rows = []
    for rid, ev in twin.events.groupby("resident_id", sort=True):
        t = (ev["time"] - pd.Timestamp("2000-01-01")).dt.total_seconds().to_numpy()
        sensors, values = ev["sensor"].to_numpy(), ev["value"].to_numpy()
        gaps_any = np.diff(t)
        silent = [(t[i], t[i + 1]) for i in np.flatnonzero(gaps_any > 45 * 60)]
        spans = truth_by.get(rid)
        marks = [] if spans is None else list(zip(
            (spans["start"] - pd.Timestamp("2000-01-01")).dt.total_seconds(),
            (spans["end"] - pd.Timestamp("2000-01-01")).dt.total_seconds(), strict=True))
        in_bed, seated = False, set()
        last, last_role = None, None
        for ti, sensor, value in zip(t, sensors, values, strict=True):
            role = roles.get(sensor)
            if role is None:
                continue
            on = value in ("ON", "OPEN")
            if last is not None and not in_bed and not seated and last_role != "front_door":
                a, b = last, ti
                if b - a > 20 * 60 and not any(x < b and y > a for x, y in silent) \
                        and not any(x < b and y > a for x, y in marks):
                    rows.append((rid, a, (b - a) / 60, last_role))
            if role == "bed":
                in_bed = on
            elif role == "chair":
                if on:
                    seated.add(sensor)
                else:
                    seated.discard(sensor)
            last, last_role = ti, role
    return pd.DataFrame(rows, columns=["resident_id", "start", "minutes", "room"])


def summarise(spans: pd.DataFrame, resident_days: float) -> dict:
    months = resident_days / DAYS_PER_MONTH
    out = {}
    for m in THRESHOLDS_MIN:
        over = spans[spans["minutes"] > m]
        out[f"over_{m}_min"] = {
            "per_resident_month": round(len(over) / months, 2),
            "by_room": {r: round(n / months, 2) for r, n in over["room"].value_counts().sort_index().items()},
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    from twin.events import EventTwinConfig, simulate_events
    from twin.simulate import simulate_frames

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--residents", type=int, default=150)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--kit", action="append", default=None,
                    help="chair_share,bedroom_chair_share of a kit to measure (repeat; default 1,0 and 1,1)")
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    frames = simulate_frames(args.residents, args.days, args.seed)
    kits = [tuple(float(x) for x in k.split(",")) for k in (args.kit or ["1,0", "1,1"])]
    doc = {"residents": args.residents, "days": args.days, "seed": args.seed, "kits": []}
    for chair, bedroom in kits:
        twin = simulate_events(frames["residents"], frames["sensor_days"], seed=args.seed,
                               config=EventTwinConfig(chair_share=chair, bedroom_chair_share=bedroom))
        spans = routine_spans(twin)
        resident_days = float(twin.events.groupby("resident_id")["time"].apply(lambda x: x.dt.normalize().nunique()).sum())
        falls = twin.incidents[twin.incidents["kind"] == "fall_long_lie"]
        falls_by_room = falls["room"].map(twin.sensor_map).value_counts().sort_index()
        doc["kits"].append({"chair_share": chair, "bedroom_chair_share": bedroom,
                            "falls_by_room": {str(k): int(v) for k, v in falls_by_room.items()},
                            "residents_with_chair": len(twin.chair_homes),
                            "residents_with_bedroom_chair": len(twin.bedroom_chair_homes),
                            "resident_days": resident_days} | summarise(spans, resident_days))
        print(json.dumps(doc["kits"][-1]), flush=True)
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))
    return doc


if __name__ == "__main__":
    main()
