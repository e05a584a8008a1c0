"""The community simulator: a generative history of older residents, their homes and a time bank.

Everything comes from latent states moving day by day (vectorised over residents):
- frailty declines slowly, faster after falls, hospital stays and acute episodes;
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

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from twin.schema import FALL_CAUSES, ISOLATION_CAUSES, REQUEST_CATEGORIES, TABLES, conform
from twin.store import HistoryStore

SENSORS = (
    "steps",
    "gait_speed",
    "night_toilet_visits",
    "sleep_hours",
    "sleep_interruptions",
    "time_out_of_home",
    "kitchen_activity",
    "longest_inactivity",
    "visitors_detected",
    "phone_calls",
    "resting_heart_rate",
)
WEARABLE_SENSORS = ("steps", "gait_speed", "resting_heart_rate")
# Devices in a home and the readings each one gives; a device that fails blanks its readings for days.
DEVICES = {
    "wearable": WEARABLE_SENSORS,
    "bathroom": ("night_toilet_visits",),
    "bed": ("sleep_hours", "sleep_interruptions"),
    "front_door": ("time_out_of_home", "visitors_detected"),
    "kitchen": ("kitchen_activity",),
    "motion": ("longest_inactivity",),
    "phone": ("phone_calls",),
}

# Base hours of help (credits) per task kind.
TASK_HOURS = {
    "meals": 1.0,
    "companionship": 1.5,
    "transport": 2.0,
    "household": 2.0,
    "health_escort": 2.5,
    "home_hazard_check": 1.5,
    "walk": 1.0,
}

ProgressFn = Callable[[int, int], None]

# Part of the twin id: a change to the simulator's behaviour gets a new version.
SIMULATOR_VERSION = "2026.11.2"


@dataclass(frozen=True)
class SimConfig:
    """Every knob of the simulator. The twin id is a hash of this (seed included)."""

    residents: int = 2000
    days: int = 730
    seed: int = 7
    start: str = "2024-01-01"
    residents_per_grid: int = 100
    residents_per_volunteer: float = 8.0

    # population
    female_share: float = 0.56
    lives_alone_base: float = 0.29

    # falls: daily baseline hazard and log hazard ratios
    base_fall_hazard: float = 2.55e-4
    lhr_previous_fall: float = float(np.log(2.1))  # decays over a year after a fall
    lhr_walking_aid: float = float(np.log(1.2))
    lhr_balance: float = 0.12  # per unit of balance impairment above 0
    lhr_slow_gait: float = 0.2  # per m/s below 0.9 m/s
    lhr_fear_of_falling: float = float(np.log(1.6))
    lhr_dementia: float = float(np.log(1.8))
    lhr_poor_vision: float = float(np.log(1.45))
    lhr_nocturia_2: float = float(np.log(1.1))
    lhr_nocturia_3: float = float(np.log(1.15))
    lhr_meds_5_9: float = float(np.log(1.35))
    lhr_meds_10: float = float(np.log(1.8))
    lhr_frailty: float = 0.9  # per unit frailty index above 0.15
    lhr_age_decade: float = 0.15  # per ten years of age above 65
    acute_hazard_gain: float = 5.0  # hazard x (1 + gain * severity) once an episode peaks
    hazard_check_lhr: float = float(np.log(0.75))  # a completed home-hazard check lowers hazard
    injury_prob: float = 0.25
    hospital_after_injury: float = 0.30

    # acute episodes
    episodes_per_year: float = 1.8
    episode_lag_days: tuple[int, int] = (7, 14)  # sensor signs lead the hazard by this many days
    episode_extra_days: float = 14.0  # mean days an episode lasts beyond lag + 7
    sensor_sign_gain: float = 1.3  # how strongly an episode shows in the sensors

    # life events
    bereavements_per_year: float = 0.035
    moves_per_year: float = 0.012
    hospital_days: tuple[int, int] = (2, 12)

    # loneliness and assessments
    ucla_intercept: float = 4.25
    ucla_slope: float = 1.3
    ucla_noise: float = 0.75
    assessment_gap_days: tuple[int, int] = (60, 150)

    # sensors
    missing_day_prob: float = 0.018
    outage_start_prob: float = 0.003
    outage_mean_days: float = 5.0
    wearable_off_prob: float = 0.06
    sensor_null_prob: float = 0.012
    device_failure_prob: float = 0.0015  # a day, per device
    device_repair_mean_days: float = 7.0

    # time bank
    task_share: float = 0.7
    cancel_share: float = 0.03

    def __post_init__(self) -> None:
        if self.residents < 1:
            raise ValueError(f"residents must be at least 1, got {self.residents}")
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        try:
            date.fromisoformat(str(self.start))
        except ValueError as e:
            raise ValueError(
                f"start must be an ISO date like 2024-01-01, got {self.start!r}"
            ) from e

    @property
    def twin_id(self) -> str:
        params = {"simulator_version": SIMULATOR_VERSION, **asdict(self)}
        blob = json.dumps(params, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Calendar: public holidays and seasonal shocks
# ---------------------------------------------------------------------------------------------


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month = (h + ell - 7 * m + 114) // 31
    day = (h + ell - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def public_holidays(first: date, last: date) -> list[date]:
    """Common European public holidays between two dates (inclusive)."""
    out = []
    for y in range(first.year, last.year + 1):
        e = _easter(y)
        days = [
            date(y, 1, 1),
            e - timedelta(days=2),
            e + timedelta(days=1),
            date(y, 5, 1),
            e + timedelta(days=39),
            date(y, 12, 25),
            date(y, 12, 26),
        ]
        out += [d for d in days if first <= d <= last]
    return sorted(out)


@dataclass(frozen=True)
class Shock:
    """A seasonal shock: some weeks in which requests and acute episodes rise."""

    name: str
    start: int  # day index
    end: int  # day index, exclusive
    request_factor: dict[str, float] = field(default_factory=dict)
    episode_factor: float = 1.0


def plan_shocks(first: date, days: int, rng: np.random.Generator) -> list[Shock]:
    """A flu wave every winter and a heat wave every summer, at random dates."""
    shocks = []
    for y in range(first.year - 1, first.year + days // 365 + 2):
        flu_start = date(y, 12, 10) + timedelta(days=int(rng.integers(0, 50)))
        flu_len = int(rng.integers(35, 50))
        heat_start = date(y + 1, 6, 25) + timedelta(days=int(rng.integers(0, 45)))
        heat_len = int(rng.integers(10, 17))
        for name, s, n, req, ep in (
            (
                "flu_wave",
                flu_start,
                flu_len,
                {"health_escort": 1.9, "meals": 1.4, "household": 1.15},
                1.8,
            ),
            (
                "heat_wave",
                heat_start,
                heat_len,
                {"health_escort": 1.5, "companionship": 1.3, "transport": 0.8},
                1.4,
            ),
        ):
            a = (s - first).days
            b = a + n
            if b > 0 and a < days:
                shocks.append(Shock(name, max(a, 0), min(b, days), req, ep))
    return shocks


# ---------------------------------------------------------------------------------------------
# Residents
# ---------------------------------------------------------------------------------------------


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Population:
    """Static traits of the residents (arrays over residents)."""

    ids: np.ndarray
    age: np.ndarray
    female: np.ndarray
    grid: np.ndarray  # grid index
    grid_ids: np.ndarray  # names of grids
    lives_alone: np.ndarray
    chronic: np.ndarray
    meds: np.ndarray
    vision: np.ndarray
    dementia: np.ndarray
    walking_aid: np.ndarray
    frailty0: np.ndarray
    balance: np.ndarray
    gait0: np.ndarray
    nocturia: np.ndarray  # baseline night-time toilet visits
    trait: np.ndarray  # loneliness disposition
    family_rate: np.ndarray  # family visits a day
    out_base: np.ndarray  # hours out of home on a good day
    steps_base: np.ndarray
    kitchen_base: np.ndarray
    phone_base: np.ndarray
    hr_base: np.ndarray
    sleep_base: np.ndarray


def make_population(cfg: SimConfig, rng: np.random.Generator) -> Population:
    n = cfg.residents
    age = 65 + np.floor(31 * rng.beta(1.4, 2.6, n)).astype(np.int64)
    age = np.minimum(age, 95)
    female = rng.random(n) < cfg.female_share
    n_grids = max(1, int(round(n / cfg.residents_per_grid)))
    width = max(2, len(str(n_grids)))
    grid_ids = np.array([f"G{g + 1:0{width}d}" for g in range(n_grids)])
    grid = rng.permutation(np.arange(n) % n_grids)
    a = (age - 65) / 10.0
    lives_alone = rng.random(n) < cfg.lives_alone_base + 0.1 * female + 0.04 * a
    chronic = np.minimum(rng.poisson(1.2 + 0.6 * a), 15)
    meds = np.minimum(rng.poisson((1.5 + 1.9 * chronic) * rng.lognormal(0, 0.3, n)), 30)
    frailty0 = np.clip(0.08 + 0.08 * a + 0.025 * chronic + rng.normal(0, 0.07, n), 0.02, 0.8)
    walking_aid = (frailty0 + rng.normal(0, 0.06, n)) > 0.30
    balance = 2.5 * (frailty0 - 0.2) + rng.normal(0, 0.8, n)
    gait0 = np.clip(1.25 - 1.3 * frailty0 - 0.1 * walking_aid + rng.normal(0, 0.08, n), 0.2, 1.8)
    dementia = rng.random(n) < 0.04 + 0.06 * a
    vision = rng.random(n) < 0.08 + 0.04 * a
    nocturia = np.exp(rng.normal(np.log(1.1) + 0.1 * a + 0.05 * chronic, 0.45, n))
    trait = rng.normal(0, 0.6, n)
    family_rate = np.clip(rng.lognormal(np.log(0.11), 0.7, n), 0.005, 1.5)
    out_base = rng.lognormal(np.log(3.0), 0.3, n)
    steps_base = 5500 * np.exp(-2.5 * (frailty0 - 0.2)) * rng.lognormal(0, 0.3, n)
    kitchen_base = rng.lognormal(np.log(35), 0.3, n)
    phone_base = rng.lognormal(np.log(1.5), 0.5, n)
    hr_base = rng.normal(70, 7, n)
    sleep_base = rng.normal(7.2, 0.8, n)
    ids = np.array([f"R{i + 1:06d}" for i in range(n)])
    return Population(
        ids,
        age,
        female,
        grid,
        grid_ids,
        lives_alone,
        chronic,
        meds,
        vision,
        dementia,
        walking_aid,
        frailty0,
        balance,
        gait0,
        nocturia,
        trait,
        family_rate,
        out_base,
        steps_base,
        kitchen_base,
        phone_base,
        hr_base,
        sleep_base,
    )


def residents_frame(pop: Population, start: date) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "resident_id": pop.ids,
            "birth_year": (start.year - pop.age).astype(np.int64),
            "sex": np.where(pop.female, "F", "M"),
            "grid_id": pop.grid_ids[pop.grid],
            "lives_alone": pop.lives_alone,
            "chronic_conditions": pop.chronic.astype(np.int64),
            "medication_count": pop.meds.astype(np.int64),
            "vision_impairment": pop.vision,
            "cognitive_impairment": pop.dementia,
            "walking_aid": pop.walking_aid,
        }
    )


# ---------------------------------------------------------------------------------------------
# The day loop
# ---------------------------------------------------------------------------------------------


@dataclass
class _Raw:
    """Everything the day loop produced, as arrays; turned into tables afterwards."""

    cfg: SimConfig
    pop: Population
    start: date
    shocks: list[Shock]
    holidays: list[date]
    present: np.ndarray  # (days, n) bool: a sensor row exists
    in_community: np.ndarray  # (days, n) bool: not moved away yet
    sensors: dict[str, np.ndarray]  # (days, n) float32 with NaN
    frailty: np.ndarray
    acute: np.ndarray
    loneliness: np.ndarray
    hazard: np.ndarray
    hospital: np.ndarray
    events: dict[str, list]
    assessments: dict[str, list]
    requests: dict[str, list]
    visits: dict[str, list]
    tasks: dict[str, list]
    causes: dict[str, list]
    episodes: dict[str, list]
    volunteers: pd.DataFrame
    grid_complete: np.ndarray


def _lists(*names: str) -> dict[str, list]:
    return {k: [] for k in names}


def _cat(parts: list, dtype=None) -> np.ndarray:
    if not parts:  # nothing happened: an empty array any later cast accepts
        return np.array([], dtype=dtype or object)
    return np.concatenate(parts)


def _fall_terms(cfg: SimConfig, pop: Population, st: dict, t: int) -> np.ndarray:
    """Log hazard contributions per planted cause (columns in FALL_CAUSES order)."""
    since = t - st["last_fall"]
    prev = cfg.lhr_previous_fall * np.exp(-np.maximum(since, 0) / 365.0) * (since < 10_000)
    gait_bal = (
        cfg.lhr_walking_aid * pop.walking_aid
        + cfg.lhr_balance * np.clip(pop.balance, 0, 3)
        + cfg.lhr_slow_gait * np.clip(0.9 - st["gait"], 0, 0.7)
    )
    meds = np.where(pop.meds >= 10, cfg.lhr_meds_10, np.where(pop.meds >= 5, cfg.lhr_meds_5_9, 0.0))
    fof = cfg.lhr_fear_of_falling * (st["fear"] > 1.0)
    acute = np.log1p(cfg.acute_hazard_gain * st["ep_sev"] * st["ep_active"])
    # Age acts through frailty: the planted cause is "frailty" for both.
    frail = (
        cfg.lhr_frailty * np.clip(st["frailty"] - 0.15, 0, None)
        + cfg.lhr_age_decade * (pop.age - 65) / 10
    )
    return np.stack(
        [
            acute,
            prev,
            gait_bal,
            meds,
            fof,
            cfg.lhr_dementia * pop.dementia,
            cfg.lhr_poor_vision * pop.vision,
            frail,
        ],
        axis=1,
    )


def _run(cfg: SimConfig, progress: ProgressFn | None = None) -> _Raw:
    """Step the engine over every recorded day."""
    from twin.engine import Engine

    engine = Engine(cfg)
    engine.run(cfg.days, progress)
    return engine.raw()


def _iso_terms(pop: Population, st: dict) -> tuple[np.ndarray, ...]:
    """Loneliness target contributions per planted cause (ISOLATION_CAUSES order)."""
    low_mob = 0.5 * np.clip((st["frailty"] - 0.25) * 4, 0, 1.5)
    few_visits = 0.6 * np.clip(1 - st["visit_hours"] / 0.25, 0, 1)
    return (
        0.55 * pop.lives_alone,
        0.9 * st["grief"],
        low_mob,
        few_visits,
        pop.trait,
    )


# ---------------------------------------------------------------------------------------------
# From arrays to tables
# ---------------------------------------------------------------------------------------------


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
    out: dict[str, pd.DataFrame] = {"residents": residents_frame(pop, start)}

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
