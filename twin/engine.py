"""The twin's step-wise engine: the community's state, moved one day at a time.

`simulate()` runs it over the recorded days; a what-if starts it from the same seed, replays the
recorded history exactly, then runs it forward with volunteer visits a policy chooses
(`step(visits=...)`). A visit changes the latent state it targets by effect sizes from trials
(`VisitEffects`), which wane.

Two ways of drawing noise:
- recorded: every draw comes in sequence from the history's generators (the recorded history,
  byte for byte);
- forward: every (day, draw site) has its own generator and draws for every resident, so a
  resident's episodes, falls and sensor noise on a day never depend on what happened to anyone
  else. Runs of different policies with the same forward seed share all noise (common random
  numbers): only the visits differ. Newcomers move in on days planned from the seed alone, so
  every policy of a forward seed sees the same newcomers; residents leave by their own draws.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
from scipy.special import ndtr

from twin.calendar import public_holidays
from twin.dynamics import (
    DEVICES,
    EPISODE_TAIL_DAYS,
    SENSORS,
    WEARABLE_SENSORS,
    ProgressFn,
    SimConfig,
    _fall_terms,
    _iso_terms,
    _lists,
    _Raw,
    dominant_causes,
    draw_episodes,
    episode_rate,
    episode_season,
    exit_rate,
    join,
    make_population,
    plan_arrivals,
    plan_shocks,
    take,
)
from twin.schema import REQUEST_CATEGORIES, TASK_HOURS

VISIT_KINDS = ("home_hazard_check", "walk", "companionship")


@dataclass(frozen=True)
class VisitEffects:
    """What one volunteer visit does to the latent state it targets (every figure a knob).

    - Home-hazard check (home safety assessment and modification): rate of falls RaR 0.81
      (95% CI 0.68-0.97), 0.62 in people at high risk of falling (Gillespie et al., Cochrane
      Database Syst Rev 2012, CD007146). High risk here: a fall in the past year. The effect
      wanes with an e-folding time of `home_safety_waning_days`; a new check renews it.
    - Walk (exercise): programmes lower the rate of falls, RaR 0.77 (0.71-0.83) (Sherrington et
      al., Cochrane Database Syst Rev 2019, CD012424). One walk is 1/`exercise_full_sessions` of
      a programme; the dose decays with `exercise_waning_days` once walks stop.
    - Companionship: loneliness interventions, mean effect -0.20 SD of the loneliness measure
      (Masi et al., Pers Soc Psychol Rev 2011;15:219-66); one visit is
      1/`companionship_full_sessions` of a full course, decaying with
      `companionship_waning_days`. It shifts the resident's loneliness target, which the latent
      loneliness then follows.
    """

    home_safety_rar: float = 0.81
    home_safety_rar_high_risk: float = 0.62
    home_safety_waning_days: float = 365.0
    exercise_rar: float = 0.77
    exercise_full_sessions: float = 12.0
    exercise_waning_days: float = 90.0
    companionship_sd: float = -0.20
    companionship_full_sessions: float = 6.0
    companionship_waning_days: float = 60.0

    def __post_init__(self) -> None:
        for name in ("home_safety_rar", "home_safety_rar_high_risk", "exercise_rar"):
            v = getattr(self, name)
            if not 0 < v <= 1.5:
                raise ValueError(f"{name} must be a rate ratio in (0, 1.5], got {v}")
        for name in ("home_safety_waning_days", "exercise_waning_days", "companionship_waning_days",
                     "exercise_full_sessions", "companionship_full_sessions"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


class _Stream:
    """One stream of random draws (see the module docstring for the two ways)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.key: tuple[int, ...] | None = None  # forward mode: (seed, forward seed, stream)
        self.day = 0

    def _gen(self, site: str) -> np.random.Generator:
        if self.key is None:
            return self.rng
        return np.random.default_rng([*self.key, self.day, zlib.crc32(site.encode())])

    def full(self, site: str, method: str, *args, size=None):
        """A draw whose shape does not depend on the state (every resident, or the args' shape)."""
        g = self._gen(site)
        return getattr(g, method)(*args) if size is None else getattr(g, method)(*args, size=size)

    def sub(self, site: str, method: str, *args, idx, shape):
        """Draws for the residents (or cells) at `idx` of an array of `shape`."""
        if self.key is None:
            k = len(idx[0]) if isinstance(idx, tuple) else len(idx)
            return getattr(self.rng, method)(*args, size=k)
        return getattr(self._gen(site), method)(*args, size=shape)[idx]


class Engine:
    """The community simulator's state and day step.

    `Engine(cfg, extra_days)` sets up the population, volunteers, calendar and state exactly as
    the recorded history was (same generators, same order); `step()` simulates the next day.
    `extra_days` reserves room to run past the recorded days (`go_forward`), at most
    `cfg.forward_reserve_days`.

    The community is open: every resident who will ever live in it has a slot from day 0 (the
    first `cfg.residents`, then the newcomers in the order they move in); a slot is `away` before
    its resident moves in and after they leave, and its state starts afresh on the day they
    arrive.
    """

    def __init__(self, cfg: SimConfig, extra_days: int = 0):
        self.cfg = cfg
        ss = np.random.SeedSequence(cfg.seed)
        r_pop, r_day, r_sens, r_req, r_vol, r_cal = (np.random.default_rng(s) for s in ss.spawn(6))
        r_new = np.random.default_rng(ss.spawn(8)[7])
        self.start = start = date.fromisoformat(str(cfg.start))
        d_rec = cfg.days
        if extra_days > cfg.forward_reserve_days:
            raise ValueError(f"a forward run of {extra_days} days is longer than the "
                             f"{cfg.forward_reserve_days} days the twin plans arrivals for")
        self.recorded_days = d_rec
        self.d_alloc = d_total = d_rec + max(0, int(extra_days))
        last = start + timedelta(days=d_rec - 1)
        first = make_population(cfg, r_pop)
        newcomers, new_day = plan_arrivals(cfg, first.grid_ids, r_new)
        pop = self.pop = join(first, newcomers)
        self.arrival_day = np.concatenate([np.zeros(cfg.residents, np.int64), new_day])
        self.n = n = len(pop.ids)
        r_cal_ahead = copy.deepcopy(r_cal)  # the same shocks, planned over the extra days too
        self.shocks = plan_shocks(start, d_rec, r_cal)
        self.holidays = public_holidays(start, last)
        ahead = plan_shocks(start, d_total, r_cal_ahead) if d_total > d_rec else self.shocks
        holidays_ahead = public_holidays(start, start + timedelta(days=d_total - 1))
        self.weekday0 = start.weekday()
        n_cat = len(REQUEST_CATEGORIES)
        self.cat_ix = {c: i for i, c in enumerate(REQUEST_CATEGORIES)}
        self.day_cat, self.ep_season = self._day_factors(d_rec, self.shocks, self.holidays)
        if d_total > d_rec:
            dc, es = self._day_factors(d_total, ahead, holidays_ahead)
            self.day_cat = np.vstack([self.day_cat, dc[d_rec:]])
            self.ep_season = np.concatenate([self.ep_season, es[d_rec:]])
        self.grid_cat = r_cal.lognormal(0, 0.25, (len(pop.grid_ids), n_cat))
        self.cat_base = np.array([0.020, 0.010, 0.015, 0.012, 0.006])  # meals .. escort

        # Volunteers per grid (about one per eight residents, unevenly spread).
        n_grids = len(pop.grid_ids)
        per_grid = np.bincount(first.grid, minlength=n_grids)
        vol_count = np.maximum(
            2, r_vol.poisson(per_grid / cfg.residents_per_volunteer * r_vol.lognormal(0, 0.3, n_grids))
        )
        self.vol_grid = vol_grid = np.repeat(np.arange(n_grids), vol_count)
        n_vol = len(vol_grid)
        self.vol_count = vol_count
        self.vol_offset = np.concatenate([[0], np.cumsum(vol_count)[:-1]])
        self.vol_hours = vol_hours = np.round(np.clip(r_vol.lognormal(np.log(3.0), 0.5, n_vol), 0.5, 20), 1)
        self.volunteers = pd.DataFrame(
            {
                "volunteer_id": [f"V{i + 1:05d}" for i in range(n_vol)],
                "grid_id": pop.grid_ids[vol_grid],
                "joined_on": pd.Timestamp(start)
                - pd.to_timedelta(r_vol.integers(1, 3 * 365, n_vol), unit="D"),
                "weekly_hours": vol_hours,
            }
        )
        supply = np.bincount(vol_grid, weights=vol_hours, minlength=n_grids) / np.maximum(per_grid, 1)
        self.grid_complete = np.clip(0.45 + 3.0 * supply, 0.5, 0.95)

        # State.
        f32 = np.float32
        st: dict[str, np.ndarray] = {}
        st["frailty"] = pop.frailty0.astype(np.float64).copy()
        st["frailty_chronic"] = st["frailty"].copy()
        st["gait"] = pop.gait0.copy()
        st["ep_day"] = np.full(n, -1, np.int64)
        st["ep_len"] = np.zeros(n, np.int64)
        st["ep_lag"] = np.zeros(n, np.int64)
        st["ep_sev"] = np.zeros(n)
        st["ep_vis"] = np.zeros(n)
        st["ep_infection"] = np.zeros(n, bool)
        st["ep_active"] = np.zeros(n, bool)
        st["last_fall"] = np.full(n, -100_000, np.int64)
        self.fear_noise = r_day.normal(0, 0.6, n)
        st["fear"] = 0.45 * pop.balance + self.fear_noise
        st["grief"] = np.zeros(n)
        st["visit_hours"] = np.full(n, 0.2)
        st["hospital_until"] = np.full(n, -1, np.int64)
        st["hazard_check_until"] = np.full(n, -1, np.int64)
        st["away"] = self.arrival_day > 0  # not living in the community (yet, or any more)
        st["outage"] = np.zeros(n, np.int64)
        st["device_down"] = np.zeros((len(DEVICES), n), np.int64)
        self.device_of = {s: k for k, sensors_ in enumerate(DEVICES.values()) for s in sensors_}
        self.assess_offset = r_day.integers(0, 100, n)
        st["next_assess"] = self.assess_offset + self.arrival_day
        self.st = st

        # Falls in the year before a resident's first day (what STEADI's "fallen in the past
        # year" sees); drawn now for everyone, applied to newcomers when they move in.
        self.prior_u = r_day.random(n)
        self.prior_ago = r_day.integers(1, 365, n)
        self.lonely_noise = r_day.normal(0, 0.25, n)

        self.present = np.zeros((d_total, n), bool)
        self.in_comm = np.zeros((d_total, n), bool)
        self.sensors = {s: np.full((d_total, n), np.nan, f32) for s in SENSORS}
        self.frailty_m = np.zeros((d_total, n), f32)
        self.acute_m = np.zeros((d_total, n), bool)
        self.lonely_m = np.zeros((d_total, n), f32)
        self.hazard_m = np.zeros((d_total, n), f32)
        self.hosp_m = np.zeros((d_total, n), bool)
        self.tb_sched = np.zeros((d_total + 8, n), f32)  # time-bank visit hours arriving on a day
        self.hhc_sched = np.zeros((d_total + 8, n), bool)  # completed home-hazard checks

        self.ev = _lists("day", "idx", "type", "injury")
        self.asm = _lists("day", "idx", "tug", "fear", "fell", "unsteady", "ucla")
        self.req = _lists("day", "idx", "cat", "count")
        self.vis = _lists("day", "idx", "source", "hours")
        self.tsk = _lists(
            "day", "idx", "kind", "reason", "due", "delay", "status", "vol", "credits", "request"
        )
        self.n_requests = 0
        self.cau = _lists("day", "idx", "fall_cause", "iso_cause", "fall_cause_absolute", "iso_cause_absolute",
                          "lonely_prob", "loneliness")
        self.eps = _lists("idx", "onset", "hazard_from", "end", "kind", "severity", "visibility")
        self._settle(np.flatnonzero(self.arrival_day == 0), 0)
        self.delivered = _lists("day", "idx", "kind")  # visits a policy chose that took place

        self.day_rng = _Stream(r_day)
        self.sens_rng = _Stream(r_sens)
        self.req_rng = _Stream(r_req)
        self.effects: VisitEffects | None = None
        self.t = 0

    # -----------------------------------------------------------------------------------------

    def _day_factors(self, days: int, shocks, holidays) -> tuple[np.ndarray, np.ndarray]:
        """Daily multipliers per request category (week, holidays, seasons, shocks) and of
        the episode rate, for days [0, days)."""
        start = self.start
        hol_idx = {(h - start).days for h in holidays}
        week_factor = np.array([1.15, 1.1, 1.05, 1.0, 0.95, 0.6, 0.5])
        day_cat = np.ones((days, len(REQUEST_CATEGORIES)))
        ep_season = np.ones(days)
        for t in range(days):
            doy = (start + timedelta(days=t)).timetuple().tm_yday
            day_cat[t] *= week_factor[(self.weekday0 + t) % 7] * (
                1 + 0.08 * np.cos(2 * np.pi * (doy - 15) / 365)
            )
            if t in hol_idx:
                day_cat[t] *= 0.4
            ep_season[t] = episode_season(doy)
        for s in shocks:
            ramp = np.sin(np.linspace(0, np.pi, s.end - s.start + 2)[1:-1]) if s.end > s.start else []
            for name, f in s.request_factor.items():
                day_cat[s.start : s.end, self.cat_ix[name]] *= 1 + (f - 1) * 1.5 * np.asarray(ramp)
            ep_season[s.start : s.end] *= 1 + (s.episode_factor - 1) * 1.5 * np.asarray(ramp)
        return day_cat, ep_season

    def _settle(self, idx: np.ndarray, t: int) -> None:
        """Start the state of residents moving in on day `t` (as the first residents started)."""
        cfg, pop, st = self.cfg, self.pop, self.st
        st["frailty"][idx] = pop.frailty0[idx]
        st["frailty_chronic"][idx] = pop.frailty0[idx]
        st["gait"][idx] = pop.gait0[idx]
        for k, v in (("ep_day", -1), ("ep_len", 0), ("ep_lag", 0), ("ep_sev", 0.0), ("ep_vis", 0.0),
                     ("ep_infection", False), ("ep_active", False), ("last_fall", -100_000),
                     ("grief", 0.0), ("visit_hours", 0.2), ("hospital_until", -1),
                     ("hazard_check_until", -1), ("outage", 0), ("away", False),
                     ("hs_lrr", 0.0), ("hs_day", -100_000), ("ex_dose", 0.0), ("co_dose", 0.0)):
            if k in st:
                st[k][idx] = v
        st["device_down"][:, idx] = 0
        st["fear"][idx] = 0.45 * pop.balance[idx] + self.fear_noise[idx]
        st["next_assess"][idx] = t + self.assess_offset[idx]
        h0 = cfg.base_fall_hazard * np.exp(_fall_terms(cfg, pop, st, t)[idx].sum(1)) * 1.25
        prior = idx[self.prior_u[idx] < 1 - np.exp(-365 * h0)]
        st["last_fall"][prior] = t - self.prior_ago[prior]
        st["fear"][prior] += 0.8
        if "loneliness" not in st:
            st["loneliness"] = np.zeros(self.n)
        st["loneliness"][idx] = self._trait_target()[idx] + self.lonely_noise[idx]
        self._ongoing_episodes(idx, t)

    def _ongoing_episodes(self, idx: np.ndarray, t: int) -> None:
        """Some residents are part-way through an acute episode on their first day (as many as
        the episode rate and length imply), so the community starts as it goes on."""
        cfg, pop, st = self.cfg, self.pop, self.st
        g = np.random.default_rng([int(cfg.seed), 0x5E771E, int(t)])
        k = len(idx)
        lag, length = draw_episodes(g, k, cfg)
        sev, visib = g.uniform(0.4, 1.6, k), g.uniform(0.5, 1.4, k)
        season = self.ep_season[t]
        infection = g.random(k) < 0.6 * season / (0.6 * season + 0.4)
        rate = episode_rate(cfg, st["frailty"][idx], pop.meds[idx], season)
        mean_days = np.mean(cfg.episode_lag_days) + 7 + cfg.episode_extra_days + EPISODE_TAIL_DAYS
        on = g.random(k) < rate * mean_days
        day = np.floor(g.random(k) * (length + EPISODE_TAIL_DAYS)).astype(np.int64)
        on &= day < length + EPISODE_TAIL_DAYS
        i = idx[on]
        if not len(i):
            return
        st["ep_day"][i] = day[on]
        st["ep_len"][i] = length[on]
        st["ep_lag"][i] = lag[on]
        st["ep_sev"][i] = sev[on]
        st["ep_vis"][i] = visib[on]
        st["ep_infection"][i] = infection[on]
        onset = t - day[on]
        eps = self.eps
        eps["idx"].append(i)
        eps["onset"].append(onset)
        eps["hazard_from"].append(onset + lag[on])
        eps["end"].append(onset + length[on] + EPISODE_TAIL_DAYS)
        eps["kind"].append(np.where(infection[on], "infection", "medication_change"))
        eps["severity"].append(sev[on])
        eps["visibility"].append(visib[on])

    def _trait_target(self) -> np.ndarray:
        return np.stack(_iso_terms(self.pop, self.st), axis=1).sum(1)

    def go_forward(self, forward_seed: int, effects: VisitEffects | None = None) -> None:
        """From now on draw noise per (day, site) from `forward_seed` (common random numbers)
        and let delivered visits act with `effects`."""
        for k, s in enumerate((self.day_rng, self.sens_rng, self.req_rng)):
            s.key = (int(self.cfg.seed), int(forward_seed), k)
        self.effects = effects or VisitEffects()
        st, n = self.st, self.n
        st.setdefault("hs_lrr", np.zeros(n))
        st.setdefault("hs_day", np.full(n, -100_000, np.int64))
        st.setdefault("ex_dose", np.zeros(n))
        st.setdefault("co_dose", np.zeros(n))
        # SD of the UCLA-3 score across the community now (Masi's effects are in SD units).
        L = st["loneliness"][~st["away"]]
        sd_ucla = np.sqrt((self.cfg.ucla_slope * L.std()) ** 2 + self.cfg.ucla_noise**2)
        self.ucla_sd = float(sd_ucla)

    def fork(self) -> Engine:
        """An independent copy (state, records and generators)."""
        return copy.deepcopy(self)

    def run(self, days: int, progress: ProgressFn | None = None) -> None:
        """Step `days` days without visits from a policy."""
        end = self.t + days
        while self.t < end:
            self.step()
            if progress is not None:
                progress(self.t, end)

    # -----------------------------------------------------------------------------------------

    def _deliver(self, t: int, visits: Mapping[str, np.ndarray], at_home: np.ndarray) -> np.ndarray:
        """Apply today's policy visits (residents at home only); returns who had one."""
        e, st = self.effects, self.st
        assert e is not None, "go_forward() before visits"
        visited = np.zeros(self.n, bool)
        for kind, idx in visits.items():
            if kind not in VISIT_KINDS:
                raise ValueError(f"unknown visit kind {kind!r}; kinds are {', '.join(VISIT_KINDS)}")
            idx = np.unique(np.asarray(idx, dtype=np.int64))
            idx = idx[at_home[idx]]
            if not len(idx):
                continue
            visited[idx] = True
            if kind == "home_hazard_check":
                high = (t - st["last_fall"][idx]) <= 365
                rar = np.where(high, e.home_safety_rar_high_risk, e.home_safety_rar)
                st["hs_lrr"][idx] = np.log(rar)
                st["hs_day"][idx] = t
            elif kind == "walk":
                st["ex_dose"][idx] += 1.0 / e.exercise_full_sessions
            else:
                st["co_dose"][idx] += 1.0 / e.companionship_full_sessions
            self.delivered["day"].append(np.full(len(idx), t))
            self.delivered["idx"].append(idx)
            self.delivered["kind"].append(np.full(len(idx), kind))
        return visited

    def _visit_lhr(self, t: int) -> np.ndarray:
        """Log hazard ratio of falls from the visits' waning effects."""
        e, st = self.effects, self.st
        since = t - st["hs_day"]
        home = st["hs_lrr"] * np.exp(-np.maximum(since, 0) / e.home_safety_waning_days)
        return home + np.log(e.exercise_rar) * np.minimum(st["ex_dose"], 1.0)

    def _wane_doses(self) -> None:
        e, st = self.effects, self.st
        st["ex_dose"] *= np.exp(-1.0 / e.exercise_waning_days)
        st["co_dose"] *= np.exp(-1.0 / e.companionship_waning_days)

    def step(self, visits: Mapping[str, np.ndarray] | None = None) -> None:
        """Simulate day `self.t`; `visits` maps a visit kind to the residents a policy's
        volunteers visit today (forward runs only)."""
        cfg, pop, st, n, t = self.cfg, self.pop, self.st, self.n, self.t
        d_total = self.d_alloc
        rd, rs, rq = self.day_rng, self.sens_rng, self.req_rng
        for s in (rd, rs, rq):
            s.day = t
        f32 = np.float32
        weekday0, ep_season = self.weekday0, self.ep_season
        ev, asm, req, vis, tsk, cau, eps = self.ev, self.asm, self.req, self.vis, self.tsk, self.cau, self.eps
        grid_complete, vol_offset, vol_count = self.grid_complete, self.vol_offset, self.vol_count
        tb_sched, hhc_sched = self.tb_sched, self.hhc_sched
        base_h = cfg.base_fall_hazard
        n_cat = len(REQUEST_CATEGORIES)

        arriving = np.flatnonzero(self.arrival_day == t) if t > 0 else np.array([], np.int64)
        if len(arriving):
            self._settle(arriving, t)
            ev["day"].append(np.full(len(arriving), t))
            ev["idx"].append(arriving)
            ev["type"].append(np.full(len(arriving), "move_in"))
            ev["injury"].append(np.zeros(len(arriving), bool))
        in_c = ~st["away"]
        hosp = st["hospital_until"] >= t
        at_home = in_c & ~hosp
        forward = self.effects is not None
        visited = self._deliver(t, visits or {}, at_home) if forward else None

        # --- weekly truth, as things stand at the start of the day (what an as-of date can know):
        # each resident's dominant planted cause against the community's average that week
        # (and the largest absolute term beside it)
        if (weekday0 + t) % 7 == 0:
            ci = np.flatnonzero(in_c)
            fterms = _fall_terms(cfg, pop, st, t)[ci]
            iterms = np.stack(_iso_terms(pop, st), axis=1)[ci]
            mu = cfg.ucla_intercept + cfg.ucla_slope * st["loneliness"][ci]
            sd = cfg.ucla_noise
            cau["day"].append(np.full(len(ci), t))
            cau["idx"].append(ci)
            fall_rel, fall_abs = dominant_causes(fterms)
            iso_rel, _ = dominant_causes(iterms)
            iterms[:, 4] = np.clip(iterms[:, 4], 0, None)  # a low trait is no absolute cause
            cau["fall_cause"].append(fall_rel)
            cau["iso_cause"].append(iso_rel)
            cau["fall_cause_absolute"].append(fall_abs)
            cau["iso_cause_absolute"].append(np.argmax(iterms, axis=1))
            cau["lonely_prob"].append(1 - ndtr((5.5 - mu) / sd))
            cau["loneliness"].append(st["loneliness"][ci])

        # --- acute episodes: start, progress, end
        rate = episode_rate(cfg, st["frailty"], pop.meds, ep_season[t])
        new_ep = in_c & (st["ep_day"] < 0) & (rd.full("episode", "random", size=n) < rate)
        k = int(new_ep.sum())
        if k:
            idx = np.flatnonzero(new_ep)
            lag = rd.sub("ep_lag", "integers", cfg.episode_lag_days[0], cfg.episode_lag_days[1] + 1,
                         idx=idx, shape=n)
            length = (
                lag + 7 + np.round(rd.sub("ep_len", "gamma", 2.0, cfg.episode_extra_days / 2,
                                          idx=idx, shape=n)).astype(np.int64)
            )
            sev = rd.sub("ep_sev", "uniform", 0.4, 1.6, idx=idx, shape=n)
            visib = rd.sub("ep_vis", "uniform", 0.5, 1.4, idx=idx, shape=n)
            infection = rd.sub("ep_inf", "random", idx=idx, shape=n) < 0.6 * ep_season[t] / (
                0.6 * ep_season[t] + 0.4
            )
            st["ep_day"][new_ep] = 0
            st["ep_len"][new_ep] = length
            st["ep_lag"][new_ep] = lag
            st["ep_sev"][new_ep] = sev
            st["ep_vis"][new_ep] = visib
            st["ep_infection"][new_ep] = infection
            eps["idx"].append(idx)
            eps["onset"].append(np.full(k, t))
            eps["hazard_from"].append(t + lag)
            eps["end"].append(t + length + EPISODE_TAIL_DAYS)
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
        lhr = terms.sum(1) + noct + check
        if forward:
            lhr = lhr + self._visit_lhr(t)
        h = base_h * np.exp(lhr)
        h = np.where(at_home, h, 0.0)
        falls = rd.full("fall", "random", size=n) < h
        nf = int(falls.sum())
        if nf:
            fi = np.flatnonzero(falls)
            inj = rd.sub("injury", "random", idx=fi, shape=n) < cfg.injury_prob * (0.8 + st["frailty"][fi])
            ev["day"].append(np.full(nf, t))
            ev["idx"].append(fi)
            ev["type"].append(np.full(nf, "fall"))
            ev["injury"].append(inj)
            st["last_fall"][fi] = t
            st["fear"][fi] += 0.7 + 0.5 * inj
            st["frailty"][fi] += 0.01 + 0.02 * inj
            to_hosp = fi[inj & (rd.sub("fall_hosp", "random", idx=fi, shape=n) < cfg.hospital_after_injury)]
            # After a fall the care team sometimes books a time-bank home-hazard check.
            hhc = fi[rd.sub("after_fall", "random", idx=fi, shape=n) < 0.35]
            if len(hhc):
                delay = rd.sub("hhc_delay", "integers", 1, 8, idx=hhc, shape=n)
                done = rd.sub("hhc_done", "random", idx=hhc, shape=n) < grid_complete[pop.grid[hhc]]
                vol = vol_offset[pop.grid[hhc]] + (
                    rd.sub("hhc_vol", "random", idx=hhc, shape=n) * vol_count[pop.grid[hhc]]
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
            haz_on & at_home
            & (rd.full("ep_hosp", "random", size=n) < 0.004 * st["ep_sev"] * st["ep_infection"])
        )
        other_hosp = np.flatnonzero(
            at_home & (rd.full("other_hosp", "random", size=n) < 0.05 / 365 * (1 + 0.3 * pop.chronic))
        )
        hosp_new = np.unique(np.concatenate([to_hosp, ep_hosp, other_hosp]))
        if len(hosp_new):
            stay = rd.sub("stay", "integers", cfg.hospital_days[0], cfg.hospital_days[1] + 1,
                          idx=hosp_new, shape=n)
            st["hospital_until"][hosp_new] = t + stay
            st["frailty"][hosp_new] += 0.02
            ev["day"].append(np.full(len(hosp_new), t))
            ev["idx"].append(hosp_new)
            ev["type"].append(np.full(len(hosp_new), "hospitalisation"))
            ev["injury"].append(np.zeros(len(hosp_new), bool))
        ber = np.flatnonzero(in_c & (rd.full("bereavement", "random", size=n) < cfg.bereavements_per_year / 365))
        if len(ber):
            st["grief"][ber] += 1.0
            ev["day"].append(np.full(len(ber), t))
            ev["idx"].append(ber)
            ev["type"].append(np.full(len(ber), "bereavement"))
            ev["injury"].append(np.zeros(len(ber), bool))
        mv = np.flatnonzero(at_home & (rd.full("move", "random", size=n) < exit_rate(cfg, st["frailty"])))
        if len(mv):
            ev["day"].append(np.full(len(mv), t))
            ev["idx"].append(mv)
            ev["type"].append(np.full(len(mv), "move"))
            ev["injury"].append(np.zeros(len(mv), bool))

        # --- visits today: family, care staff, time bank (booked earlier)
        fam = at_home & (rd.full("family", "random", size=n) < pop.family_rate)
        care_p = np.clip((st["frailty"] - 0.35) * 3, 0, 0.9)
        care = at_home & (rd.full("care", "random", size=n) < care_p)
        fam_h = np.where(fam, np.round(rd.full("family_h", "gamma", 2.0, 0.75, size=n), 1) + 0.25, 0.0)
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
        target = self._trait_target()
        if forward:
            # companionship shifts the target by Masi's effect (SD of UCLA-3 -> latent units)
            shift = self.effects.companionship_sd * self.ucla_sd / cfg.ucla_slope
            target = target + shift * np.minimum(st["co_dose"], 1.0)
            self._wane_doses()
        st["loneliness"] += 0.03 * (target - st["loneliness"]) + rd.full("lonely", "normal", 0, 0.06, size=n)
        L = st["loneliness"]

        # --- frailty and fear drift
        # a slow chronic rise; what episodes, falls and stays added recovers in part
        st["frailty_chronic"] += cfg.frailty_drift_per_year / 365
        st["frailty"] += (st["frailty_chronic"] - st["frailty"]) / cfg.frailty_recovery_days
        st["frailty"] += rd.full("frailty", "normal", 0, 0.0015, size=n)
        st["frailty"] = np.clip(st["frailty"], 0.01, 1.0)
        st["fear"] += (0.45 * pop.balance - st["fear"]) / 400.0
        st["gait"] = np.clip(pop.gait0 - 1.3 * (st["frailty"] - pop.frailty0), 0.15, 1.8)

        # --- sensors (a row only when the resident is at home and the system worked)
        outage_new = at_home & (st["outage"] == 0) & (rs.full("outage", "random", size=n) < cfg.outage_start_prob)
        st["outage"][outage_new] = rs.sub("outage_len", "geometric", 1 / cfg.outage_mean_days,
                                          idx=np.flatnonzero(outage_new), shape=n)
        ok = at_home & (st["outage"] == 0) & (rs.full("missing", "random", size=n) >= cfg.missing_day_prob)
        st["outage"] = np.maximum(st["outage"] - 1, 0)
        self.present[t] = ok
        self.in_comm[t] = in_c
        wd = (weekday0 + t) % 7
        weekend = wd >= 5
        mob = np.exp(-1.5 * np.clip(st["frailty"] - 0.2, 0, None))
        steps = (
            pop.steps_base
            * mob
            * np.exp(-0.6 * sign)
            * rs.full("steps", "lognormal", 0, 0.25, size=n)
            * (0.9 if weekend else 1.0)
        )
        gait = st["gait"] - 0.15 * sign + rs.full("gait", "normal", 0, 0.06, size=n)
        toilet = rs.full("toilet", "poisson", pop.nocturia * (1 + 1.5 * sign))
        interrupt = rs.full("interrupt", "poisson", 0.4 + 0.7 * toilet + 1.0 * sign)
        sleep = pop.sleep_base - 0.25 * interrupt - 0.3 * sign + rs.full("sleep", "normal", 0, 0.6, size=n)
        out = (
            pop.out_base
            * np.exp(-0.55 * (L - 0.5))
            * mob
            * np.exp(-0.8 * sign)
            * rs.full("out", "lognormal", 0, 0.45, size=n)
            * (rs.full("out_day", "random", size=n) > 0.08)
        )
        kitchen = rs.full("kitchen", "poisson", pop.kitchen_base * np.exp(-0.3 * sign))
        inact = (
            2.0
            + 2.0 * np.clip(st["frailty"] - 0.1, 0, None)
            + 2.0 * sign
            + rs.full("inactivity", "gamma", 2.0, 0.4, size=n)
        )
        tb_seen = (tb_h > 0) | visited if forward else (tb_h > 0)
        n_vis = fam.astype(int) + care + tb_seen
        visitors = rs.full("visitors", "binomial", n_vis, 0.85) + rs.full("visitors_extra", "poisson", 0.1, size=n)
        phone = rs.full("phone", "poisson", pop.phone_base * np.exp(-0.2 * L))
        hr = pop.hr_base + (6.0 * st["ep_infection"] + 1.5) * sign + rs.full("hr", "normal", 0, 2.5, size=n)
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
        wear_off = rs.full("wearable_off", "random", size=n) < cfg.wearable_off_prob
        down = st["device_down"]
        broke = (down == 0) & (rs.full("device_fail", "random", size=down.shape) < cfg.device_failure_prob)
        down[broke] = rs.sub("device_repair", "geometric", 1 / cfg.device_repair_mean_days,
                             idx=np.nonzero(broke), shape=down.shape)
        dev_off = down > 0
        st["device_down"] = np.maximum(down - 1, 0)
        for s_name, v in vals.items():
            v = v.astype(f32)
            null = (rs.full("null_" + s_name, "random", size=n) < cfg.sensor_null_prob) | dev_off[self.device_of[s_name]]
            if s_name in WEARABLE_SENSORS:
                null |= wear_off
            if s_name == "gait_speed":
                null |= vals["steps"] < 300  # too little walking to measure gait
            v[null | ~ok] = np.nan
            self.sensors[s_name][t] = v

        # --- assessments
        due = in_c & ~hosp & (st["next_assess"] <= t)
        ai = np.flatnonzero(due)
        if len(ai):
            g = st["gait"][ai]
            tug = 9.3 / np.power(np.maximum(g, 0.15), 1.3) * rd.sub("tug", "lognormal", 0, 0.25, idx=ai, shape=n)
            tug = tug + 1.2 * np.clip(pop.balance[ai], 0, None) + 1.0 * (sign[ai] > 0.3)
            fear_ans = (st["fear"][ai] + rd.sub("fear_ans", "normal", 0, 0.4, idx=ai, shape=n)) > 1.0
            fell = (t - st["last_fall"][ai]) <= 365
            fell = np.where(
                rd.sub("fell_err", "random", idx=ai, shape=n) < 0.1,
                ~fell & (rd.sub("fell_flip", "random", idx=ai, shape=n) < 0.3),
                fell,
            )
            unsteady = (
                pop.balance[ai]
                + 2.0 * (st["frailty"][ai] - pop.frailty0[ai])
                + rd.sub("unsteady", "normal", 0, 0.5, idx=ai, shape=n)
            ) > 0.8
            ucla = np.clip(
                np.round(
                    cfg.ucla_intercept
                    + cfg.ucla_slope * L[ai]
                    + rd.sub("ucla", "normal", 0, cfg.ucla_noise, idx=ai, shape=n)
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
            st["next_assess"][ai] = t + rd.sub(
                "assess_gap", "integers", cfg.assessment_gap_days[0], cfg.assessment_gap_days[1] + 1,
                idx=ai, shape=n,
            )

        # --- service requests and the time-bank tasks they open
        lam = np.empty((n, n_cat))
        lam[:, 0] = 1 + 3 * st["frailty"] + 1.0 * sign
        lam[:, 1] = 1 + 1.5 * np.clip(L, 0, None)
        lam[:, 2] = 1 + 0.2 * pop.chronic
        lam[:, 3] = 1 + 2 * st["frailty"]
        lam[:, 4] = (1 + 0.3 * pop.chronic) * (1 + 2 * sign)
        lam *= self.cat_base * self.day_cat[t] * self.grid_cat[pop.grid]
        lam[~at_home] = 0.0
        counts = rq.full("requests", "poisson", lam)
        ri, rc = np.nonzero(counts)
        if len(ri):
            cnt = counts[ri, rc]
            ri, rc = np.repeat(ri, cnt), np.repeat(rc, cnt)
            m = len(ri)
            cell = (n, n_cat)
            req["day"].append(np.full(m, t))
            req["idx"].append(ri)
            req["cat"].append(rc)
            is_task = rq.sub("is_task", "random", idx=(ri, rc), shape=cell) < cfg.task_share
            ti, tc = ri[is_task], rc[is_task]
            mt = len(ti)
            if mt:
                g = pop.grid[ti]
                due_days = rq.sub("due", "integers", 1, 6, idx=(ti, tc), shape=cell)
                delay = np.minimum(rq.sub("delay", "integers", 0, 4, idx=(ti, tc), shape=cell), due_days)
                u = rq.sub("status", "random", idx=(ti, tc), shape=cell)
                status = np.where(
                    u < cfg.cancel_share,
                    "cancelled",
                    np.where(
                        u < cfg.cancel_share + (1 - cfg.cancel_share) * grid_complete[g],
                        "completed",
                        "expired",
                    ),
                )
                vol = vol_offset[g] + (rq.sub("vol", "random", idx=(ti, tc), shape=cell) * vol_count[g]).astype(np.int64)
                kinds = np.array(REQUEST_CATEGORIES)[tc]
                credits = (
                    np.round(
                        np.array([TASK_HOURS[c] for c in REQUEST_CATEGORIES])[tc]
                        * rq.sub("credits", "uniform", 0.75, 1.25, idx=(ti, tc), shape=cell)
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
                tsk["request"].append(self.n_requests + np.flatnonzero(is_task))
            self.n_requests += m

        # --- truth per day, then move the clocks
        self.frailty_m[t] = st["frailty"]
        self.acute_m[t] = on
        self.lonely_m[t] = L
        self.hazard_m[t] = h
        self.hosp_m[t] = hosp & in_c
        st["away"][mv] = True
        adv = st["ep_day"] >= 0
        st["ep_day"][adv] += 1
        ended = adv & (st["ep_day"] >= st["ep_len"] + EPISODE_TAIL_DAYS)
        st["ep_day"][ended] = -1
        st["ep_sev"][ended] = 0.0
        self.t = t + 1

    # -----------------------------------------------------------------------------------------

    def raw(self) -> _Raw:
        """What the recorded days produced, as the table writers take it."""
        if self.t < self.recorded_days:
            raise RuntimeError(f"only {self.t} of {self.recorded_days} recorded days simulated")
        d = self.recorded_days
        m = int((self.arrival_day < d).sum())  # residents who lived in the community by then

        def cut(a):
            return a[:d, :m]

        return _Raw(
            self.cfg,
            take(self.pop, slice(0, m)),
            self.start,
            self.shocks,
            self.holidays,
            cut(self.present),
            cut(self.in_comm),
            {k: cut(v) for k, v in self.sensors.items()},
            cut(self.frailty_m),
            cut(self.acute_m),
            cut(self.lonely_m),
            cut(self.hazard_m),
            cut(self.hosp_m),
            self.ev,
            self.asm,
            self.req,
            self.vis,
            self.tsk,
            self.cau,
            self.eps,
            self.volunteers,
            self.grid_complete,
            self.arrival_day[:m],
        )
