"""What-if in the twin: does visiting the residents a policy picks prevent falls and loneliness?

The twin is replayed from its seed to the end of its recorded history (exactly the recorded
history), then run forward `weeks` weeks once per policy and seed. Once a week (the forward start's weekday) a
policy posts visit tasks (home-hazard check, walk, companionship) within the volunteers' spare
weekly hours; volunteers claim them (`ClaimModel`: distance, kind, credits); claimed visits act
on the twin's latent state with effect sizes from trials (`twin.engine.VisitEffects`). All
policies of one seed share every random draw of the twin and of the volunteers (common random
numbers): only the visits differ.

Policies:
- `none`: no visits;
- `random`: residents in random order;
- `baseline`: each risk model's first baseline (a STEADI-style screen; living alone + last
  loneliness score), fitted on the recorded history;
- `model`: the `@champion` risk models through the same features (`build_features` as of the
  day, from the history so far) and the same `RiskSpec.explain` the service scores with, top-K
  by expected benefit (probability x the visit's effect per hour);
- `actions`: the tasks the service's actions policy (`models.policy.plan_task`) opens from the
  same verdicts: every high band, kind and due date and credits as the service sets them;
- `oracle`: the twin's hidden truth: the falls each resident would have over the rest of the
  run with nobody visiting (same seed, so the same future), and the probability of scoring lonely.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from features.pipeline import History, build_features, load_history
from models.policy import (
    DEFAULT_POLICY,
    NEUTRAL_SCARCITY,
    ActionPolicy,
    Scarcity,
    Verdict,
    credit_hours,
    grid_scarcity,
    plan_task,
)
from models.registry import load_champion, risk_specs
from twin.dynamics import residents_frame, take
from twin.engine import VISIT_KINDS, Engine, VisitEffects
from twin.simulate import SimConfig

POLICIES = ("none", "random", "baseline", "model", "actions", "oracle")
PRICING = ("flat", "scarcity")
FALL_KINDS = ("home_hazard_check", "walk")
# What each visit kind is for: falls or loneliness.
TARGET_OF = {"home_hazard_check": "falls", "walk": "falls", "companionship": "loneliness"}
LONELY_CUT = 5.5  # UCLA-3 of 6 or more counts as lonely (as the isolation label)
SENSOR_REACH_DAYS = 200  # sensor days any feature window can see back from its as-of date
SOCIAL_REACH_DAYS = 120  # visits, requests, tasks: longest window 90 days (plus each one's last)
METRICS = ("falls", "injurious_falls", "expected_falls", "lonely_resident_days", "visit_hours",
           "credits", "tasks_posted", "tasks_claimed_in_time", "falls_prevented_per_100h",
           "expected_falls_prevented_per_100h", "lonely_days_prevented_per_100h")


@dataclass(frozen=True)
class ClaimModel:
    """How volunteers pick tasks from the feed (every figure a knob).

    Each volunteer looks at the feed once a week, on a random day, and claims the open tasks
    they like best while their spare hours last. A task is liked when
        appeal + kind_appeal[kind] + credit_weight * log(credits / hours)
        - distance_weight * grid steps + noise > 0,
    noise logistic with scale `noise`. A task can be claimed until its due date; a claimed task
    is visited that day. Grids sit on a square lattice in id order (steps = Manhattan distance).
    """

    appeal: float = 1.0
    kind_appeal: dict[str, float] = field(
        default_factory=lambda: {"home_hazard_check": -0.2, "walk": 0.1, "companionship": 0.2}
    )
    credit_weight: float = 1.5
    distance_weight: float = 1.0
    noise: float = 0.5


@dataclass(frozen=True)
class WhatIfConfig:
    """One what-if experiment."""

    weeks: int = 26
    seeds: int = 10
    first_seed: int = 1
    policies: tuple[str, ...] = POLICIES
    capacity_hours: float | None = None  # None: the volunteers' spare weekly hours
    pricing: str = "scarcity"
    fall_share: float = 0.75  # of the weekly hours, for fall prevention (rest: companionship)
    effects: VisitEffects = field(default_factory=VisitEffects)
    claim: ClaimModel = field(default_factory=ClaimModel)
    action_policy: ActionPolicy = DEFAULT_POLICY

    def __post_init__(self) -> None:
        unknown = [p for p in self.policies if p not in POLICIES]
        if unknown:
            raise ValueError(f"unknown policies {unknown}; policies are {', '.join(POLICIES)}")
        if self.pricing not in PRICING:
            raise ValueError(f"pricing must be one of {PRICING}, got {self.pricing!r}")
        if self.weeks < 1 or self.seeds < 1:
            raise ValueError("weeks and seeds must be at least 1")
        if not 0 <= self.fall_share <= 1:
            raise ValueError(f"fall_share must be in [0, 1], got {self.fall_share}")
        if self.capacity_hours is not None and self.capacity_hours < 0:
            raise ValueError("capacity_hours must not be negative")


def _rng(*key: int | str) -> np.random.Generator:
    """A generator for one (seed, week, site): the same for every policy."""
    return np.random.default_rng([zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in key])


# ---------------------------------------------------------------------------------------------
# The twin as recorded, and what a policy may know of it
# ---------------------------------------------------------------------------------------------


def sim_config_of(history_dir: str | Path) -> SimConfig:
    """The simulator config a history was written with (its manifest), checked by twin id."""
    manifest = json.loads((Path(history_dir) / "manifest.json").read_text())
    raw = dict(manifest["config"])
    fields_ = SimConfig.__dataclass_fields__
    cfg = SimConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in fields_})
    if cfg.twin_id != manifest["twin_id"]:
        raise ValueError(
            f"{history_dir}: manifest twin {manifest['twin_id']} is not reproduced by this simulator "
            f"(twin {cfg.twin_id}); simulate it again with this version"
        )
    return cfg


@dataclass
class Twin:
    """The recorded twin at the end of its history: engine state, tables, volunteers' hours."""

    engine: Engine
    history: History  # recorded tables, trimmed to what features of later days can still see
    full_history: History  # recorded tables as read
    spare_hours: np.ndarray  # per volunteer, a week
    grid_xy: np.ndarray  # (grids, 2) lattice position
    weeks: int

    @property
    def start_day(self) -> int:
        return self.engine.recorded_days


def spare_volunteer_hours(history: History, volunteers: pd.DataFrame, tasks: pd.DataFrame,
                          weeks: int = 8) -> np.ndarray:
    """Each volunteer's offered weekly hours minus the task hours they did a week lately."""
    done = tasks[tasks["status"] == "completed"]
    if done.empty:
        return volunteers["weekly_hours"].to_numpy(float)
    last = done["completed_at"].max()
    recent = done[done["completed_at"] > last - pd.Timedelta(days=7 * weeks)]
    used = recent.groupby("volunteer_id")["credits"].sum() / weeks
    used_v = volunteers["volunteer_id"].map(used).fillna(0.0).to_numpy(float)
    return np.clip(volunteers["weekly_hours"].to_numpy(float) - used_v, 0, None)


def _recent_and_last(table: pd.DataFrame | None, column: str, cut: pd.Timestamp) -> pd.DataFrame | None:
    """Rows from `cut` on, plus each resident's last row before it (a "days since" feature
    reads it): the features of any later as-of date are unchanged, the table much smaller."""
    if table is None:
        return None
    when = pd.to_datetime(table[column])
    recent = (when >= cut).to_numpy()
    old = table[~recent & when.notna().to_numpy()]
    last = old.loc[pd.to_datetime(old[column]).groupby(old["resident_id"].astype(str)).idxmax().to_numpy()]
    return pd.concat([last, table[recent]], ignore_index=True)


def load_twin(history_dir: str | Path, weeks: int,
              progress: Callable[[int, int], None] | None = None) -> Twin:
    """Replay the twin from its seed over its recorded days and read its recorded tables."""
    from twin.store import HistoryStore

    cfg = sim_config_of(history_dir)
    engine = Engine(cfg, extra_days=7 * weeks + 7)
    engine.run(cfg.days, progress)
    full = load_history(history_dir)
    history = History(**full.tables())
    end = pd.Timestamp(engine.start) + pd.Timedelta(days=cfg.days)
    sd = history.sensor_days
    history.sensor_days = sd[sd["date"] >= end - pd.Timedelta(days=SENSOR_REACH_DAYS)].reset_index(drop=True)
    cut = end - pd.Timedelta(days=SOCIAL_REACH_DAYS)
    history.visits = _recent_and_last(history.visits, "date", cut)
    history.service_requests = _recent_and_last(history.service_requests, "timestamp", cut)
    history.tasks = _recent_and_last(history.tasks, "completed_at", cut)
    store = HistoryStore(Path(history_dir))
    tasks = store.read("tasks", columns=["volunteer_id", "status", "completed_at", "credits"])
    spare = spare_volunteer_hours(history, engine.volunteers, tasks)
    g = len(engine.pop.grid_ids)
    width = int(np.ceil(np.sqrt(g)))
    xy = np.stack([np.arange(g) // width, np.arange(g) % width], axis=1)
    return Twin(engine, history, full, spare, xy, weeks)


# ---------------------------------------------------------------------------------------------
# The history so far of a forward run, as the feature pipeline reads it
# ---------------------------------------------------------------------------------------------


def _cat(parts: list, dtype=None) -> np.ndarray:
    return np.concatenate(parts) if parts else np.array([], dtype=dtype or object)


class ForwardTables:
    """The forward days' rows appended to the recorded tables, cheaply, once a week.

    Only the columns the feature pipeline reads; rows from the engine's own lists past the
    recorded days, plus the policy's visits (time-bank visits and completed tasks).
    """

    def __init__(self, twin: Twin, engine: Engine):
        self.twin, self.engine = twin, engine
        self.marks = {name: len(getattr(engine, name)["day"]) for name in ("ev", "asm", "req", "vis", "tsk")}
        self.policy_visits: list[tuple[int, np.ndarray, str, float]] = []  # day, residents, kind, hours

    def _since(self, name: str) -> dict[str, np.ndarray]:
        lists = getattr(self.engine, name)
        m = self.marks[name]
        return {k: _cat(v[m:]) for k, v in lists.items()}

    def history(self, upto_day: int) -> History:
        """Recorded rows plus forward rows of days before `upto_day`."""
        eng, rec = self.engine, self.twin.history
        ids = eng.pop.ids
        day0 = pd.Timestamp(eng.start)

        def dates(d):
            return day0 + pd.to_timedelta(np.asarray(d, dtype=np.int64), unit="D")

        first = self.twin.start_day
        ev = self._since("ev")
        events = pd.DataFrame({
            "resident_id": pd.array(ids[ev["idx"].astype(np.int64)], dtype="str"),
            "date": dates(ev["day"]), "type": pd.array(ev["type"].astype(str), dtype="str"),
            "injury": pd.array(ev["injury"].astype(bool), dtype="boolean"),
        })
        a = self._since("asm")
        assessments = pd.DataFrame({
            "resident_id": pd.array(ids[a["idx"].astype(np.int64)], dtype="str"),
            "date": dates(a["day"]),
            "tug_seconds": a["tug"].astype(float),
            "fear_of_falling": pd.array(a["fear"].astype(bool), dtype="boolean"),
            "steadi_fell_past_year": pd.array(a["fell"].astype(bool), dtype="boolean"),
            "steadi_unsteady": pd.array(a["unsteady"].astype(bool), dtype="boolean"),
            "loneliness_score": a["ucla"].astype(float),
        })
        q = self._since("req")
        q_idx = q["idx"].astype(np.int64)
        from twin.schema import REQUEST_CATEGORIES

        requests = pd.DataFrame({
            "resident_id": pd.array(ids[q_idx], dtype="str"),
            "grid_id": pd.array(eng.pop.grid_ids[eng.pop.grid[q_idx]], dtype="str"),
            "timestamp": dates(q["day"]) + pd.Timedelta(hours=12),
            "category": pd.array(np.array(REQUEST_CATEGORIES)[q["cat"].astype(np.int64)], dtype="str"),
        })
        tk = self._since("tsk")
        done = tk["status"] == "completed"
        t_idx = tk["idx"].astype(np.int64)[done]
        t_day = (tk["day"].astype(np.int64) + tk["delay"].astype(np.int64))[done]
        p_idx = _cat([np.asarray(v[1]) for v in self.policy_visits], np.int64).astype(np.int64)
        p_day = _cat([np.full(len(v[1]), v[0]) for v in self.policy_visits], np.int64).astype(np.int64)
        p_h = _cat([np.full(len(v[1]), v[3]) for v in self.policy_visits], float).astype(float)
        tasks = pd.DataFrame({
            "resident_id": pd.array(ids[np.concatenate([t_idx, p_idx])], dtype="str"),
            "status": pd.array(np.full(len(t_idx) + len(p_idx), "completed"), dtype="str"),
            "completed_at": dates(np.concatenate([t_day, p_day])) + pd.Timedelta(hours=12),
        })
        v = self._since("vis")
        visits = pd.DataFrame({
            "resident_id": pd.array(ids[np.concatenate([v["idx"].astype(np.int64), t_idx, p_idx])], dtype="str"),
            "date": dates(np.concatenate([v["day"].astype(np.int64), t_day, p_day])),
            "source": pd.array(np.concatenate([v["source"].astype(str), np.full(len(t_idx) + len(p_idx), "timebank")]),
                               dtype="str"),
            "hours": np.concatenate([v["hours"].astype(float), tk["credits"].astype(float)[done], p_h]),
        })
        dd, ii = np.nonzero(eng.present[first:upto_day])
        sensors = {"resident_id": pd.array(ids[ii], dtype="str"), "date": dates(dd + first)}
        for s, arr in eng.sensors.items():
            sensors[s] = np.round(arr[first:upto_day][dd, ii].astype(np.float64), 2)
        sensor_days = pd.DataFrame(sensors)

        def join(recorded: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
            if recorded is None:
                return new
            cols = [c for c in recorded.columns]
            new = new[[c for c in cols if c in new.columns]]
            return pd.concat([recorded, new], ignore_index=True)

        # newcomers who moved in during the forward days join the residents table
        new = np.flatnonzero((eng.arrival_day >= eng.recorded_days) & (eng.arrival_day < upto_day))
        residents = rec.residents
        if len(new):
            rows = residents_frame(take(eng.pop, new), eng.start, eng.arrival_day[new])
            residents = pd.concat([residents, rows[residents.columns]], ignore_index=True)
        return History(
            residents=residents,
            sensor_days=join(rec.sensor_days, sensor_days),
            assessments=join(rec.assessments, assessments),
            events=join(rec.events, events),
            visits=join(rec.visits, visits),
            service_requests=join(rec.service_requests, requests),
            tasks=join(rec.tasks, tasks),
        )


def features_as_of(tables: ForwardTables, day: int, residents: np.ndarray) -> tuple[pd.DataFrame, History]:
    """Features of `residents` (engine indices) as of 00:00 of `day`, from the history so far
    (which is returned too). Only that day is built, over the in-memory tables."""
    eng = tables.engine
    as_of = pd.Timestamp(eng.start) + pd.Timedelta(days=int(day))
    pairs = pd.DataFrame({"resident_id": pd.array(eng.pop.ids[residents], dtype="str"), "as_of_date": as_of})
    history = tables.history(day)
    feats = build_features(history, pairs)
    order = pd.Index(feats["resident_id"]).get_indexer(pairs["resident_id"])
    return feats.iloc[order].reset_index(drop=True), history


# ---------------------------------------------------------------------------------------------
# Scores: what each policy ranks residents by
# ---------------------------------------------------------------------------------------------


@dataclass
class Champions:
    """The `@champion` risk models, with the visit target their high band calls for."""

    loaded: dict[str, Any]
    target: dict[str, str]  # model -> "falls" | "loneliness"


def load_champions(tracking_uri: str) -> Champions:
    loaded, target = {}, {}
    for name, spec in risk_specs().items():
        loaded[name] = load_champion(name, tracking_uri)
        target[name] = TARGET_OF.get(spec.task_kind(()), "falls")
    return Champions(loaded, target)


@dataclass
class Scored:
    """One model's verdicts for the residents of a week, as the service makes them."""

    model: str
    version: str
    probability: np.ndarray
    band: np.ndarray
    reasons_by_row: dict[int, list[dict[str, Any]]]  # rows explained (those whose band acts)

    def reasons(self, i: int) -> list[dict[str, Any]]:
        """Row i's reasons, strongest first (as the service keeps them, before wording)."""
        return self.reasons_by_row.get(i, [])


def score_models(champions: Champions, feats: pd.DataFrame, explain_bands: Sequence[str] = (),
                 top_k: int = 3) -> dict[str, Scored]:
    """Probability and band per risk model (`RiskSpec.predict_proba` and its bands, which the
    service's answers equal), and for rows in `explain_bands` the reasons from `RiskSpec.explain`,
    the one call `/assess` makes. Explaining only those rows keeps a week's scoring cheap."""
    out = {}
    for name, spec in risk_specs().items():
        loaded = champions.loaded[name]
        X = feats[loaded.feature_names].to_numpy(np.float64)
        p = np.asarray(spec.predict_proba(loaded, X), dtype=float)
        band = np.asarray(spec.bands.bands(p), dtype=object)
        reasons: dict[int, list[dict[str, Any]]] = {}
        rows = np.flatnonzero(np.isin(band, list(explain_bands)))
        if len(rows):
            e = spec.explain(loaded, X[rows], top_k)
            p[rows], band[rows] = e.probability, e.band
            names = loaded.feature_names
            for k, i in enumerate(rows.tolist()):
                reasons[i] = [{"feature": names[j], "contribution": c} for j, c in e.reasons_of(k)]
        out[name] = Scored(name, loaded.version, p, band, reasons)
    return out


@dataclass
class Baselines:
    """Each risk model's first baseline, fitted on the recorded history."""

    fitted: dict[str, Any]


def fit_baselines(history: History, recorded_end: pd.Timestamp, champions_target: dict[str, str],
                  weeks_back: int = 52, step_weeks: int = 4) -> Baselines:
    """Fit each model's first baseline on as-of dates over the last year with a full label window."""
    fitted = {}
    for name, spec in risk_specs().items():
        if name not in champions_target:
            continue
        last = recorded_end - pd.Timedelta(days=spec.horizon_days + 1)
        dates = [last - pd.Timedelta(weeks=w) for w in range(0, weeks_back, step_weeks)]
        dates = [d.normalize() for d in dates]
        feats = build_features(history, dates)
        pairs = feats[["resident_id", "as_of_date"]]
        y = np.asarray(spec.label(history, pairs), dtype=float)
        rows = pd.concat([feats, pd.DataFrame(spec.baseline_columns(history, pairs))], axis=1)
        ok = ~np.isnan(y)
        b = spec.baselines[0]
        X = np.nan_to_num(b.inputs(rows[ok]), nan=0.0)
        fitted[name] = b.make(0).fit(X, y[ok].astype(int))
    return Baselines(fitted)


def baseline_scores(baselines: Baselines, history: History, feats: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {}
    pairs = feats[["resident_id", "as_of_date"]]
    for name, spec in risk_specs().items():
        if name not in baselines.fitted:
            continue
        rows = pd.concat([feats, pd.DataFrame(spec.baseline_columns(history, pairs))], axis=1)
        X = np.nan_to_num(spec.baselines[0].inputs(rows), nan=0.0)
        out[name] = np.asarray(baselines.fitted[name].predict_proba(X), dtype=float)
    return out


def truth_scores(engine: Engine, future_hazard: np.ndarray, t: int) -> dict[str, np.ndarray]:
    """The twin's hidden truth: the falls each resident would have over the rest of the run
    with nobody visiting (the `none` run of the same seed: same noise), which is what a visit
    with a lasting effect can prevent; and today's probability of scoring lonely."""
    cfg = engine.cfg
    rest = future_hazard[t - engine.recorded_days:].astype(float).sum(0)
    mu = cfg.ucla_intercept + cfg.ucla_slope * engine.st["loneliness"]
    return {"falls": rest, "loneliness": 1 - ndtr((LONELY_CUT - mu) / cfg.ucla_noise)}


# ---------------------------------------------------------------------------------------------
# Tasks, pricing and the volunteers' claims
# ---------------------------------------------------------------------------------------------


@dataclass
class Tasks:
    """A week's posted tasks (aligned arrays)."""

    resident: np.ndarray
    kind: np.ndarray
    hours: np.ndarray
    credits: np.ndarray
    due_days: np.ndarray  # claimable on week days 0 .. due_days - 1

    def __len__(self) -> int:
        return len(self.resident)


def week_scarcity(engine: Engine, t: int, policy: ActionPolicy) -> dict[str, Scarcity]:
    """The service's scarcity per grid: demand forecast (last week's requests, seasonal naive)
    against the volunteers' offered hours (`models.policy.grid_scarcity`)."""
    from twin.schema import REQUEST_CATEGORIES

    req = engine.req
    days = _cat(req["day"][-400:], np.int64) if req["day"] else np.array([], np.int64)
    keep = days >= t - 7
    idx = _cat(req["idx"][-400:], np.int64)[keep].astype(np.int64)
    cat = _cat(req["cat"][-400:], np.int64)[keep].astype(np.int64)
    grids = engine.pop.grid_ids[engine.pop.grid[idx]]
    series = pd.Series(grids.astype(str)) + ":" + pd.Series(np.array(REQUEST_CATEGORIES)[cat])
    daily = series.value_counts() / 7.0
    horizon = np.arange(1, 8)
    forecast = pd.DataFrame({  # the same daily mean for each of the coming seven days
        "series_id": np.repeat(daily.index.astype(str).to_numpy(), len(horizon)),
        "horizon": np.tile(horizon, len(daily)),
        "forecast": np.repeat(daily.to_numpy(float), len(horizon)),
    })
    return grid_scarcity(forecast, engine.volunteers[["grid_id", "weekly_hours"]], horizon_days=7, policy=policy)


def price(kind: np.ndarray, grids: np.ndarray, urgency: str, pricing: str,
          scarcity_by_grid: dict[str, Scarcity], policy: ActionPolicy) -> np.ndarray:
    """Credits: flat = the kind's base hours; scarcity = the service's formula."""
    if pricing == "flat":
        return np.array([policy.base_hours[k] for k in kind], dtype=float)
    return np.array([credit_hours(k, urgency, scarcity_by_grid.get(g, NEUTRAL_SCARCITY).factor, policy)
                     for k, g in zip(kind, grids, strict=True)], dtype=float)


def claim(tasks: Tasks, task_grid: np.ndarray, vol_grid: np.ndarray, spare: np.ndarray,
          grid_xy: np.ndarray, model: ClaimModel, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Which tasks volunteers claim in time, and on which week day (-1: not claimed)."""
    n_t, n_v = len(tasks), len(vol_grid)
    claimed_day = np.full(n_t, -1, np.int64)
    by = np.full(n_t, -1, np.int64)
    check_day = rng.integers(0, 7, n_v)
    order = np.lexsort((rng.random(n_v), check_day))
    noise = rng.logistic(0, model.noise, (n_v, n_t)) if n_t else np.zeros((n_v, 0))
    if not n_t:
        return claimed_day, by
    dist = np.abs(grid_xy[vol_grid][:, None, :] - grid_xy[task_grid][None, :, :]).sum(-1)
    kind_appeal = np.array([model.kind_appeal.get(k, 0.0) for k in tasks.kind])
    value = model.appeal + kind_appeal + model.credit_weight * np.log(tasks.credits / tasks.hours)
    utility = value[None, :] - model.distance_weight * dist + noise
    left = spare.astype(float).copy()
    for v in order:
        if left[v] <= 0:
            continue
        open_ = (claimed_day < 0) & (tasks.due_days > check_day[v]) & (utility[v] > 0)
        for j in np.flatnonzero(open_)[np.argsort(-utility[v, open_], kind="stable")]:
            if tasks.hours[j] <= left[v] + 1e-9:
                claimed_day[j], by[j] = check_day[v], v
                left[v] -= tasks.hours[j]
    return claimed_day, by


# ---------------------------------------------------------------------------------------------
# Planning: from scores to a week's tasks
# ---------------------------------------------------------------------------------------------


def fall_visit_options(score: np.ndarray, checked: np.ndarray, high_risk: np.ndarray,
                       effects: VisitEffects, hours: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per resident, the fall visit that helps most per hour (a home-hazard check until one is
    done in the run, walks after) and its expected benefit per hour (score x effect / hours)."""
    hs = 1 - np.where(high_risk, effects.home_safety_rar_high_risk, effects.home_safety_rar)
    walk = 1 - effects.exercise_rar ** (1 / effects.exercise_full_sessions)
    kind = np.where(checked, "walk", "home_hazard_check")
    gain = np.where(checked, walk / hours["walk"], hs / hours["home_hazard_check"])
    return kind, score * gain


def top_within(benefit: np.ndarray, hours: np.ndarray, budget: float) -> np.ndarray:
    """Indices by benefit, best first, while their hours fit in the budget."""
    order = np.argsort(-benefit, kind="stable")
    cum = np.cumsum(hours[order])
    return order[cum <= budget + 1e-9]


@dataclass
class PolicyMemory:
    """What a policy knows of its own past visits in the run."""

    checked: np.ndarray  # a home-hazard check done by this policy


def plan_week(policy: str, scores: dict[str, np.ndarray], candidates: np.ndarray, memory: PolicyMemory,
              high_risk: np.ndarray, capacity: float, cfg: WhatIfConfig) -> list[tuple[int, str]]:
    """(resident, kind) visits of a coordinator-planned week, within the capacity hours."""
    hours = dict(cfg.action_policy.base_hours)
    out: list[tuple[int, str]] = []
    fall_budget = capacity * cfg.fall_share
    if "falls" in scores and fall_budget > 0:
        kind, benefit = fall_visit_options(scores["falls"][candidates], memory.checked[candidates],
                                           high_risk[candidates], cfg.effects, hours)
        h = np.array([hours[k] for k in kind])
        for j in top_within(benefit, h, fall_budget):
            out.append((int(candidates[j]), str(kind[j])))
    lonely_budget = capacity - fall_budget
    if "loneliness" in scores and lonely_budget > 0:
        s = scores["loneliness"][candidates]
        h = np.full(len(candidates), hours["companionship"])
        for j in top_within(s, h, lonely_budget):
            out.append((int(candidates[j]), "companionship"))
    return out


# ---------------------------------------------------------------------------------------------
# One forward run
# ---------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    policy: str
    seed: int
    metrics: dict[str, float]
    claimed_by_grid: dict[str, list[int]]  # grid -> [posted, claimed in time]
    seconds: dict[str, float]


@dataclass
class Context:
    """Everything a run needs that does not change between policies and seeds."""

    twin: Twin
    cfg: WhatIfConfig
    champions: Champions | None
    baselines: Baselines | None
    capacity: float
    spare: np.ndarray
    no_visit_hazard: dict[int, np.ndarray] = field(default_factory=dict)  # seed -> (days, n)


def future_hazard(ctx: Context, seed: int) -> np.ndarray:
    """Daily fall hazards of the run with nobody visiting (what the oracle knows)."""
    if seed not in ctx.no_visit_hazard:
        run_policy(ctx, "none", seed)
    return ctx.no_visit_hazard[seed]


def capacity_of(twin: Twin, cfg: WhatIfConfig) -> tuple[float, np.ndarray]:
    """Weekly hours for visits and each volunteer's share (scaled to `capacity_hours` if given)."""
    spare = twin.spare_hours.astype(float)
    if cfg.capacity_hours is None:
        return float(spare.sum()), spare
    total = spare.sum()
    weights = spare / total if total > 0 else np.full(len(spare), 1 / max(len(spare), 1))
    return float(cfg.capacity_hours), weights * cfg.capacity_hours


def prepare(history_dir: str | Path, cfg: WhatIfConfig, tracking_uri: str | None,
            progress: Callable[[int, int], None] | None = None) -> Context:
    twin = load_twin(history_dir, cfg.weeks, progress)
    needs_models = any(p in ("model", "actions") for p in cfg.policies)
    champions = None
    if needs_models:
        if tracking_uri is None:
            raise ValueError("the model and actions policies need a tracking URI with @champion models")
        champions = load_champions(tracking_uri)
    baselines = None
    if "baseline" in cfg.policies:
        end = pd.Timestamp(twin.engine.start) + pd.Timedelta(days=twin.start_day)
        targets = champions.target if champions else {n: TARGET_OF.get(s.task_kind(()), "falls")
                                                      for n, s in risk_specs().items()}
        baselines = fit_baselines(twin.full_history, end, targets)
    capacity, spare = capacity_of(twin, cfg)
    return Context(twin, cfg, champions, baselines, capacity, spare)


def _targets(ctx: Context) -> dict[str, str]:
    if ctx.champions is not None:
        return ctx.champions.target
    return {n: TARGET_OF.get(s.task_kind(()), "falls") for n, s in risk_specs().items()}


def run_policy(ctx: Context, policy: str, seed: int) -> RunResult:
    """Run the twin forward `weeks` weeks under one policy and forward seed."""
    cfg, twin = ctx.cfg, ctx.twin
    timing = {"engine": 0.0, "features": 0.0, "scoring": 0.0, "planning": 0.0}
    t0 = time.perf_counter()
    eng = twin.engine.fork()
    eng.go_forward(seed, cfg.effects)
    tables = ForwardTables(twin, eng)
    timing["engine"] += time.perf_counter() - t0
    n = eng.n
    memory = PolicyMemory(checked=np.zeros(n, bool))
    pol = cfg.action_policy
    grid_ids = eng.pop.grid_ids
    posted_by_grid = np.zeros(len(grid_ids), np.int64)
    claimed_by_grid = np.zeros(len(grid_ids), np.int64)
    credits_spent = 0.0
    hours_done = 0.0
    n_posted = n_claimed = 0
    start_day = twin.start_day
    targets = _targets(ctx)
    for week in range(cfg.weeks):
        t = start_day + 7 * week
        t1 = time.perf_counter()
        candidates = np.flatnonzero(~eng.st["away"] & (eng.st["hospital_until"] < t))
        visits: list[tuple[int, str]] = []
        urgency_due: list[tuple[str, int]] = []
        credits_of: list[float] | None = None
        scar = week_scarcity(eng, t, pol) if cfg.pricing == "scarcity" else {}
        if policy != "none":
            scores: dict[str, np.ndarray] = {}
            high_risk = np.zeros(n, bool)
            if policy in ("model", "actions", "baseline"):
                tf = time.perf_counter()
                feats, so_far = features_as_of(tables, t, candidates)
                timing["features"] += time.perf_counter() - tf
                fallen = feats["falls_365d"].to_numpy(float) > 0 if "falls_365d" in feats else np.zeros(len(feats), bool)
                high_risk[candidates] = fallen
                ts = time.perf_counter()
                if policy == "baseline":
                    for name, p in baseline_scores(ctx.baselines, so_far, feats).items():
                        full = np.zeros(n)
                        full[candidates] = p
                        scores[targets[name]] = full
                else:
                    bands = cfg.action_policy.open_bands if policy == "actions" else ()
                    scored = score_models(ctx.champions, feats, bands)
                    if policy == "model":
                        for name, s in scored.items():
                            full = np.zeros(n)
                            full[candidates] = s.probability
                            scores[targets[name]] = full
                timing["scoring"] += time.perf_counter() - ts
            elif policy == "random":
                r = _rng(seed, week, "random_policy")
                scores = {"falls": r.random(n), "loneliness": r.random(n)}
            elif policy == "oracle":
                scores = truth_scores(eng, future_hazard(ctx, seed), t)
                high_risk = (t - eng.st["last_fall"]) <= 365
            if policy == "actions":
                visits, urgency_due, credits_of = _actions_week(
                    ctx, scored, candidates, feats, eng, t, scar)
            else:
                visits = plan_week(policy, scores, candidates, memory, high_risk, ctx.capacity, cfg)
                urgency_due = [("medium", 7)] * len(visits)
        timing["planning"] += time.perf_counter() - t1
        day_visits: list[dict[str, list[int]]] = [{} for _ in range(7)]
        if visits:
            res = np.array([v[0] for v in visits], np.int64)
            kind = np.array([v[1] for v in visits])
            hours = np.array([pol.base_hours[k] for k in kind], float)
            grids = eng.pop.grid[res]
            if credits_of is None:
                credits = price(kind, grid_ids[grids], "medium", cfg.pricing, scar, pol)
            else:
                credits = np.asarray(credits_of, float)
            due = np.array([d for _, d in urgency_due], np.int64)
            tasks = Tasks(res, kind, hours, credits, due)
            cday, _ = claim(tasks, grids, eng.vol_grid, ctx.spare, twin.grid_xy, cfg.claim,
                            _rng(seed, week, "claims"))
            ok = cday >= 0
            np.add.at(posted_by_grid, grids, 1)
            np.add.at(claimed_by_grid, grids[ok], 1)
            n_posted += len(tasks)
            n_claimed += int(ok.sum())
            credits_spent += float(credits[ok].sum())
            for j in np.flatnonzero(ok):
                day_visits[cday[j]].setdefault(kind[j], []).append(int(res[j]))
        te = time.perf_counter()
        for d in range(7):
            before = len(eng.delivered["day"])
            eng.step({k: np.array(v, np.int64) for k, v in day_visits[d].items()})
            for k_day, idx, kind_arr in zip(eng.delivered["day"][before:], eng.delivered["idx"][before:],
                                            eng.delivered["kind"][before:], strict=True):
                kd = str(kind_arr[0])
                h = pol.base_hours[kd]
                tables.policy_visits.append((int(k_day[0]), idx, kd, h))
                hours_done += h * len(idx)
                if kd == "home_hazard_check":
                    memory.checked[idx] = True
        timing["engine"] += time.perf_counter() - te
    timing["planning"] -= timing["features"] + timing["scoring"]  # the rest: ranking, claims, pricing
    if policy == "none":
        ctx.no_visit_hazard[seed] = eng.hazard_m[start_day:start_day + 7 * cfg.weeks].copy()
    metrics = outcome(eng, start_day, start_day + 7 * cfg.weeks)
    metrics.update(visit_hours=hours_done, credits=credits_spent, tasks_posted=float(n_posted),
                   tasks_claimed_in_time=float(n_claimed))
    by_grid = {str(g): [int(p), int(c)] for g, p, c in zip(grid_ids, posted_by_grid, claimed_by_grid, strict=True)}
    return RunResult(policy, seed, metrics, by_grid, timing)


def _actions_week(ctx: Context, scored: dict[str, Scored], candidates: np.ndarray, feats: pd.DataFrame,
                  eng: Engine, t: int, scar: dict[str, Scarcity]):
    """What the service's actions policy opens from the week's verdicts (every high band)."""
    cfg = ctx.cfg
    today = eng.start + timedelta(days=int(t))
    grid_of = eng.pop.grid_ids[eng.pop.grid]
    visits, due, credits = [], [], []
    for name, s in scored.items():
        for i in np.flatnonzero(np.isin(s.band, cfg.action_policy.open_bands)):
            rid = int(candidates[i])
            v = Verdict(resident_id=str(eng.pop.ids[rid]), grid_id=str(grid_of[rid]), model=name,
                        probability=float(s.probability[i]), band=str(s.band[i]), reasons=s.reasons(i),
                        model_version=s.version, as_of=today)
            sc = scar.get(v.grid_id, NEUTRAL_SCARCITY) if cfg.pricing == "scarcity" else NEUTRAL_SCARCITY
            task = plan_task(v, risk_specs()[name], today=today, scarcity=sc, policy=cfg.action_policy)
            if task is None or task.kind not in VISIT_KINDS:
                continue
            visits.append((rid, task.kind))
            due.append((task.urgency, max(1, min(7, (task.due_date - today).days))))
            credits.append(task.credits if cfg.pricing == "scarcity" else cfg.action_policy.base_hours[task.kind])
    return visits, due, credits


def outcome(eng: Engine, first: int, last: int) -> dict[str, float]:
    """Falls, injurious falls, expected falls and expected lonely resident-days over [first, last)."""
    ev = eng.ev
    day = _cat(ev["day"], np.int64).astype(np.int64)
    typ = _cat(ev["type"]).astype(str)
    inj = _cat(ev["injury"], bool).astype(bool)
    window = (day >= first) & (day < last) & (typ == "fall")
    cfg = eng.cfg
    mu = cfg.ucla_intercept + cfg.ucla_slope * eng.lonely_m[first:last].astype(float)
    p_lonely = 1 - ndtr((LONELY_CUT - mu) / cfg.ucla_noise)
    return {
        "falls": float(window.sum()),
        "injurious_falls": float((window & inj).sum()),
        "expected_falls": float(eng.hazard_m[first:last].astype(float).sum()),
        "lonely_resident_days": float((p_lonely * eng.in_comm[first:last]).sum()),
    }


# ---------------------------------------------------------------------------------------------
# The experiment and its summary
# ---------------------------------------------------------------------------------------------


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    """Mean and 95% t-interval over seeds (None when undefined)."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], float)
    if len(x) == 0:
        return {"mean": None, "ci95": [None, None]}
    m = float(x.mean())
    if len(x) < 2:
        return {"mean": m, "ci95": [m, m]}
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return {"mean": m, "ci95": [m - half, m + half]}


def summarise(results: list[RunResult], cfg: WhatIfConfig, capacity: float, meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON of an experiment: per policy, each metric's mean and 95% interval over seeds;
    prevention per 100 volunteer hours is paired with `none` of the same seed."""
    by = {(r.policy, r.seed): r for r in results}
    seeds = sorted({r.seed for r in results})
    out = []
    for p in cfg.policies:
        rows = [by[(p, s)] for s in seeds if (p, s) in by]
        entry: dict[str, Any] = {"policy": p}
        for m in ("falls", "injurious_falls", "expected_falls", "lonely_resident_days", "visit_hours",
                  "credits", "tasks_posted", "tasks_claimed_in_time"):
            entry[m] = mean_ci([r.metrics[m] for r in rows])
        for m, base in (("falls_prevented_per_100h", "falls"),
                        ("expected_falls_prevented_per_100h", "expected_falls"),
                        ("lonely_days_prevented_per_100h", "lonely_resident_days")):
            vals = []
            for r in rows:
                ref = by.get(("none", r.seed))
                h = r.metrics["visit_hours"]
                vals.append(None if ref is None or h <= 0 else 100 * (ref.metrics[base] - r.metrics[base]) / h)
            entry[m] = mean_ci(vals)
        posted = np.sum([[v[0] for v in r.claimed_by_grid.values()] for r in rows], axis=0) if rows else []
        claimed = np.sum([[v[1] for v in r.claimed_by_grid.values()] for r in rows], axis=0) if rows else []
        grids = list(rows[0].claimed_by_grid) if rows else []
        entry["claimed_in_time_by_grid"] = {
            g: (None if p_ == 0 else round(float(c_) / float(p_), 4)) for g, p_, c_ in zip(grids, posted, claimed, strict=True)
        }
        entry["seconds_per_run"] = mean_ci([sum(r.seconds.values()) for r in rows])
        out.append(entry)
    summary = {**meta, "weeks": cfg.weeks, "seeds": seeds, "pricing": cfg.pricing,
               "capacity_hours_per_week": capacity, "fall_share": cfg.fall_share,
               "effects": asdict(cfg.effects), "claim_model": asdict(cfg.claim), "policies": out}
    model = next((e for e in out if e["policy"] == "model"), None)
    oracle = next((e for e in out if e["policy"] == "oracle"), None)
    if model and oracle:
        summary["model_share_of_oracle"] = share_of(results, "model", "oracle")
    return summary


def share_of(results: list[RunResult], policy: str, ceiling: str) -> dict[str, Any]:
    """Falls prevented per 100 h by `policy` over `ceiling`'s, per seed (mean and interval)."""
    by = {(r.policy, r.seed): r for r in results}
    vals = []
    for (p, s), r in by.items():
        if p != policy or ("none", s) not in by or (ceiling, s) not in by:
            continue
        ref = by[("none", s)].metrics["expected_falls"]
        c = by[(ceiling, s)]
        a = (ref - r.metrics["expected_falls"]) / max(r.metrics["visit_hours"], 1e-9)
        b = (ref - c.metrics["expected_falls"]) / max(c.metrics["visit_hours"], 1e-9)
        vals.append(a / b if b > 0 else None)
    return {"basis": "expected falls prevented per 100 h", **mean_ci(vals)}


def read_checkpoint(path: str | Path, cfg: WhatIfConfig) -> list[RunResult]:
    """Runs already done (one JSON line each) of the policies and seeds `cfg` asks for."""
    path = Path(path)
    if not path.exists():
        return []
    seeds = range(cfg.first_seed, cfg.first_seed + cfg.seeds)
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            r = RunResult(**json.loads(line))
            if r.policy in cfg.policies and r.seed in seeds:
                out.append(r)
    return out


def run_experiment(history_dir: str | Path, cfg: WhatIfConfig, tracking_uri: str | None = None,
                   progress: Callable[[str, int, int], None] | None = None,
                   checkpoint: str | Path | None = None) -> dict[str, Any]:
    """Every policy x seed; returns the summary (see `summarise`). With `checkpoint`, each run
    is appended there as it ends and runs found there are not run again (same twin and knobs
    assumed)."""
    t0 = time.perf_counter()
    ctx = prepare(history_dir, cfg, tracking_uri,
                  (lambda d, total: progress("replaying the recorded history", d, total)) if progress else None)
    t_prep = time.perf_counter() - t0
    results = read_checkpoint(checkpoint, cfg) if checkpoint else []
    done = {(r.policy, r.seed) for r in results}
    jobs = [(s, p) for s in range(cfg.first_seed, cfg.first_seed + cfg.seeds) for p in cfg.policies]
    for k, (s, p) in enumerate(jobs):
        if (p, s) in done:
            continue
        if progress:
            progress(f"{p} seed {s}", k, len(jobs))
        r = run_policy(ctx, p, s)
        results.append(r)
        if checkpoint:
            with Path(checkpoint).open("a") as fh:
                fh.write(json.dumps(asdict(r)) + "\n")
    if progress:
        progress("done", len(jobs), len(jobs))
    eng = ctx.twin.engine
    meta = {
        "twin_id": eng.cfg.twin_id, "residents": eng.cfg.residents,
        "residents_at_start": int((~eng.st["away"]).sum()), "recorded_days": eng.recorded_days,
        "forward_from": (eng.start + timedelta(days=eng.recorded_days)).isoformat(),
        "volunteers": len(eng.volunteers),
        "models": ({n: m.version for n, m in ctx.champions.loaded.items()} if ctx.champions else {}),
        "seconds": {"prepare": round(t_prep, 2), "total": round(time.perf_counter() - t0, 2)},
    }
    summary = summarise(results, cfg, ctx.capacity, meta)
    summary["runs"] = [{"policy": r.policy, "seed": r.seed, **r.metrics,
                        "seconds": {k: round(v, 3) for k, v in r.seconds.items()}} for r in results]
    return summary


def markdown_table(summary: dict[str, Any]) -> str:
    """The README table: per policy, means and 95% intervals over seeds."""
    def f(x, nd=1):
        if x["mean"] is None:
            return "—"
        lo, hi = x["ci95"]
        return f"{x['mean']:.{nd}f} ({lo:.{nd}f} to {hi:.{nd}f})"

    lines = ["| policy | falls | injurious falls | lonely resident-days | visit hours | credits | "
             "falls prevented / 100 h | expected falls prevented / 100 h |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for e in summary["policies"]:
        lines.append(f"| {e['policy']} | {f(e['falls'])} | {f(e['injurious_falls'])} | "
                     f"{f(e['lonely_resident_days'], 0)} | {f(e['visit_hours'], 0)} | {f(e['credits'], 0)} | "
                     f"{f(e['falls_prevented_per_100h'], 2)} | {f(e['expected_falls_prevented_per_100h'], 2)} |")
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path) -> Path:
    """Falls and lonely resident-days per policy with 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pols = [e["policy"] for e in summary["policies"]]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, title in zip(axes, ("falls", "lonely_resident_days", "falls_prevented_per_100h"),
                              ("falls", "lonely resident-days", "falls prevented / 100 volunteer h"), strict=True):
        m = [e[key]["mean"] if e[key]["mean"] is not None else np.nan for e in summary["policies"]]
        lo = [e[key]["ci95"][0] if e[key]["mean"] is not None else np.nan for e in summary["policies"]]
        hi = [e[key]["ci95"][1] if e[key]["mean"] is not None else np.nan for e in summary["policies"]]
        err = np.array([np.subtract(m, lo), np.subtract(hi, m)])
        ax.errorbar(range(len(pols)), m, yerr=err, fmt="o", capsize=4)
        ax.set_xticks(range(len(pols)), pols, rotation=30)
        ax.set_title(title)
    fig.suptitle(f"what-if: {summary['weeks']} weeks, {len(summary['seeds'])} seeds, "
                 f"{summary['capacity_hours_per_week']:.0f} volunteer h/week ({summary['pricing']} credits)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def log_to_mlflow(summary: dict[str, Any], tracking_uri: str) -> str:
    """One MLflow run in experiment `whatif`: parameters, per-policy metrics, the JSON, the
    table and the plot. Returns the run id."""
    import tempfile

    import mlflow

    from training.tracking import experiment_id, metric_key, tracking

    with tracking(tracking_uri) as client:
        exp = experiment_id(client, "whatif", tracking_uri)
        with mlflow.start_run(experiment_id=exp, run_name=f"whatif-{summary['pricing']}") as run:
            mlflow.log_params({
                "weeks": summary["weeks"], "seeds": len(summary["seeds"]), "pricing": summary["pricing"],
                "capacity_hours_per_week": round(summary["capacity_hours_per_week"], 2),
                "fall_share": summary["fall_share"], "twin_id": summary["twin_id"],
                "policies": ",".join(e["policy"] for e in summary["policies"]),
                **{f"effect.{k}": v for k, v in summary["effects"].items()},
            })
            metrics = {}
            for e in summary["policies"]:
                for m in ("falls", "injurious_falls", "lonely_resident_days", "visit_hours", "credits",
                          "falls_prevented_per_100h"):
                    if e[m]["mean"] is not None:
                        metrics[metric_key(e["policy"], m)] = e[m]["mean"]
                        metrics[metric_key(e["policy"], m, "ci_lo")] = e[m]["ci95"][0]
                        metrics[metric_key(e["policy"], m, "ci_hi")] = e[m]["ci95"][1]
            mlflow.log_metrics(metrics)
            with tempfile.TemporaryDirectory() as tmp:
                d = Path(tmp)
                (d / "whatif.json").write_text(json.dumps(summary, indent=2, default=str))
                (d / "whatif_table.md").write_text(markdown_table(summary) + "\n")
                plot(summary, d / "whatif.png")
                mlflow.log_artifacts(str(d))
            return run.info.run_id


def with_options(cfg: WhatIfConfig, **changes: Any) -> WhatIfConfig:
    return replace(cfg, **changes)


__all__ = ["POLICIES", "PRICING", "ClaimModel", "VisitEffects", "WhatIfConfig", "date", "run_experiment",
           "run_policy", "prepare", "markdown_table", "log_to_mlflow", "plot"]
