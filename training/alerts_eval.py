"""Replay sensor events through the alert rules and score them against a twin's planted incidents.

`replay(events, sensor_map, settings)` runs `models.alerts.ResidentMonitor` (the code the service
runs) over every home's events in time order; with `ratings`, care managers rate the alerts as
they would after the visit each one opens (real when an incident of the resident explains it),
some time after it is raised, and the ratings tune the monitor as the service's do.
`evaluate(twin, sensitivities)` replays a twin's events at several sensitivities and reports per
incident kind: recall, detection delay (median, p90, from the true start), false alarms per
resident-month, and the alert budget (alerts per care manager per week).
"""

from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from models.alerts import INCIDENT_OF, Alert, AlertSettings, ResidentMonitor
from training.evaluate import resident_draws

DAYS_PER_MONTH = 30.44
# how long after an incident's end an alert still counts as caused by it
GRACE = {"fall_long_lie": pd.Timedelta(minutes=30), "not_up": pd.Timedelta(minutes=30),
         "night_exit": pd.Timedelta(minutes=30), "toilet_surge": pd.Timedelta(hours=6)}


RATING_DELAY = pd.Timedelta(hours=1)  # from an alert to its rating: the visit it opens has been


@dataclass(frozen=True)
class Ratings:
    """Care managers rating alerts in a replay: each alert is rated `delay` after it is raised
    (the visit it opens has been), real when one of the resident's incidents explains it (the
    window `match_incidents` counts), else false; a share `rated` of the alerts, drawn at random
    (`seed`), the rest left unrated."""

    incidents: pd.DataFrame  # resident_id, kind, start, end
    delay: pd.Timedelta = RATING_DELAY
    rated: float = 1.0
    seed: int = 0
    # the twin's confounders (resident_id, kind, start, end): a false alarm whose stillness an
    # outing with a missed door event spans is rated with the reason "out" (the visit finds the
    # resident out, or back and saying so); None: false alarms get no reason
    confounders: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.rated <= 1.0:
            raise ValueError(f"the share of alerts rated must be in [0, 1], got {self.rated}")
        if self.delay < pd.Timedelta(0):
            raise ValueError("a rating cannot come before its alert")

    @cached_property
    def outings(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per resident, the outings whose door event was missed (start, end)."""
        c = self.confounders
        if c is None or c.empty:
            return {}
        c = c[c["kind"] == "missed_door"]
        return _per_resident(c, pd.to_datetime(c["start"]).to_numpy("datetime64[ns]"),
                             pd.to_datetime(c["end"]).to_numpy("datetime64[ns]"))

    @cached_property
    def windows(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per resident, the times (from, to) within which an alert is explained by an incident."""
        return _per_resident(self.incidents, *incident_windows(self.incidents))


def _per_resident(frame: pd.DataFrame, lo: np.ndarray, hi: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The spans (lo, hi) of a frame's rows, split by its resident_id."""
    rid = frame["resident_id"].astype(str).to_numpy()
    return {r: (lo[rid == r], hi[rid == r]) for r in np.unique(rid)}


@dataclass
class Replay:
    """Alerts raised, and per resident the observed days and when alerts became possible."""

    alerts: list[Alert]
    days: dict[str, int]
    eligible_from: dict[str, datetime]  # end of the learning period
    last_seen: dict[str, datetime]
    # per resident, the factors ratings left (kinds and no_movement's cells not at 1)
    tuning: dict[str, dict[str, float]] = field(default_factory=dict)
    door_missed: dict[str, int] = field(default_factory=dict)  # per resident, false alarms rated "out"


def replay(events: pd.DataFrame, sensor_map: dict[str, str], settings: AlertSettings | None = None,
           ratings: Ratings | None = None) -> Replay:
    """Run every resident's events (resident_id, time, sensor, value) through a monitor, with
    the care managers' `ratings` of its alerts fed back to it when given."""
    settings = settings or AlertSettings()
    out: list[Alert] = []
    days: dict[str, int] = {}
    eligible: dict[str, datetime] = {}
    last_seen: dict[str, datetime] = {}
    tuning: dict[str, dict[str, float]] = {}
    door_missed: dict[str, int] = {}
    ev = events.sort_values(["resident_id", "time"], kind="stable")
    epoch = pd.Timestamp(ev["time"].min()).normalize().to_pydatetime() if len(ev) else datetime(2000, 1, 1)
    secs = (ev["time"] - pd.Timestamp(epoch)).dt.total_seconds().to_numpy()
    rids = ev["resident_id"].astype(str).to_numpy()
    sensors = ev["sensor"].astype(str).to_numpy()
    values = ev["value"].astype(str).to_numpy()
    bounds = np.flatnonzero(np.r_[True, rids[1:] != rids[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        rid = str(rids[a])
        mon = ResidentMonitor(rid, sensor_map, settings, epoch=epoch)
        rater = None if ratings is None else Rater(ratings, mon)
        raised, learned_at = feed_home(mon, secs[a:b], sensors[a:b], values[a:b], rater)
        out.extend(raised)
        if learned_at is not None:
            eligible[rid] = learned_at
        end = float(secs[b - 1])
        out.extend(mon.advance((end // 86400 + 1) * 86400))
        days[rid] = mon.profile.days + 1
        last_seen[rid] = mon.when(end)
        if tuned := {k: v for k, v in mon.tuning.items() if v != 1.0} | mon.cell_tuning:
            tuning[rid] = tuned
        if mon.door_missed:
            door_missed[rid] = mon.door_missed
    return Replay(out, days, eligible, last_seen, tuning, door_missed)


class Rater:
    """A replay's care manager for one home: rates each alert of its monitor `Ratings.delay`
    after it is raised, real when one of the home's incidents explains it, and feeds the rating
    back when that time comes. Whether an alert is rated (a share `Ratings.rated`) is drawn from
    the alert itself, so a replay of part of a home's events rates the same alerts."""

    def __init__(self, ratings: Ratings, monitor: ResidentMonitor):
        self.ratings, self.monitor = ratings, monitor
        none = (np.array([], "datetime64[ns]"),) * 2
        self.lo, self.hi = ratings.windows.get(monitor.resident_id, none)
        self.out_lo, self.out_hi = ratings.outings.get(monitor.resident_id, none)
        self.lag = ratings.delay.total_seconds()
        # (due, alert, real, reason), in time order
        self.pending: deque[tuple[float, Alert, bool, str | None]] = deque()

    def due(self, s: float) -> None:
        """Feed back the ratings due by time s (seconds after the monitor's epoch)."""
        while self.pending and self.pending[0][0] <= s:
            _, alert, real, reason = self.pending.popleft()
            self.monitor.rate(alert.kind, real, since=alert.since, cell=alert.cell, reason=reason)

    def raised(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            key = f"{alert.resident_id}|{alert.kind}|{alert.since.isoformat()}".encode()
            if self.ratings.rated < 1 and \
                    np.random.default_rng([self.ratings.seed, zlib.crc32(key)]).random() >= self.ratings.rated:
                continue
            at, since = np.datetime64(alert.at, "ns"), np.datetime64(alert.since, "ns")
            real = bool(((self.lo <= at) & (at <= self.hi)).any())
            out = not real and bool(((self.out_lo <= at) & (since <= self.out_hi)).any())
            self.pending.append((self.monitor.seconds(alert.at) + self.lag, alert, real, "out" if out else None))


def feed_home(mon: ResidentMonitor, secs: np.ndarray, sensors: np.ndarray, values: np.ndarray,
              rater: Rater | None = None) -> tuple[list[Alert], datetime | None]:
    """Feed one home's events (seconds after the monitor's epoch, in time order) to its monitor,
    and the ratings of its alerts through `rater`; the alerts raised, and when it stopped learning."""
    out: list[Alert] = []
    learned_at: datetime | None = None
    observe = mon.observe
    for i in range(len(secs)):
        s = float(secs[i])
        if rater is not None:
            rater.due(s)
        raised = observe(s, sensors[i], values[i])
        if raised:
            out.extend(raised)
            if rater is not None:
                rater.raised(raised)
        if learned_at is None and not mon.learning:
            learned_at = mon.when(s)
    return out, learned_at


def score(rep: Replay, incidents: pd.DataFrame, caseload: int = 50, residents=None,
          boot: int = 1000, seed: int = 0) -> dict:
    """Recall, delays and false alarms of one replay against the truth (of the `residents` given,
    by default all), each with a 95% interval (`*_ci`): recall's is Wilson's over the incidents;
    the median delay's and the false alarms' come from `boot` resamples of residents (a resident's
    incidents, false alarms and observed days go in together)."""
    keep = set(rep.eligible_from) if residents is None else set(rep.eligible_from) & set(map(str, residents))
    alerts = pd.DataFrame([a.to_dict() | {"at": a.at} for a in rep.alerts if a.resident_id in keep],
                          columns=["resident_id", "kind", "at", "since", "text", "urgent"])
    days = {r: max((rep.last_seen[r] - rep.eligible_from[r]).total_seconds() / 86400, 0.0) for r in keep}
    eligible_days = sum(days.values())
    inc = incidents[incidents["resident_id"].map(lambda r: r in keep)].copy()
    inc = inc[inc["start"] >= inc["resident_id"].map(rep.eligible_from)]
    delay, explained = match_incidents(alerts, inc)
    rows = []
    for kind in INCIDENT_OF.values():
        mine = (inc["kind"] == kind).to_numpy()
        delays = delay[mine][np.isfinite(delay[mine])]
        rows.append({"kind": kind, "incidents": int(mine.sum()), "detected": len(delays),
                     "recall": float(len(delays) / mine.sum()) if mine.any() else None,
                     "median_delay_min": float(np.median(delays)) if len(delays) else None,
                     "p90_delay_min": float(np.quantile(delays, 0.9)) if len(delays) else None})
    months = eligible_days / DAYS_PER_MONTH
    false = alerts[~explained]
    for row in rows:
        kinds = [k for k, v in INCIDENT_OF.items() if v == row["kind"]]
        row["false_alarms_per_resident_month"] = (
            float(false["kind"].isin(kinds).sum() / months) if months else None)
    weeks = eligible_days / 7
    out = {
        "residents": len(keep),
        "incidents": rows,
        "alerts": int(len(alerts)),
        "false_alarms": int(len(false)),
        "false_alarms_per_resident_month": float(len(false) / months) if months else None,
        "alerts_per_care_manager_week": float(len(alerts) / weeks * caseload) if weeks else None,
        "resident_days_evaluated": round(eligible_days, 1),
    }
    if boot:
        found = list(zip(inc["resident_id"].astype(str), inc["kind"], delay, strict=True))
        _intervals(out, found, false, days, boot, seed)
    return out


def match_incidents(alerts: pd.DataFrame, incidents: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Alerts (resident_id, kind, at) against incidents (resident_id, kind, start, end): per
    incident, the minutes from its start to the first alert of its kind inside its window (from 5
    minutes before it to `GRACE` after its end; NaN: missed); per alert, whether some incident's
    window holds it (an alert of any kind there is not a false alarm)."""
    explained = np.zeros(len(alerts), dtype=bool)
    delay = np.full(len(incidents), np.nan)
    by_res = {r: g for r, g in alerts.groupby("resident_id")} if len(alerts) else {}
    lo, hi = incident_windows(incidents)
    for i, x in enumerate(incidents.itertuples(index=False)):
        g = by_res.get(x.resident_id)
        if g is None:
            continue
        hit = g[(g["at"] >= lo[i]) & (g["at"] <= hi[i])]
        explained[alerts.index.get_indexer(hit.index)] = True
        hit = hit[hit["kind"].map(INCIDENT_OF) == x.kind]
        if len(hit):
            delay[i] = max((hit["at"].min() - x.start).total_seconds() / 60, 0.0)
    return delay, explained


def incident_windows(incidents: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per incident, the times within which an alert of any kind is explained by it: from 5
    minutes before its start to `GRACE` after its end."""
    lo = (pd.to_datetime(incidents["start"]) - pd.Timedelta(minutes=5)).to_numpy("datetime64[ns]")
    hi = (pd.to_datetime(incidents["end"]) + pd.to_timedelta(incidents["kind"].map(GRACE))).to_numpy("datetime64[ns]")
    return lo, hi


def _intervals(out: dict, found: list[tuple[str, str, float]], false: pd.DataFrame,
               days: dict[str, float], boot: int, seed: int, level: float = 0.95) -> None:
    """95% intervals of `score`'s figures (in place: `*_ci` keys): Wilson's for recall, resamples
    of residents for the rest."""
    residents = sorted(days)
    if not residents:
        return
    col = {r: i for i, r in enumerate(residents)}
    n = len(residents)
    W = np.stack(list(resident_draws(np.asarray(residents), boot, seed)))  # (draws, residents)
    months = W @ np.array([days[r] for r in residents]) / DAYS_PER_MONTH
    q = [(1 - level) / 2, 1 - (1 - level) / 2]

    def ci(values: np.ndarray) -> list[float] | None:
        values = values[np.isfinite(values)]
        return [float(v) for v in np.quantile(values, q)] if len(values) else None

    false_kind = false["kind"].map(INCIDENT_OF).to_numpy() if len(false) else np.array([])
    false_col = np.array([col[r] for r in false["resident_id"]], dtype=int) if len(false) else np.array([], int)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["false_alarms_per_resident_month_ci"] = ci(W @ np.bincount(false_col, minlength=n) / months)
        for row in out["incidents"]:
            kind = row["kind"]
            mine = [(col[r], d) for r, k, d in found if k == kind]
            idx = np.array([i for i, _ in mine], dtype=int)
            delay = np.array([d for _, d in mine], dtype=float)
            hit = np.isfinite(delay)
            # recall: Wilson's interval over the incidents (a resample of residents gives a point
            # interval whenever every incident was found, which 8 of 8 does not justify)
            wilson = binomtest(int(hit.sum()), len(hit)).proportion_ci(level, method="wilson") if len(hit) else None
            row["recall_ci"] = [float(wilson.low), float(wilson.high)] if wilson else None
            medians = [np.median(np.repeat(delay[hit], w[idx[hit]].astype(int))) if (w[idx[hit]] > 0).any()
                       else np.nan for w in W] if hit.any() else []
            row["median_delay_min_ci"] = ci(np.asarray(medians, dtype=float))
            fa = np.bincount(false_col[false_kind == kind], minlength=n) if len(false_col) else np.zeros(n)
            row["false_alarms_per_resident_month_ci"] = ci(W @ fa / months)


def evaluate(events: pd.DataFrame, incidents: pd.DataFrame, sensor_map: dict[str, str],
             sensitivities=(1.0, 1.25, 1.5, 2.0), settings: AlertSettings | None = None,
             caseload: int = 50, groups: dict[str, set[str]] | None = None,
             rated: float = 0.0, rating_delay: pd.Timedelta = RATING_DELAY,
             confounders: pd.DataFrame | None = None) -> list[dict]:
    """One scored replay per sensitivity (the alert-budget curve), over all homes and, under
    `groups`, over each named group of homes (e.g. with and without a chair sensor); with
    `rated` above 0, that share of the alerts is rated by the truth `rating_delay` after it is
    raised and fed back (`Ratings`; with `confounders`, a false alarm during an outing whose door
    event was missed is rated "out")."""
    base = settings or AlertSettings()
    ratings = Ratings(incidents, rating_delay, rated, confounders=confounders) if rated > 0 else None
    out = []
    for s in sensitivities:
        rep = replay(events, sensor_map, replace(base, sensitivity=float(s)), ratings)
        row = {"sensitivity": float(s)} | score(rep, incidents, caseload)
        if groups:
            row["groups"] = {name: score(rep, incidents, caseload, residents=ids) for name, ids in groups.items()}
        out.append(row)
    return out
