"""Replay sensor events through the alert rules and score them against a twin's planted incidents.

`replay(events, sensor_map, settings)` runs `models.alerts.ResidentMonitor` (the code the service
runs) over every home's events in time order. `evaluate(twin, sensitivities)` replays a twin's
events at several sensitivities and reports per incident kind: recall, detection delay (median,
p90, from the true start), false alarms per resident-month, and the alert budget (alerts per care
manager per week).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from models.alerts import INCIDENT_OF, Alert, AlertSettings, ResidentMonitor
from training.evaluate import resident_draws

DAYS_PER_MONTH = 30.44
# how long after an incident's end an alert still counts as caused by it
GRACE = {"fall_long_lie": pd.Timedelta(minutes=30), "not_up": pd.Timedelta(minutes=30),
         "night_exit": pd.Timedelta(minutes=30), "toilet_surge": pd.Timedelta(hours=6)}


@dataclass
class Replay:
    """Alerts raised, and per resident the observed days and when alerts became possible."""

    alerts: list[Alert]
    days: dict[str, int]
    eligible_from: dict[str, datetime]  # end of the learning period
    last_seen: dict[str, datetime]


def replay(events: pd.DataFrame, sensor_map: dict[str, str], settings: AlertSettings | None = None) -> Replay:
    """Run every resident's events (resident_id, time, sensor, value) through a monitor."""
    settings = settings or AlertSettings()
    out: list[Alert] = []
    days: dict[str, int] = {}
    eligible: dict[str, datetime] = {}
    last_seen: dict[str, datetime] = {}
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
        observe = mon.observe
        for i in range(a, b):
            out.extend(observe(float(secs[i]), sensors[i], values[i]))
            if rid not in eligible and not mon.learning:
                eligible[rid] = mon.when(float(secs[i]))
        end = float(secs[b - 1])
        out.extend(mon.advance((end // 86400 + 1) * 86400))
        days[rid] = mon.profile.days + 1
        last_seen[rid] = mon.when(end)
    return Replay(out, days, eligible, last_seen)


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
    for i, x in enumerate(incidents.itertuples(index=False)):
        g = by_res.get(x.resident_id)
        if g is None:
            continue
        hit = g[(g["at"] >= x.start - pd.Timedelta(minutes=5)) & (g["at"] <= x.end + GRACE[x.kind])]
        explained[alerts.index.get_indexer(hit.index)] = True
        hit = hit[hit["kind"].map(INCIDENT_OF) == x.kind]
        if len(hit):
            delay[i] = max((hit["at"].min() - x.start).total_seconds() / 60, 0.0)
    return delay, explained


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
             caseload: int = 50, groups: dict[str, set[str]] | None = None) -> list[dict]:
    """One scored replay per sensitivity (the alert-budget curve), over all homes and, under
    `groups`, over each named group of homes (e.g. with and without a chair sensor)."""
    base = settings or AlertSettings()
    out = []
    for s in sensitivities:
        rep = replay(events, sensor_map, replace(base, sensitivity=float(s)))
        row = {"sensitivity": float(s)} | score(rep, incidents, caseload)
        if groups:
            row["groups"] = {name: score(rep, incidents, caseload, residents=ids) for name, ids in groups.items()}
        out.append(row)
    return out
