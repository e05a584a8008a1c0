"""The community simulator: a generative history of older residents, their homes and a time bank.

Everything comes from latent states moving day by day (vectorised over residents):
- the community is open: residents leave (death, long-term care, moving away; more often the
  frailer they are) and newcomers drawn like the first residents move in, so the mix stays put;
- frailty declines slowly, faster after falls, hospital stays and acute episodes (which partly
  recovers);
- acute episodes (infection, medication change) change the home sensors (more night-time toilet
  visits, fewer steps, slower gait, less time out, longer inactivity, broken sleep) from their first
  day, while the fall hazard rises only 7-14 days later (Rantz et al., TigerPlace);
- the daily fall hazard multiplies the published risk factors (previous fall, gait and balance,
  fear of falling, dementia, poor vision, nocturia, polypharmacy, frailty); falls feed back into
  fear of falling and frailty; about a third of falls injure;
- loneliness drifts towards a target set by living alone, bereavement, low mobility and few
  visits; assessments every 60-150 days read TUG, fear of falling, STEADI questions and UCLA-3;
- service requests per grid and category follow the residents' states, the week, public holidays
  and seasonal shocks (a winter flu wave, a summer heat wave); time-bank volunteers take them up as
  tasks, completed tasks are visits and double-entry credit transfers.

The hidden truth (latent states per day, each resident's dominant planted cause per week, the
episodes and shocks) goes to `truth/`, which feature code never reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from twin.dynamics import (  # noqa: F401  (re-exported: the simulator's public names)
    DEVICES,
    SENSORS,
    SIMULATOR_VERSION,
    WEARABLE_SENSORS,
    Population,
    ProgressFn,
    Shock,
    SimConfig,
    _cat,
    _fall_terms,
    _iso_terms,
    _lists,
    _Raw,
    _sigmoid,
    make_population,
    plan_shocks,
    residents_frame,
)
from twin.schema import (
    FALL_CAUSES,
    ISOLATION_CAUSES,
    REQUEST_CATEGORIES,
    TABLES,
    conform,
)
from twin.store import HistoryStore


def _run(cfg: SimConfig, progress: ProgressFn | None = None) -> _Raw:
    """Step the engine over every recorded day."""
    from twin.engine import Engine

    engine = Engine(cfg)
    engine.run(cfg.days, progress)
    return engine.raw()



def _dates(start: date, day_idx: np.ndarray) -> pd.DatetimeIndex:
    return pd.Timestamp(start) + pd.to_timedelta(np.asarray(day_idx, dtype=np.int64), unit="D")


def sensor_days_frame(raw: _Raw, first: int = 0, last: int | None = None) -> pd.DataFrame:
    """Sensor rows for days [first, last): absent rows are missing days."""
    last = raw.cfg.days if last is None else last
    dd, ii = np.nonzero(raw.present[first:last])
    out = {"resident_id": raw.pop.ids[ii], "date": _dates(raw.start, dd + first)}
    for s in SENSORS:
        out[s] = np.round(raw.sensors[s][first:last][dd, ii].astype(np.float64), 2)
    return pd.DataFrame(out)


def latent_frame(raw: _Raw, first: int = 0, last: int | None = None) -> pd.DataFrame:
    """Hidden daily states for residents still living in the community."""
    last = raw.cfg.days if last is None else last
    dd, ii = np.nonzero(raw.in_community[first:last])
    sl = slice(first, last)
    return pd.DataFrame(
        {
            "resident_id": raw.pop.ids[ii],
            "date": _dates(raw.start, dd + first),
            "frailty": raw.frailty[sl][dd, ii].astype(np.float64),
            "acute_episode": raw.acute[sl][dd, ii],
            "loneliness": raw.loneliness[sl][dd, ii].astype(np.float64),
            "fall_hazard": raw.hazard[sl][dd, ii].astype(np.float64),
            "in_hospital": raw.hospital[sl][dd, ii],
        }
    )


def _tables(raw: _Raw, r: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Every table except sensor_days (which is large and written in chunks)."""
    pop, start, D = raw.pop, raw.start, raw.cfg.days
    ids = pop.ids
    out: dict[str, pd.DataFrame] = {"residents": residents_frame(pop, start, raw.arrival_day)}

    ev = {k: _cat(v) for k, v in raw.events.items()}
    order = np.lexsort((ev["idx"], ev["day"])) if len(ev["day"]) else np.array([], np.int64)
    ev = {k: v[order] for k, v in ev.items()}
    is_fall = ev["type"] == "fall"
    out["events"] = pd.DataFrame(
        {
            "event_id": [f"E{i + 1:08d}" for i in range(len(order))],
            "resident_id": ids[ev["idx"].astype(np.int64)],
            "date": _dates(start, ev["day"]),
            "type": ev["type"].astype(str),
            "injury": pd.array(np.where(is_fall, ev["injury"], False), dtype="boolean"),
        }
    )
    out["events"].loc[~is_fall, "injury"] = pd.NA

    a = {k: _cat(v) for k, v in raw.assessments.items()}
    m = len(a["day"])
    df = pd.DataFrame(
        {
            "resident_id": ids[a["idx"].astype(np.int64)],
            "date": _dates(start, a["day"]),
            "tug_seconds": a["tug"].astype(np.float64),
            "fear_of_falling": pd.array(a["fear"].astype(bool), dtype="boolean"),
            "steadi_fell_past_year": pd.array(a["fell"].astype(bool), dtype="boolean"),
            "steadi_unsteady": pd.array(a["unsteady"].astype(bool), dtype="boolean"),
            "loneliness_score": a["ucla"].astype(np.float64),
        }
    )
    # Not every question gets answered at every visit.
    for col, p in (
        ("tug_seconds", 0.06),
        ("fear_of_falling", 0.03),
        ("steadi_unsteady", 0.03),
        ("loneliness_score", 0.05),
    ):
        df.loc[r.random(m) < p, col] = (
            np.nan if col in ("tug_seconds", "loneliness_score") else pd.NA
        )
    out["assessments"] = df.sort_values(["date", "resident_id"], kind="stable").reset_index(
        drop=True
    )

    q = {k: _cat(v) for k, v in raw.requests.items() if k != "count"}
    mq = len(q["day"])
    secs = (r.uniform(8, 19.5, mq) * 3600).astype(np.int64)
    ts = _dates(start, q["day"]) + pd.to_timedelta(secs, unit="s")
    q_idx = q["idx"].astype(np.int64)
    out["service_requests"] = pd.DataFrame(
        {
            "request_id": [f"Q{i + 1:09d}" for i in range(mq)],
            "timestamp": ts,
            "resident_id": ids[q_idx],
            "grid_id": pop.grid_ids[pop.grid[q_idx]],
            "category": np.array(REQUEST_CATEGORIES)[q["cat"].astype(np.int64)],
        }
    )

    # Tasks: request-driven ones are timed like their request; after-fall checks in office hours.
    tk = {k: _cat(v) for k, v in raw.tasks.items()}
    mt = len(tk["day"])
    t_idx = tk["idx"].astype(np.int64)
    day = tk["day"].astype(np.int64)
    office = _dates(start, day) + pd.to_timedelta(
        (r.uniform(8, 17, mt) * 3600).astype(np.int64), unit="s"
    )
    from_request = tk["request"].astype(np.int64)
    opened = office.to_numpy()
    if mq:  # a task opened for a request is opened minutes after it
        opened = (
            ts.to_numpy()[np.maximum(from_request, 0)]
            + pd.to_timedelta(r.integers(1, 30, mt), unit="m").to_numpy()
        )
    created = pd.DatetimeIndex(np.where(from_request >= 0, opened, office.to_numpy()))
    delay = tk["delay"].astype(np.int64)
    created_h = (created - created.normalize()) / pd.Timedelta(hours=1)
    hour = np.where(
        delay == 0,
        np.minimum(np.asarray(created_h) + r.uniform(1, 3, mt), 23.9),
        r.uniform(9, 19, mt),
    )
    completed = _dates(start, day + delay) + pd.to_timedelta(
        (hour * 3600).astype(np.int64), unit="s"
    )
    status = tk["status"].astype(object)
    due = _dates(start, day + tk["due"].astype(np.int64))
    done_in_time = day + delay < D
    status = np.where((status == "completed") & ~done_in_time, "claimed", status)
    status = np.where(
        (status == "expired") & (day + tk["due"].astype(np.int64) >= D), "open", status
    )
    vol_ids = (
        raw.volunteers["volunteer_id"].to_numpy()[tk["vol"].astype(np.int64)]
        if mt
        else np.array([], object)
    )
    vol = np.where(np.isin(status, ["completed", "claimed"]), vol_ids, None)
    tasks = pd.DataFrame(
        {
            "task_id": [f"T{i + 1:08d}" for i in range(mt)],
            "resident_id": ids[t_idx],
            "grid_id": pop.grid_ids[pop.grid[t_idx]],
            "kind": tk["kind"].astype(str),
            "reason": tk["reason"].astype(str),
            "created_at": created,
            "due_date": due,
            "status": status.astype(str),
            "volunteer_id": pd.array(vol, dtype="str"),
            "credits": tk["credits"].astype(np.float64),
            "completed_at": pd.Series(completed).where(status == "completed"),
        }
    )
    tasks = tasks.sort_values(["created_at", "task_id"], kind="stable").reset_index(drop=True)
    tasks["task_id"] = [f"T{i + 1:08d}" for i in range(len(tasks))]
    tasks = conform(tasks, TABLES["tasks"])
    out["tasks"] = tasks
    out["volunteers"] = raw.volunteers

    done = tasks[tasks["status"] == "completed"]
    nd = len(done)
    transfer = np.array([f"X{i + 1:08d}" for i in range(nd)], dtype=object)
    ledger = pd.DataFrame(
        {
            "transfer_id": np.repeat(transfer, 2),
            "timestamp": np.repeat(done["completed_at"].to_numpy(), 2),
            "account": np.ravel(
                np.stack(
                    [
                        np.full(nd, "fund:community", dtype=object),
                        ("volunteer:" + done["volunteer_id"]).to_numpy(dtype=object),
                    ],
                    1,
                )
            ),
            "amount": np.ravel(
                np.stack([-done["credits"].to_numpy(), done["credits"].to_numpy()], 1)
            ),
            "memo": np.repeat(
                ("task " + done["task_id"] + " " + done["kind"]).to_numpy(dtype=object), 2
            ),
        }
    )
    ledger.insert(0, "entry_id", [f"L{i + 1:09d}" for i in range(len(ledger))])
    out["ledger"] = ledger

    v = {k: _cat(v) for k, v in raw.visits.items()}
    fam_care = pd.DataFrame(
        {
            "resident_id": ids[v["idx"].astype(np.int64)],
            "date": _dates(start, v["day"]),
            "kind": np.where(v["source"] == "family", "companionship", "household"),
            "source": v["source"].astype(str),
            "hours": v["hours"].astype(np.float64),
            "task_id": None,
        }
    )
    tb = pd.DataFrame(
        {
            "resident_id": done["resident_id"].to_numpy(),
            "date": done["completed_at"].dt.normalize().to_numpy(),
            "kind": done["kind"].to_numpy(),
            "source": "timebank",
            "hours": done["credits"].to_numpy(),
            "task_id": done["task_id"].to_numpy(),
        }
    )
    visits = pd.concat([fam_care, tb], ignore_index=True)
    visits = visits.sort_values(["date", "resident_id", "source"], kind="stable").reset_index(
        drop=True
    )
    visits.insert(0, "visit_id", [f"W{i + 1:09d}" for i in range(len(visits))])
    visits["task_id"] = visits["task_id"].astype("str").where(visits["task_id"].notna())
    out["visits"] = visits
    return out


def _truth(raw: _Raw) -> dict[str, pd.DataFrame]:
    """Weekly planted causes and the episode list (the daily latent table is written in chunks)."""
    pop, start = raw.pop, raw.start
    c = {k: _cat(v) for k, v in raw.causes.items()}
    day = c["day"].astype(np.int64)
    idx = c["idx"].astype(np.int64)
    # Expected falls over the coming 30 days, from the realised daily hazard.
    csum = np.cumsum(raw.hazard, axis=0, dtype=np.float64)
    csum = np.vstack([np.zeros((1, csum.shape[1])), csum])
    end = np.minimum(day + 30, raw.cfg.days)
    h30 = csum[end, idx] - csum[day, idx]
    del csum
    n = len(day)
    rid = pop.ids[idx]
    dates = _dates(start, day)
    fall = pd.DataFrame(
        {
            "resident_id": rid,
            "date": dates,
            "model": "fall_risk",
            "cause": np.array(FALL_CAUSES)[c["fall_cause"].astype(np.int64)],
            "cause_absolute": np.array(FALL_CAUSES)[c["fall_cause_absolute"].astype(np.int64)],
            "fall_hazard_daily": raw.hazard[day, idx].astype(np.float64),
            "fall_hazard_30d": 1 - np.exp(-h30),
            "lonely_prob": np.nan,
            "loneliness": np.nan,
        }
    )
    iso = pd.DataFrame(
        {
            "resident_id": rid,
            "date": dates,
            "model": "isolation",
            "cause": np.array(ISOLATION_CAUSES)[c["iso_cause"].astype(np.int64)],
            "cause_absolute": np.array(ISOLATION_CAUSES)[c["iso_cause_absolute"].astype(np.int64)],
            "fall_hazard_daily": np.nan,
            "fall_hazard_30d": np.nan,
            "lonely_prob": c["lonely_prob"],
            "loneliness": c["loneliness"],
        }
    )
    causes = pd.concat([fall, iso], ignore_index=True) if n else fall
    causes = causes.sort_values(["date", "model", "resident_id"], kind="stable").reset_index(
        drop=True
    )
    e = {k: _cat(v) for k, v in raw.episodes.items()}
    episodes = pd.DataFrame(
        {
            "resident_id": pop.ids[e["idx"].astype(np.int64)],
            "onset": _dates(start, e["onset"]),
            "hazard_from": _dates(start, e["hazard_from"]),
            "end": _dates(start, e["end"]),
            "kind": e["kind"].astype(str),
            "severity": e["severity"].astype(np.float64),
            "sensor_visibility": e["visibility"].astype(np.float64),
        }
    )
    return {"causes": causes, "episodes": episodes}


def _manifest(raw: _Raw, counts: dict[str, int]) -> dict:
    cfg = raw.cfg
    return {
        "twin_id": cfg.twin_id,
        "seed": cfg.seed,
        "residents": cfg.residents,
        "residents_moved_in": int((raw.arrival_day > 0).sum()),
        "days": cfg.days,
        "start": raw.start.isoformat(),
        "end": (raw.start + timedelta(days=cfg.days - 1)).isoformat(),
        "end_note": "end is the last simulated day (inclusive)",
        "generator": "twin.simulate",
        "simulator_version": SIMULATOR_VERSION,
        "grids": [str(g) for g in raw.pop.grid_ids],
        "volunteers": len(raw.volunteers),
        "holidays": [h.isoformat() for h in raw.holidays],
        "shocks": [
            {
                "name": s.name,
                "start": (raw.start + timedelta(days=s.start)).isoformat(),
                "end": (raw.start + timedelta(days=s.end - 1)).isoformat(),
                "request_factor": s.request_factor,
            }
            for s in raw.shocks
        ],
        "rows": counts,
        "config": asdict(cfg),
    }


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def simulate_frames(
    residents: int,
    days: int,
    seed: int,
    start: str = "2024-01-01",
    *,
    config: SimConfig | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, pd.DataFrame]:
    """Simulate in memory: every history table plus `truth/latent`, `truth/causes`, `truth/episodes`."""
    cfg = replace(config or SimConfig(), residents=residents, days=days, seed=seed, start=start)
    raw = _run(cfg, progress)
    r = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(7)[6])
    tables = _tables(raw, r)
    tables["sensor_days"] = sensor_days_frame(raw)
    tables = {k: conform(v, TABLES[k])[TABLES[k].column_names] for k, v in tables.items()}
    truth = _truth(raw)
    tables["truth/latent"] = latent_frame(raw)
    tables["truth/causes"] = truth["causes"]
    tables["truth/episodes"] = truth["episodes"]
    return tables


def simulate(
    residents: int,
    days: int,
    seed: int,
    out: str | Path,
    start: str = "2024-01-01",
    *,
    config: SimConfig | None = None,
    progress: ProgressFn | None = None,
    on_stage: Callable[[str], None] | None = None,
    chunk_days: int = 61,
) -> Path:
    """Simulate a community and write its history under `out` (tables, manifest.json, truth/).

    `progress(done, total)` is called after each simulated day; `on_stage(what)` when the
    writing stages begin (they take a while for large communities).
    """
    cfg = replace(config or SimConfig(), residents=residents, days=days, seed=seed, start=start)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stage = on_stage or (lambda what: None)
    raw = _run(cfg, progress)
    stage("writing tables")
    r = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(7)[6])
    store = HistoryStore(out)
    counts: dict[str, int] = {}
    for name, df in _tables(raw, r).items():
        store.write(name, df)
        counts[name] = len(df)
    counts["sensor_days"] = 0
    stage("writing sensor days")
    for i, a in enumerate(range(0, cfg.days, chunk_days)):
        df = sensor_days_frame(raw, a, min(a + chunk_days, cfg.days))
        if i == 0:
            store.write("sensor_days", df)
        else:
            store.append("sensor_days", df, tag=f"base-{i:03d}")
        counts["sensor_days"] += len(df)

    stage("writing truth")
    truth_dir = out / "truth"
    truth_dir.mkdir(exist_ok=True)
    truth = _truth(raw)
    for name, df in truth.items():
        df.to_parquet(truth_dir / f"{name}.parquet", index=False, compression="zstd")
    writer = None
    try:
        for a in range(0, cfg.days, chunk_days):
            tbl = pa.Table.from_pandas(
                latent_frame(raw, a, min(a + chunk_days, cfg.days)), preserve_index=False
            )
            if writer is None:
                writer = pq.ParquetWriter(
                    truth_dir / "latent.parquet", tbl.schema, compression="zstd"
                )
            writer.write_table(tbl)
    finally:
        if writer is not None:
            writer.close()

    manifest = _manifest(raw, counts)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return out
