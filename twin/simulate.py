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
from scipy.special import ndtr

from twin.calendar import public_holidays
from twin.schema import (
    FALL_CAUSES,
    ISOLATION_CAUSES,
    REQUEST_CATEGORIES,
    TABLES,
    TASK_HOURS,
    conform,
)
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
# Seasonal shocks (public holidays come from twin.calendar)
# ---------------------------------------------------------------------------------------------


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
    ss = np.random.SeedSequence(cfg.seed)
    r_pop, r_day, r_sens, r_req, r_vol, r_cal = (np.random.default_rng(s) for s in ss.spawn(6))
    start = date.fromisoformat(str(cfg.start))
    n, d_total = cfg.residents, cfg.days
    last = start + timedelta(days=d_total - 1)
    pop = make_population(cfg, r_pop)
    shocks = plan_shocks(start, d_total, r_cal)
    holidays = public_holidays(start, last)
    hol_idx = {(h - start).days for h in holidays}
    weekday0 = start.weekday()
    n_cat = len(REQUEST_CATEGORIES)
    cat_ix = {c: i for i, c in enumerate(REQUEST_CATEGORIES)}

    # Daily multipliers per request category: week, holidays, seasons, shocks.
    week_factor = np.array([1.15, 1.1, 1.05, 1.0, 0.95, 0.6, 0.5])
    day_cat = np.ones((d_total, n_cat))
    ep_season = np.ones(d_total)
    for t in range(d_total):
        doy = (start + timedelta(days=t)).timetuple().tm_yday
        day_cat[t] *= week_factor[(weekday0 + t) % 7] * (
            1 + 0.08 * np.cos(2 * np.pi * (doy - 15) / 365)
        )
        if t in hol_idx:
            day_cat[t] *= 0.4
        ep_season[t] = 1 + 0.2 * np.cos(2 * np.pi * (doy - 15) / 365)
    for s in shocks:
        ramp = np.sin(np.linspace(0, np.pi, s.end - s.start + 2)[1:-1]) if s.end > s.start else []
        for name, f in s.request_factor.items():
            day_cat[s.start : s.end, cat_ix[name]] *= 1 + (f - 1) * 1.5 * np.asarray(ramp)
        ep_season[s.start : s.end] *= 1 + (s.episode_factor - 1) * 1.5 * np.asarray(ramp)
    grid_cat = r_cal.lognormal(0, 0.25, (len(pop.grid_ids), n_cat))
    cat_base = np.array(
        [0.020, 0.010, 0.015, 0.012, 0.006]
    )  # meals, companionship, transport, household, escort

    # Volunteers per grid (about one per eight residents, unevenly spread).
    n_grids = len(pop.grid_ids)
    per_grid = np.bincount(pop.grid, minlength=n_grids)
    vol_count = np.maximum(
        2, r_vol.poisson(per_grid / cfg.residents_per_volunteer * r_vol.lognormal(0, 0.3, n_grids))
    )
    vol_grid = np.repeat(np.arange(n_grids), vol_count)
    n_vol = len(vol_grid)
    vol_offset = np.concatenate([[0], np.cumsum(vol_count)[:-1]])
    vol_hours = np.round(np.clip(r_vol.lognormal(np.log(3.0), 0.5, n_vol), 0.5, 20), 1)
    volunteers = pd.DataFrame(
        {
            "volunteer_id": [f"V{i + 1:05d}" for i in range(n_vol)],
            "grid_id": pop.grid_ids[vol_grid],
            "joined_on": pd.Timestamp(start)
            - pd.to_timedelta(r_vol.integers(1, 3 * 365, n_vol), unit="D"),
            "weekly_hours": vol_hours,
        }
    )
    supply = np.bincount(vol_grid, weights=vol_hours, minlength=n_grids) / np.maximum(per_grid, 1)
    grid_complete = np.clip(0.45 + 3.0 * supply, 0.5, 0.95)

    # State.
    f32 = np.float32
    st: dict[str, np.ndarray] = {}
    st["frailty"] = pop.frailty0.astype(np.float64).copy()
    st["gait"] = pop.gait0.copy()
    st["ep_day"] = np.full(n, -1, np.int64)
    st["ep_len"] = np.zeros(n, np.int64)
    st["ep_lag"] = np.zeros(n, np.int64)
    st["ep_sev"] = np.zeros(n)
    st["ep_vis"] = np.zeros(n)
    st["ep_infection"] = np.zeros(n, bool)
    st["ep_active"] = np.zeros(n, bool)
    st["last_fall"] = np.full(n, -100_000, np.int64)
    st["fear"] = 0.45 * pop.balance + r_day.normal(0, 0.6, n)
    st["grief"] = np.zeros(n)
    st["visit_hours"] = np.full(n, 0.2)
    st["hospital_until"] = np.full(n, -1, np.int64)
    st["hazard_check_until"] = np.full(n, -1, np.int64)
    st["moved"] = np.zeros(n, bool)
    st["outage"] = np.zeros(n, np.int64)
    st["device_down"] = np.zeros((len(DEVICES), n), np.int64)
    device_of = {s: k for k, sensors_ in enumerate(DEVICES.values()) for s in sensors_}
    st["next_assess"] = r_day.integers(0, 100, n)

    # Falls in the year before the history starts (what STEADI's "fallen in the past year" sees).
    terms0 = _fall_terms(cfg, pop, st, 0)
    h0 = cfg.base_fall_hazard * np.exp(terms0.sum(1)) * 1.25
    prior = r_day.random(n) < 1 - np.exp(-365 * h0)
    st["last_fall"][prior] = -r_day.integers(1, 365, int(prior.sum()))
    st["fear"][prior] += 0.8

    def trait_target() -> np.ndarray:
        return np.stack(_iso_terms(pop, st), axis=1).sum(1)

    st["loneliness"] = trait_target() + r_day.normal(0, 0.25, n)

    present = np.zeros((d_total, n), bool)
    in_comm = np.zeros((d_total, n), bool)
    sensors = {s: np.full((d_total, n), np.nan, f32) for s in SENSORS}
    frailty_m = np.zeros((d_total, n), f32)
    acute_m = np.zeros((d_total, n), bool)
    lonely_m = np.zeros((d_total, n), f32)
    hazard_m = np.zeros((d_total, n), f32)
    hosp_m = np.zeros((d_total, n), bool)
    tb_sched = np.zeros((d_total + 8, n), f32)  # time-bank visit hours arriving on a day
    hhc_sched = np.zeros((d_total + 8, n), bool)  # completed home-hazard checks

    ev = _lists("day", "idx", "type", "injury")
    asm = _lists("day", "idx", "tug", "fear", "fell", "unsteady", "ucla")
    req = _lists("day", "idx", "cat", "count")
    vis = _lists("day", "idx", "source", "hours")
    tsk = _lists(
        "day", "idx", "kind", "reason", "due", "delay", "status", "vol", "credits", "request"
    )
    n_requests = 0
    cau = _lists("day", "idx", "fall_cause", "iso_cause", "lonely_prob", "loneliness")
    eps = _lists("idx", "onset", "hazard_from", "end", "kind", "severity", "visibility")

    base_h = cfg.base_fall_hazard
    for t in range(d_total):
        in_c = ~st["moved"]
        hosp = st["hospital_until"] >= t
        at_home = in_c & ~hosp

        # --- weekly truth, as things stand at the start of the day (what an as-of date can know):
        # each resident's dominant planted cause
        if (weekday0 + t) % 7 == 0:
            ci = np.flatnonzero(in_c)
            fterms = _fall_terms(cfg, pop, st, t)[ci]
            iterms = np.stack(_iso_terms(pop, st), axis=1)[ci]
            iterms[:, 4] = np.clip(iterms[:, 4], 0, None)
            mu = cfg.ucla_intercept + cfg.ucla_slope * st["loneliness"][ci]
            sd = cfg.ucla_noise
            cau["day"].append(np.full(len(ci), t))
            cau["idx"].append(ci)
            cau["fall_cause"].append(np.argmax(fterms, axis=1))
            cau["iso_cause"].append(np.argmax(iterms, axis=1))
            cau["lonely_prob"].append(1 - ndtr((5.5 - mu) / sd))
            cau["loneliness"].append(st["loneliness"][ci])

        # --- acute episodes: start, progress, end
        sev_frail = np.exp(1.5 * (st["frailty"] - 0.2))
        rate = cfg.episodes_per_year / 365 * sev_frail * ep_season[t] * (1 + 0.03 * pop.meds)
        new_ep = in_c & (st["ep_day"] < 0) & (r_day.random(n) < rate)
        k = int(new_ep.sum())
        if k:
            lag = r_day.integers(cfg.episode_lag_days[0], cfg.episode_lag_days[1] + 1, k)
            length = (
                lag + 7 + np.round(r_day.gamma(2.0, cfg.episode_extra_days / 2, k)).astype(np.int64)
            )
            sev = r_day.uniform(0.4, 1.6, k)
            visib = r_day.uniform(0.5, 1.4, k)
            infection = r_day.random(k) < 0.6 * ep_season[t] / (0.6 * ep_season[t] + 0.4)
            st["ep_day"][new_ep] = 0
            st["ep_len"][new_ep] = length
            st["ep_lag"][new_ep] = lag
            st["ep_sev"][new_ep] = sev
            st["ep_vis"][new_ep] = visib
            st["ep_infection"][new_ep] = infection
            idx = np.flatnonzero(new_ep)
            eps["idx"].append(idx)
            eps["onset"].append(np.full(k, t))
            eps["hazard_from"].append(t + lag)
            eps["end"].append(t + length + 4)
            eps["kind"].append(np.where(infection, "infection", "medication_change"))
            eps["severity"].append(sev)
            eps["visibility"].append(visib)
        on = st["ep_day"] >= 0
        ep_d = st["ep_day"]
        st["ep_active"] = on  # the episode drives hazard over the coming weeks (truth cause)
        sign = np.where(
            on & (ep_d < st["ep_len"]),
            cfg.sensor_sign_gain * st["ep_sev"] * st["ep_vis"] * np.minimum(1.0, (ep_d + 1) / 3.0),
            0.0,
        )
        haz_on = on & (ep_d >= st["ep_lag"])
        st["frailty"] += np.where(on & (ep_d < st["ep_len"]), 0.0004 * st["ep_sev"], 0.0)

        # --- fall hazard
        terms = _fall_terms(cfg, pop, st, t)
        terms[:, 0] = np.where(haz_on, terms[:, 0], 0.0)
        noct = np.where(
            pop.nocturia >= 3,
            cfg.lhr_nocturia_3,
            np.where(pop.nocturia >= 2, cfg.lhr_nocturia_2, 0.0),
        )
        check = np.where(st["hazard_check_until"] >= t, cfg.hazard_check_lhr, 0.0)
        h = base_h * np.exp(terms.sum(1) + noct + check)
        h = np.where(at_home, h, 0.0)
        falls = r_day.random(n) < h
        nf = int(falls.sum())
        if nf:
            fi = np.flatnonzero(falls)
            inj = r_day.random(nf) < cfg.injury_prob * (0.8 + st["frailty"][fi])
            ev["day"].append(np.full(nf, t))
            ev["idx"].append(fi)
            ev["type"].append(np.full(nf, "fall"))
            ev["injury"].append(inj)
            st["last_fall"][fi] = t
            st["fear"][fi] += 0.7 + 0.5 * inj
            st["frailty"][fi] += 0.01 + 0.02 * inj
            to_hosp = fi[inj & (r_day.random(nf) < cfg.hospital_after_injury)]
            # After a fall the care team sometimes books a time-bank home-hazard check.
            hhc = fi[r_day.random(nf) < 0.35]
            if len(hhc):
                delay = r_day.integers(1, 8, len(hhc))
                done = r_day.random(len(hhc)) < grid_complete[pop.grid[hhc]]
                vol = vol_offset[pop.grid[hhc]] + (
                    r_day.random(len(hhc)) * vol_count[pop.grid[hhc]]
                ).astype(np.int64)
                hhc_sched[np.minimum(t + delay, d_total + 7)[done], hhc[done]] = True
                tb_sched[np.minimum(t + delay, d_total + 7)[done], hhc[done]] += TASK_HOURS[
                    "home_hazard_check"
                ]
                tsk["day"].append(np.full(len(hhc), t))
                tsk["idx"].append(hhc)
                tsk["kind"].append(np.full(len(hhc), "home_hazard_check"))
                tsk["reason"].append(np.full(len(hhc), "after_fall"))
                tsk["due"].append(np.full(len(hhc), 7))
                tsk["delay"].append(delay)
                tsk["status"].append(np.where(done, "completed", "expired"))
                tsk["vol"].append(vol)
                tsk["credits"].append(np.full(len(hhc), TASK_HOURS["home_hazard_check"]))
                tsk["request"].append(np.full(len(hhc), -1))
        else:
            to_hosp = np.array([], np.int64)

        # --- hospital stays, bereavements, moves
        ep_hosp = np.flatnonzero(
            haz_on & at_home & (r_day.random(n) < 0.004 * st["ep_sev"] * st["ep_infection"])
        )
        other_hosp = np.flatnonzero(
            at_home & (r_day.random(n) < 0.05 / 365 * (1 + 0.3 * pop.chronic))
        )
        hosp_new = np.unique(np.concatenate([to_hosp, ep_hosp, other_hosp]))
        if len(hosp_new):
            stay = r_day.integers(cfg.hospital_days[0], cfg.hospital_days[1] + 1, len(hosp_new))
            st["hospital_until"][hosp_new] = t + stay
            st["frailty"][hosp_new] += 0.02
            ev["day"].append(np.full(len(hosp_new), t))
            ev["idx"].append(hosp_new)
            ev["type"].append(np.full(len(hosp_new), "hospitalisation"))
            ev["injury"].append(np.zeros(len(hosp_new), bool))
        ber = np.flatnonzero(in_c & (r_day.random(n) < cfg.bereavements_per_year / 365))
        if len(ber):
            st["grief"][ber] += 1.0
            ev["day"].append(np.full(len(ber), t))
            ev["idx"].append(ber)
            ev["type"].append(np.full(len(ber), "bereavement"))
            ev["injury"].append(np.zeros(len(ber), bool))
        mv = np.flatnonzero(
            at_home & (r_day.random(n) < cfg.moves_per_year / 365 * (1 + 3 * st["frailty"]))
        )
        if len(mv):
            ev["day"].append(np.full(len(mv), t))
            ev["idx"].append(mv)
            ev["type"].append(np.full(len(mv), "move"))
            ev["injury"].append(np.zeros(len(mv), bool))

        # --- visits today: family, care staff, time bank (booked earlier)
        fam = at_home & (r_day.random(n) < pop.family_rate)
        care_p = np.clip((st["frailty"] - 0.35) * 3, 0, 0.9)
        care = at_home & (r_day.random(n) < care_p)
        fam_h = np.where(fam, np.round(r_day.gamma(2.0, 0.75, n), 1) + 0.25, 0.0)
        care_h = np.where(care, 0.5, 0.0)
        tb_h = np.where(in_c, tb_sched[t], 0.0)
        for src, mask, hrs in (("family", fam, fam_h), ("care", care, care_h)):
            ii = np.flatnonzero(mask)
            if len(ii):
                vis["day"].append(np.full(len(ii), t))
                vis["idx"].append(ii)
                vis["source"].append(np.full(len(ii), src))
                vis["hours"].append(hrs[ii])
        visit_today = fam_h + care_h + tb_h
        st["visit_hours"] += (visit_today - st["visit_hours"]) / 30.0
        done_hhc = hhc_sched[t] & in_c
        st["hazard_check_until"][done_hhc] = t + 180

        # --- loneliness drifts towards its target
        st["grief"] *= np.exp(-1 / 150)
        target = trait_target()
        st["loneliness"] += 0.03 * (target - st["loneliness"]) + r_day.normal(0, 0.06, n)
        L = st["loneliness"]

        # --- frailty and fear drift
        st["frailty"] += 0.012 / 365 + r_day.normal(0, 0.0015, n)
        st["frailty"] = np.clip(st["frailty"], 0.01, 1.0)
        st["fear"] += (0.45 * pop.balance - st["fear"]) / 400.0
        st["gait"] = np.clip(pop.gait0 - 1.3 * (st["frailty"] - pop.frailty0), 0.15, 1.8)

        # --- sensors (a row only when the resident is at home and the system worked)
        outage_new = at_home & (st["outage"] == 0) & (r_sens.random(n) < cfg.outage_start_prob)
        st["outage"][outage_new] = r_sens.geometric(1 / cfg.outage_mean_days, int(outage_new.sum()))
        ok = at_home & (st["outage"] == 0) & (r_sens.random(n) >= cfg.missing_day_prob)
        st["outage"] = np.maximum(st["outage"] - 1, 0)
        present[t] = ok
        in_comm[t] = in_c
        wd = (weekday0 + t) % 7
        weekend = wd >= 5
        mob = np.exp(-1.5 * np.clip(st["frailty"] - 0.2, 0, None))
        steps = (
            pop.steps_base
            * mob
            * np.exp(-0.6 * sign)
            * r_sens.lognormal(0, 0.25, n)
            * (0.9 if weekend else 1.0)
        )
        gait = st["gait"] - 0.15 * sign + r_sens.normal(0, 0.06, n)
        toilet = r_sens.poisson(pop.nocturia * (1 + 1.5 * sign))
        interrupt = r_sens.poisson(0.4 + 0.7 * toilet + 1.0 * sign)
        sleep = pop.sleep_base - 0.25 * interrupt - 0.3 * sign + r_sens.normal(0, 0.6, n)
        out = (
            pop.out_base
            * np.exp(-0.55 * (L - 0.5))
            * mob
            * np.exp(-0.8 * sign)
            * r_sens.lognormal(0, 0.45, n)
            * (r_sens.random(n) > 0.08)
        )
        kitchen = r_sens.poisson(pop.kitchen_base * np.exp(-0.3 * sign))
        inact = (
            2.0
            + 2.0 * np.clip(st["frailty"] - 0.1, 0, None)
            + 2.0 * sign
            + r_sens.gamma(2.0, 0.4, n)
        )
        n_vis = fam.astype(int) + care + (tb_h > 0)
        visitors = r_sens.binomial(n_vis, 0.85) + r_sens.poisson(0.1, n)
        phone = r_sens.poisson(pop.phone_base * np.exp(-0.2 * L))
        hr = pop.hr_base + (6.0 * st["ep_infection"] + 1.5) * sign + r_sens.normal(0, 2.5, n)
        vals = {
            "steps": np.clip(np.round(steps), 0, 60000),
            "gait_speed": np.clip(np.round(gait, 2), 0.05, 2.5),
            "night_toilet_visits": np.minimum(toilet, 20),
            "sleep_hours": np.clip(np.round(sleep, 1), 0, 16),
            "sleep_interruptions": np.minimum(interrupt, 30),
            "time_out_of_home": np.clip(np.round(out, 2), 0, 24),
            "kitchen_activity": np.minimum(kitchen, 500),
            "longest_inactivity": np.clip(np.round(inact, 2), 0, 24),
            "visitors_detected": np.minimum(visitors, 30),
            "phone_calls": np.minimum(phone, 60),
            "resting_heart_rate": np.clip(np.round(hr, 1), 30, 150),
        }
        wear_off = r_sens.random(n) < cfg.wearable_off_prob
        down = st["device_down"]
        broke = (down == 0) & (r_sens.random(down.shape) < cfg.device_failure_prob)
        down[broke] = r_sens.geometric(1 / cfg.device_repair_mean_days, int(broke.sum()))
        dev_off = down > 0
        st["device_down"] = np.maximum(down - 1, 0)
        for s_name, v in vals.items():
            v = v.astype(f32)
            null = (r_sens.random(n) < cfg.sensor_null_prob) | dev_off[device_of[s_name]]
            if s_name in WEARABLE_SENSORS:
                null |= wear_off
            if s_name == "gait_speed":
                null |= vals["steps"] < 300  # too little walking to measure gait
            v[null | ~ok] = np.nan
            sensors[s_name][t] = v

        # --- assessments
        due = in_c & ~hosp & (st["next_assess"] <= t)
        ai = np.flatnonzero(due)
        if len(ai):
            g = st["gait"][ai]
            tug = 9.3 / np.power(np.maximum(g, 0.15), 1.3) * r_day.lognormal(0, 0.25, len(ai))
            tug = tug + 1.2 * np.clip(pop.balance[ai], 0, None) + 1.0 * (sign[ai] > 0.3)
            fear_ans = (st["fear"][ai] + r_day.normal(0, 0.4, len(ai))) > 1.0
            fell = (t - st["last_fall"][ai]) <= 365
            fell = np.where(
                r_day.random(len(ai)) < 0.1, ~fell & (r_day.random(len(ai)) < 0.3), fell
            )
            unsteady = (
                pop.balance[ai]
                + 2.0 * (st["frailty"][ai] - pop.frailty0[ai])
                + r_day.normal(0, 0.5, len(ai))
            ) > 0.8
            ucla = np.clip(
                np.round(
                    cfg.ucla_intercept
                    + cfg.ucla_slope * L[ai]
                    + r_day.normal(0, cfg.ucla_noise, len(ai))
                ),
                3,
                9,
            )
            asm["day"].append(np.full(len(ai), t))
            asm["idx"].append(ai)
            asm["tug"].append(np.clip(np.round(tug, 1), 3, 120))
            asm["fear"].append(fear_ans)
            asm["fell"].append(fell)
            asm["unsteady"].append(unsteady)
            asm["ucla"].append(ucla)
            st["next_assess"][ai] = t + r_day.integers(
                cfg.assessment_gap_days[0], cfg.assessment_gap_days[1] + 1, len(ai)
            )

        # --- service requests and the time-bank tasks they open
        lam = np.empty((n, n_cat))
        lam[:, 0] = 1 + 3 * st["frailty"] + 1.0 * sign
        lam[:, 1] = 1 + 1.5 * np.clip(L, 0, None)
        lam[:, 2] = 1 + 0.2 * pop.chronic
        lam[:, 3] = 1 + 2 * st["frailty"]
        lam[:, 4] = (1 + 0.3 * pop.chronic) * (1 + 2 * sign)
        lam *= cat_base * day_cat[t] * grid_cat[pop.grid]
        lam[~at_home] = 0.0
        counts = r_req.poisson(lam)
        ri, rc = np.nonzero(counts)
        if len(ri):
            cnt = counts[ri, rc]
            ri, rc = np.repeat(ri, cnt), np.repeat(rc, cnt)
            m = len(ri)
            req["day"].append(np.full(m, t))
            req["idx"].append(ri)
            req["cat"].append(rc)
            is_task = r_req.random(m) < cfg.task_share
            ti, tc = ri[is_task], rc[is_task]
            mt = len(ti)
            if mt:
                g = pop.grid[ti]
                due_days = r_req.integers(1, 6, mt)
                delay = np.minimum(r_req.integers(0, 4, mt), due_days)
                u = r_req.random(mt)
                status = np.where(
                    u < cfg.cancel_share,
                    "cancelled",
                    np.where(
                        u < cfg.cancel_share + (1 - cfg.cancel_share) * grid_complete[g],
                        "completed",
                        "expired",
                    ),
                )
                vol = vol_offset[g] + (r_req.random(mt) * vol_count[g]).astype(np.int64)
                kinds = np.array(REQUEST_CATEGORIES)[tc]
                credits = (
                    np.round(
                        np.array([TASK_HOURS[c] for c in REQUEST_CATEGORIES])[tc]
                        * r_req.uniform(0.75, 1.25, mt)
                        * 4
                    )
                    / 4
                )
                done = status == "completed"
                np.add.at(
                    tb_sched, (np.minimum(t + delay[done], d_total + 7), ti[done]), credits[done]
                )
                tsk["day"].append(np.full(mt, t))
                tsk["idx"].append(ti)
                tsk["kind"].append(kinds)
                tsk["reason"].append(np.char.add("request:", kinds))
                tsk["due"].append(due_days)
                tsk["delay"].append(delay)
                tsk["status"].append(status)
                tsk["vol"].append(vol)
                tsk["credits"].append(credits)
                tsk["request"].append(n_requests + np.flatnonzero(is_task))
            n_requests += m

        # --- truth per day, then move the clocks
        frailty_m[t] = st["frailty"]
        acute_m[t] = on
        lonely_m[t] = L
        hazard_m[t] = h
        hosp_m[t] = hosp & in_c
        st["moved"][mv] = True
        adv = st["ep_day"] >= 0
        st["ep_day"][adv] += 1
        ended = adv & (st["ep_day"] >= st["ep_len"] + 4)
        st["ep_day"][ended] = -1
        st["ep_sev"][ended] = 0.0
        if progress is not None:
            progress(t + 1, d_total)

    return _Raw(
        cfg,
        pop,
        start,
        shocks,
        holidays,
        present,
        in_comm,
        sensors,
        frailty_m,
        acute_m,
        lonely_m,
        hazard_m,
        hosp_m,
        ev,
        asm,
        req,
        vis,
        tsk,
        cau,
        eps,
        volunteers,
        grid_complete,
    )


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
