"""What the care manager's cockpit shows, computed from the stores without any HTTP.

Each function takes rows already read (score history, a resident's sensor days and records, tasks,
the demand outlook) and returns plain data for the page: trends and "newly high" marks, a
resident's sensors against their own usual range, missing-data notes kept apart from risk reasons,
one timeline, the task board and the per-grid demand heat map.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from features.explain import reason_text
from models.policy import DEFAULT_POLICY, ActionPolicy, Scarcity
from serving.store import ScoreRecord, Task
from twin.schema import SENSOR_DAYS

TREND_SIGNALS = ("gait_speed", "night_toilet_visits", "time_out_of_home", "steps", "sleep_hours")
"""The sensors drawn on a resident's page: the ones falls and isolation show first."""

TREND_DAYS = 120  # days of sensor history drawn
RECENT_DAYS = 14  # "recently", compared with the usual
USUAL_DAYS = 90  # the resident's own usual range: the 90 days before the recent ones
MISSING_DAYS = 30  # a sensor silent this long gets a missing-data note
ACTIVE = ("open", "claimed")


# ---------------------------------------------------------------------------------------------
# Scores over time
# ---------------------------------------------------------------------------------------------


def score_trend(history: Sequence[ScoreRecord], points: int = 12) -> list[dict[str, Any]]:
    """The last `points` scores (one per as-of date, the latest scoring of each), oldest first."""
    by_day: dict[date, ScoreRecord] = {}
    for r in history:
        by_day[r.as_of] = r  # history is oldest first: the last one of a day wins
    days = sorted(by_day)[-points:]
    return [{"as_of": d.isoformat(), "probability": by_day[d].probability, "band": by_day[d].band} for d in days]


def newly_high(trend: Sequence[Mapping[str, Any]], days: int = 7) -> bool:
    """High now, and not high in the latest score at least `days` before (none known: not new)."""
    if not trend or trend[-1]["band"] != "high":
        return False
    latest = date.fromisoformat(trend[-1]["as_of"])
    before = [p for p in trend[:-1] if date.fromisoformat(p["as_of"]) <= latest - timedelta(days=days)]
    return bool(before) and before[-1]["band"] != "high"


def signed_reasons(
    contributions: np.ndarray, feature_names: Sequence[str], row: Mapping[str, float], k: int = 8
) -> list[dict[str, Any]]:
    """The k inputs that move one resident's risk most, either way, strongest first, in words."""
    order = np.argsort(-np.abs(contributions), kind="stable")[:k]
    out = []
    for j in order.tolist():
        c = float(contributions[j])
        if c == 0.0:
            break
        name = feature_names[j]
        v = row.get(name, math.nan)
        out.append(
            {
                "feature": name,
                "contribution": c,
                "value": None if v != v else v,
                "text": reason_text(name, row, c),
                "direction": "raises" if c > 0 else "lowers",
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# Sensors against the resident's own usual range
# ---------------------------------------------------------------------------------------------


def _column(name: str):
    return SENSOR_DAYS.column(name)


def sensor_trends(days: pd.DataFrame, as_of: date, signals: Sequence[str] = TREND_SIGNALS) -> list[dict[str, Any]]:
    """Per signal: daily values of the last TREND_DAYS days, the usual range (10th-90th
    percentile of the USUAL_DAYS days before the recent RECENT_DAYS) and the recent change."""
    end = pd.Timestamp(as_of)
    frame = days.assign(date=pd.to_datetime(days["date"])).sort_values("date")
    shown = frame[(frame["date"] >= end - pd.Timedelta(days=TREND_DAYS)) & (frame["date"] < end)]
    recent_start = end - pd.Timedelta(days=RECENT_DAYS)
    usual_window = frame[(frame["date"] >= recent_start - pd.Timedelta(days=USUAL_DAYS)) & (frame["date"] < recent_start)]
    recent_window = frame[(frame["date"] >= recent_start) & (frame["date"] < end)]
    out = []
    for name in signals:
        col = _column(name)
        usual = usual_window[name].dropna().astype(float)
        recent = recent_window[name].dropna().astype(float)
        low = high = usual_mid = None
        if len(usual) >= 7:
            low, usual_mid, high = (float(x) for x in np.percentile(usual, [10, 50, 90]))
        recent_mean = float(recent.mean()) if len(recent) else None
        out.append(
            {
                "signal": name,
                "label": col.description,
                "unit": col.unit or "",
                "points": [
                    [d.date().isoformat(), None if v != v else round(float(v), 3)]
                    for d, v in zip(shown["date"], shown[name], strict=True)
                ],
                "usual_low": low,
                "usual_high": high,
                "usual_median": usual_mid,
                "recent_mean": recent_mean,
                "recent_from": recent_start.date().isoformat(),
                "change": _change_words(col.description, col.unit or "", recent_mean, low, usual_mid, high),
            }
        )
    return out


def _fmt(v: float, unit: str) -> str:
    if unit == "m/s":
        return f"{v:.2f} {unit}"
    if abs(v) >= 100:
        return f"{v:,.0f} {unit}".strip()
    return f"{v:.1f} {unit}".strip()


def _change_words(label: str, unit: str, recent: float | None, low, mid, high) -> str:
    if recent is None:
        return f"no {label} readings in the last {RECENT_DAYS} days"
    if mid is None:
        return f"{label} averaged {_fmt(recent, unit)} in the last {RECENT_DAYS} days (too few earlier days for a usual range)"
    where = "above" if recent > high else "below" if recent < low else "within"
    return (
        f"{label} averaged {_fmt(recent, unit)} in the last {RECENT_DAYS} days, {where} the usual "
        f"{_fmt(low, unit)} to {_fmt(high, unit)} (usually {_fmt(mid, unit)})"
    )


def missing_data_notes(days: pd.DataFrame, as_of: date, span: int = MISSING_DAYS) -> list[str]:
    """Sensors with no reading in the last `span` days, as notes (apart from the risk reasons)."""
    end = pd.Timestamp(as_of)
    dates = pd.to_datetime(days["date"]) if len(days) else pd.Series([], dtype="datetime64[ns]")
    window = days[(dates >= end - pd.Timedelta(days=span)) & (dates < end)] if len(days) else days
    if window.empty:
        last = dates.max() if len(dates) else None
        since = f" (last on {last.date().isoformat()})" if last is not None and not pd.isna(last) else ""
        return [f"no sensor data at all for {span} days{since}"]
    notes = []
    for col in SENSOR_DAYS.columns:
        if col.kind != "float" or col.name not in days.columns:
            continue
        if window[col.name].notna().any():
            continue
        seen = dates[days[col.name].notna()]
        since = f" (last on {seen.max().date().isoformat()})" if len(seen) else " (never recorded)"
        notes.append(f"no {col.description} data for {span} days{since}")
    return notes


# ---------------------------------------------------------------------------------------------
# One timeline: assessments, events, visits, tasks
# ---------------------------------------------------------------------------------------------


def _day(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return None
    return pd.Timestamp(v).date().isoformat()


def _assessment_text(r: Mapping[str, Any]) -> str:
    parts = []
    if pd.notna(r.get("tug_seconds")):
        parts.append(f"Timed Up and Go {float(r['tug_seconds']):.1f} s")
    if pd.notna(r.get("loneliness_score")):
        parts.append(f"loneliness score {int(r['loneliness_score'])} of 9")
    if r.get("fear_of_falling") is True:
        parts.append("worried about falling")
    if r.get("steadi_unsteady") is True:
        parts.append("feels unsteady")
    if r.get("steadi_fell_past_year") is True:
        parts.append("reported a fall in the past year")
    return "assessment: " + (", ".join(parts) if parts else "no findings recorded")


def timeline(
    assessments: pd.DataFrame,
    events: pd.DataFrame,
    visits: pd.DataFrame,
    tasks: Iterable[Task],
    limit: int = 60,
) -> list[dict[str, str]]:
    """Assessments, falls and other events, visits and tasks on one list, newest first."""
    items: list[dict[str, str]] = []
    for r in assessments.to_dict("records"):
        items.append({"date": _day(r["date"]), "kind": "assessment", "text": _assessment_text(r)})
    for r in events.to_dict("records"):
        kind = str(r["type"])
        text = "fall with injury" if kind == "fall" and r.get("injury") is True else kind.replace("_", " ")
        items.append({"date": _day(r["date"]), "kind": "fall" if kind == "fall" else "event", "text": text})
    for r in visits.to_dict("records"):
        text = f"{str(r['kind']).replace('_', ' ')} visit by {r['source']} ({float(r['hours']):.1f} h)"
        items.append({"date": _day(r["date"]), "kind": "visit", "text": text})
    for t in tasks:
        items.append({"date": _day(t.created_at), "kind": "task",
                      "text": f"task opened: {t.kind.replace('_', ' ')} ({t.reason}), now {t.status}"})
    items = [i for i in items if i["date"] is not None]
    items.sort(key=lambda i: i["date"], reverse=True)
    return items[:limit]


# ---------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------


def is_overdue(task: Task, today: date) -> bool:
    return task.status in ACTIVE and task.due_date is not None and task.due_date < today


def board_item(task: Task, today: date, title_of: Mapping[str, str]) -> dict[str, Any]:
    """One task as the board shows it: who, what for, credits, due, overdue."""
    return {
        "task_id": task.task_id,
        "resident_id": task.resident_id,
        "grid_id": task.grid_id,
        "kind": task.kind,
        "what_for": title_of.get(task.reason, task.reason),
        "explanation": task.explanation,
        "status": task.status,
        "volunteer_id": task.volunteer_id,
        "credits": task.credits,
        "due_date": task.due_date.isoformat() if task.due_date else None,
        "created_at": task.created_at.isoformat() if isinstance(task.created_at, datetime) else None,
        "completed_at": task.completed_at.isoformat() if isinstance(task.completed_at, datetime) else None,
        "overdue": is_overdue(task, today),
    }


# ---------------------------------------------------------------------------------------------
# Grids
# ---------------------------------------------------------------------------------------------


def demand_heatmap(
    outlook: pd.DataFrame,
    volunteers: pd.DataFrame,
    policy: ActionPolicy = DEFAULT_POLICY,
) -> dict[str, Any]:
    """Forecast requests per grid, category and day against volunteer hours offered a day.

    `requests[category][g][d]` is the forecast count of grid g on day d; `demand_hours[g][d]` sums
    the categories in hours (requests x the hours a request takes); `supply_hours[g]` is the
    grid's volunteers' weekly hours / 7; `hours_per_request[category]` what one request takes.
    """
    if outlook.empty:
        return {"dates": [], "grids": [], "categories": [], "requests": {}, "demand_hours": [], "supply_hours": [],
                "hours_per_request": {}}
    parts = outlook["series_id"].astype(str).str.rsplit(":", n=1, expand=True)
    f = pd.DataFrame({
        "grid": parts[0], "category": parts[1],
        "date": pd.to_datetime(outlook["date"]).dt.date.map(date.isoformat),
        "forecast": outlook["forecast"].astype(float).clip(lower=0),
    })
    dates = sorted(f["date"].unique())
    grids = sorted(set(f["grid"]))
    categories = sorted(set(f["category"]))
    requests: dict[str, list[list[float]]] = {}
    hours = np.zeros((len(grids), len(dates)))
    for cat in categories:
        table = (
            f[f["category"] == cat].pivot_table(index="grid", columns="date", values="forecast", aggfunc="sum")
            .reindex(index=grids, columns=dates).fillna(0.0)
        )
        requests[cat] = np.round(table.to_numpy(), 2).tolist()
        hours += table.to_numpy() * float(policy.base_hours.get(cat, 1.0))
    supply = volunteers.groupby("grid_id")["weekly_hours"].sum().astype(float) / 7.0 if len(volunteers) else pd.Series(dtype=float)
    return {
        "dates": dates,
        "grids": grids,
        "categories": categories,
        "requests": requests,
        "demand_hours": np.round(hours, 2).tolist(),
        "supply_hours": [round(float(supply.get(g, 0.0)), 2) for g in grids],
        "hours_per_request": {c: float(policy.base_hours.get(c, 1.0)) for c in categories},
    }


def grid_rows(
    grids: Sequence[str],
    high_by_model: Mapping[str, Mapping[str, int]],
    active_tasks: Iterable[Task],
    today: date,
    scarcity: Mapping[str, Scarcity],
    policy: ActionPolicy = DEFAULT_POLICY,
) -> list[dict[str, Any]]:
    """Per grid: residents at high risk per model, open and overdue tasks, credits' scarcity."""
    open_n: dict[str, int] = {}
    overdue_n: dict[str, int] = {}
    for t in active_tasks:
        open_n[t.grid_id] = open_n.get(t.grid_id, 0) + 1
        if is_overdue(t, today):
            overdue_n[t.grid_id] = overdue_n.get(t.grid_id, 0) + 1
    out = []
    for g in grids:
        s = scarcity.get(g)
        factor = s.factor if s is not None else policy.scarcity_floor
        out.append(
            {
                "grid_id": g,
                "high": {m: int(counts.get(g, 0)) for m, counts in high_by_model.items()},
                "active_tasks": open_n.get(g, 0),
                "overdue_tasks": overdue_n.get(g, 0),
                "scarcity": round(float(factor), 3),
                "demand_hours_7d": None if s is None else s.demand_hours,
                "supply_hours_7d": None if s is None else s.supply_hours,
                "credits_raised": factor > policy.scarcity_floor,
            }
        )
    return out
