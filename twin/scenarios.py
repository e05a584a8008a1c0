"""Planted drifts: transforms of a simulated history from a given day on.

Each scenario changes what the community's records look like after `start` the way a real change
would, and leaves everything before it untouched, so a monitor can be asked whether it sees the
change and how soon:
- `gait_sensor_offset`: a gait-speed sensor reads 0.1 m/s low from `start`;
- `step_firmware`: a wearable firmware update doubles the step counts from `start`;
- `new_grid`: a new grid cell of residents (more of them living alone) joins the community on
  `start`, with no history before it;
- `request_wave`: a flu-like wave of service requests (health escorts, meals, household help)
  ramps up over a week from `start` and lasts `wave_days`.
The hidden truth (`truth/`) is copied as is; the manifest records the scenario.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from twin.schema import TABLES
from twin.store import HistoryStore

Tables = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class ScenarioKnobs:
    """How strong each planted drift is."""

    gait_offset: float = -0.1  # m/s added to every gait-speed reading
    step_factor: float = 2.0  # step counts are multiplied by this
    new_grid_residents: int = 0  # 0: a fifth of the community
    new_grid_lives_alone: float = 0.6  # share of the newcomers living alone
    wave_days: int = 35
    wave_factor: tuple[tuple[str, float], ...] = (
        ("health_escort", 2.6), ("meals", 1.9), ("household", 1.4), ("companionship", 1.2),
    )
    seed: int = 0


def _day(start) -> pd.Timestamp:
    return pd.Timestamp(start).normalize()


def gait_sensor_offset(tables: Tables, start, knobs: ScenarioKnobs) -> Tables:
    sd = tables["sensor_days"].copy()
    after = (sd["date"] >= _day(start)) & sd["gait_speed"].notna()
    lo, hi = TABLES["sensor_days"].column("gait_speed").min, TABLES["sensor_days"].column("gait_speed").max
    sd.loc[after, "gait_speed"] = (sd.loc[after, "gait_speed"] + knobs.gait_offset).clip(lo, hi)
    return {**tables, "sensor_days": sd}


def step_firmware(tables: Tables, start, knobs: ScenarioKnobs) -> Tables:
    sd = tables["sensor_days"].copy()
    after = (sd["date"] >= _day(start)) & sd["steps"].notna()
    hi = TABLES["sensor_days"].column("steps").max
    sd.loc[after, "steps"] = (sd.loc[after, "steps"] * knobs.step_factor).round().clip(0, hi)
    return {**tables, "sensor_days": sd}


def request_wave(tables: Tables, start, knobs: ScenarioKnobs) -> Tables:
    """Extra requests on top of the recorded ones: per grid and category, Poisson with mean
    (factor - 1) x the mean daily count of the eight weeks before `start`, ramping up over 7 days."""
    sr = tables["service_requests"]
    start = _day(start)
    rng = np.random.default_rng(knobs.seed + 7001)
    before = sr[(sr["timestamp"] >= start - pd.Timedelta(days=56)) & (sr["timestamp"] < start)]
    rate = before.groupby(["grid_id", "category"], observed=True).size() / 56.0
    residents = tables["residents"][["resident_id", "grid_id"]]
    by_grid = {g: df["resident_id"].to_numpy() for g, df in residents.groupby("grid_id")}
    last = sr["timestamp"].max().normalize()
    rows = []
    factors = dict(knobs.wave_factor)
    for t in range(knobs.wave_days):
        day = start + pd.Timedelta(days=t)
        if day > last:
            break
        ramp = min(1.0, (t + 1) / 7.0)
        for (grid, category), base in rate.items():
            extra = rng.poisson(base * (factors.get(str(category), 1.0) - 1.0) * ramp)
            if extra == 0 or grid not in by_grid:
                continue
            seconds = rng.integers(7 * 3600, 20 * 3600, size=extra)
            rows.append(pd.DataFrame({
                "timestamp": day + pd.to_timedelta(seconds, unit="s"),
                "resident_id": rng.choice(by_grid[grid], size=extra),
                "grid_id": grid,
                "category": str(category),
            }))
    if not rows:
        return tables
    extra = pd.concat(rows, ignore_index=True)
    extra.insert(0, "request_id", [f"WAVE{i:08d}" for i in range(len(extra))])
    out = pd.concat([sr, extra[sr.columns]], ignore_index=True).sort_values("timestamp", kind="stable")
    return {**tables, "service_requests": out.reset_index(drop=True)}


def new_grid(tables: Tables, start, knobs: ScenarioKnobs) -> Tables:
    """Newcomers simulated from `start` to the last recorded day, in a grid of their own."""
    from dataclasses import replace

    from twin.simulate import SimConfig, simulate_frames

    start = _day(start)
    last = tables["sensor_days"]["date"].max().normalize()
    days = int((last - start).days) + 1
    if days < 1:
        return tables
    n = knobs.new_grid_residents or max(20, len(tables["residents"]) // 5)
    cfg = replace(SimConfig(), lives_alone_base=knobs.new_grid_lives_alone,
                  residents_per_grid=max(n, SimConfig().residents_per_grid))
    new = simulate_frames(n, days, seed=knobs.seed + 9001, start=str(start.date()), config=cfg)
    grid = "GNEW"
    out = dict(tables)

    def renamed(df: pd.DataFrame, id_column: str | None = None) -> pd.DataFrame:
        df = df.copy()
        df["resident_id"] = "N" + df["resident_id"].astype(str)
        if "grid_id" in df.columns:
            df["grid_id"] = grid
        if id_column is not None:
            df[id_column] = "N" + df[id_column].astype(str)
        return df

    keys = {"residents": None, "sensor_days": None, "assessments": None, "events": "event_id",
            "service_requests": "request_id", "visits": "visit_id"}
    for name, id_column in keys.items():
        if name not in new or name not in tables:
            continue
        add = renamed(new[name], id_column)
        if name == "visits":  # their time-bank tasks are not carried over
            add["task_id"] = None
        out[name] = pd.concat([tables[name], add[tables[name].columns]], ignore_index=True)
    if "events" in tables:
        # the grid's first residents move in on the start day, so a history cut before it (a
        # monitor's earlier as-of date) does not count them as residents with no data
        first = renamed(new["residents"])["resident_id"]
        moved_in = pd.DataFrame({"event_id": "NM" + first.to_numpy(), "resident_id": first.to_numpy(),
                                 "date": start, "type": "move_in", "injury": pd.NA})
        already = set(out["events"].loc[out["events"]["type"].astype(str) == "move_in", "resident_id"].astype(str))
        moved_in = moved_in[~moved_in["resident_id"].isin(already)]
        events = tables["events"]
        out["events"] = pd.concat([out["events"], moved_in[events.columns].astype(events.dtypes.to_dict())],
                                  ignore_index=True)
    return out


SCENARIOS: dict[str, Callable[[Tables, pd.Timestamp, ScenarioKnobs], Tables]] = {
    "gait_sensor_offset": gait_sensor_offset,
    "step_firmware": step_firmware,
    "new_grid": new_grid,
    "request_wave": request_wave,
}


def apply_scenario(history_dir: str | Path, out: str | Path, scenario: str, start,
                   knobs: ScenarioKnobs | None = None) -> Path:
    """Write a copy of a history with `scenario` planted from `start` on; returns `out`."""
    if scenario not in SCENARIOS:
        raise KeyError(f"unknown scenario {scenario!r}; scenarios are {', '.join(SCENARIOS)}")
    knobs = knobs or ScenarioKnobs()
    src, dst = HistoryStore(history_dir), HistoryStore(out)
    tables = {name: src.read(name) for name in src.tables()}
    changed = SCENARIOS[scenario](tables, _day(start), knobs)
    Path(out).mkdir(parents=True, exist_ok=True)
    for name, df in changed.items():
        dst.write(name, df)
    if (Path(history_dir) / "truth").is_dir():
        shutil.copytree(Path(history_dir) / "truth", Path(out) / "truth", dirs_exist_ok=True)
    manifest_file = Path(history_dir) / "manifest.json"
    manifest = json.loads(manifest_file.read_text()) if manifest_file.exists() else {}
    manifest["scenario"] = {"name": scenario, "start": str(_day(start).date())}
    (Path(out) / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return Path(out)


def history_until(history_dir: str | Path, out: str | Path, end) -> Path:
    """Write the history as it was known on the day before `end` (rows recorded on or after it
    dropped), e.g. to train a model on the past and monitor it on what came later."""
    src, dst = HistoryStore(history_dir), HistoryStore(out)
    end = _day(end)
    Path(out).mkdir(parents=True, exist_ok=True)
    for name in src.tables():
        timed = TABLES[name].time_column is not None
        dst.write(name, src.read(name, end=end) if timed else src.read(name))
    if (Path(history_dir) / "truth").is_dir():
        shutil.copytree(Path(history_dir) / "truth", Path(out) / "truth", dirs_exist_ok=True)
    manifest_file = Path(history_dir) / "manifest.json"
    manifest = json.loads(manifest_file.read_text()) if manifest_file.exists() else {}
    manifest["end"] = str((end - pd.Timedelta(days=1)).date())
    manifest["known_until"] = str(end.date())
    (Path(out) / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return Path(out)
