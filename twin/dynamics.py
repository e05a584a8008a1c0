"""The simulator's building blocks: configuration, population, shocks and the hazard terms.

Shared by the whole-history simulator (`twin.simulate`) and the day-by-day engine (`twin.engine`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

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
SIMULATOR_VERSION = "2026.11.4"


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
    base_fall_hazard: float = 2.70e-4
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
    hospital_days: tuple[int, int] = (2, 12)

    # an open community: residents leave and new older residents move in (see `exit_rate`)
    moves_per_year: float = 0.072  # leaving the community a year, at frailty 0.2
    lhr_exit_frailty: float = float(100 * np.log(1.04))  # per unit frailty: HR 1.04 per 0.01
    arrivals_per_year: float = 0.088  # newcomers a year per initial resident (matches the exits)
    forward_reserve_days: int = 731  # arrivals planned this far past the recorded days

    # frailty: a slow chronic rise; what falls, episodes and stays add recovers in part
    frailty_drift_per_year: float = 0.008
    frailty_recovery_days: float = 180.0

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


def take(pop: Population, idx) -> Population:
    """The residents at `idx` (an index array or a slice); the grids stay."""
    return Population(**{
        k: (v if k == "grid_ids" else v[idx]) for k, v in vars(pop).items()
    })


def join(first: Population, then: Population) -> Population:
    """Two populations on the same grids, one after the other."""
    return Population(**{
        k: (v if k == "grid_ids" else np.concatenate([v, getattr(then, k)]))
        for k, v in vars(first).items()
    })


def plan_arrivals(cfg: SimConfig, grid_ids: np.ndarray, rng: np.random.Generator
                  ) -> tuple[Population, np.ndarray]:
    """New residents moving in over the recorded days and `forward_reserve_days` beyond them:
    their traits drawn as the first residents' were (any grid), and the day each moves in.

    Arrivals are a Poisson process at `arrivals_per_year` newcomers per initial resident, so
    the plan depends on the configuration only (never on who left): a forward run under any
    visit policy sees the same newcomers on the same days.
    """
    horizon = cfg.days + cfg.forward_reserve_days
    rate = cfg.arrivals_per_year * cfg.residents / 365.0
    per_day = rng.poisson(rate, horizon)
    per_day[0] = 0  # the first day's residents are the initial ones
    day = np.repeat(np.arange(horizon), per_day)
    m = len(day)
    newcomers = make_population(replace(cfg, residents=max(m, 1)), rng)
    newcomers = take(newcomers, slice(0, m))
    newcomers.grid_ids = grid_ids
    newcomers.grid = rng.integers(0, len(grid_ids), m)
    newcomers.ids = np.array([f"R{cfg.residents + i + 1:06d}" for i in range(m)])
    return newcomers, day


def exit_rate(cfg: SimConfig, frailty: np.ndarray) -> np.ndarray:
    """Daily probability of leaving the community (death, a move to long-term care, a move away).

    About 8% of community-dwelling people 65+ leave a year at the twin's starting frailty mix:
    deaths 3-4% (65+ mortality ~4.4% a year including care homes, CDC NCHS Data Brief 395, 2020),
    long-term care admission ~1.5-2% (Luppa et al., Age Ageing 2010), moves away ~2-3% (3.4% of
    people 65+ moved house in a year, about half of them leaving the county; US Census Bureau
    CPS ASEC 2019). Every cause rises with frailty: mortality HR 1.04 per 0.01 of the frailty
    index (Kojima et al., Age Ageing 2018, meta-analysis).
    """
    return cfg.moves_per_year / 365.0 * np.exp(cfg.lhr_exit_frailty * (frailty - 0.2))


def residents_frame(pop: Population, start: date, arrival_day: np.ndarray | None = None) -> pd.DataFrame:
    """One row per resident; ages are as on the day each moved in (the first day for most)."""
    year = np.full(len(pop.ids), start.year, np.int64)
    if arrival_day is not None:
        year = (pd.Timestamp(start) + pd.to_timedelta(np.asarray(arrival_day, np.int64), unit="D")
                ).year.to_numpy().astype(np.int64)
    return pd.DataFrame(
        {
            "resident_id": pop.ids,
            "birth_year": (year - pop.age).astype(np.int64),
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
    in_community: np.ndarray  # (days, n) bool: moved in and not moved away yet
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
    arrival_day: np.ndarray  # day each resident moved in (0: there from the start)


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



# an episode's hazard runs this many days past its length (the sensors have settled, the
# resident has not)
EPISODE_TAIL_DAYS = 4


def episode_season(day_of_year) -> np.ndarray:
    """The calendar's factor on the rate of new acute episodes (highest in mid-January); outbreaks
    (`shocks`) come on top of it."""
    return 1 + 0.2 * np.cos(2 * np.pi * (np.asarray(day_of_year) - 15) / 365)


def episode_rate(cfg: SimConfig, frailty: np.ndarray, meds: np.ndarray, season) -> np.ndarray:
    """Daily chance of starting an acute episode: frailer residents and those on more medicines
    fall ill more often, and more so in the season's peak."""
    return cfg.episodes_per_year / 365 * np.exp(1.5 * (frailty - 0.2)) * season * (1 + 0.03 * meds)


def draw_episodes(g: np.random.Generator, k: int, cfg: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """Lag and length in days of k acute episodes: the sensors show an episode for `length` days
    from its onset, its hazard runs from `lag` days after onset to `EPISODE_TAIL_DAYS` past its
    length."""
    lag = g.integers(cfg.episode_lag_days[0], cfg.episode_lag_days[1] + 1, k)
    return lag, lag + 7 + np.round(g.gamma(2.0, cfg.episode_extra_days / 2, k)).astype(np.int64)


def dominant_causes(terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's dominant cause (column index) among per-cause terms (rows: the residents living
    in the community that day): the term that lifts the resident most above the community's
    average (the footing of an attribution that explains a score's deviation from the average
    score: a term everyone shares explains no one), and the largest absolute term beside it."""
    return np.argmax(terms - terms.mean(axis=0), axis=1), np.argmax(terms, axis=1)


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


