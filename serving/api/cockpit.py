"""The care manager's cockpit: at-risk list with trends, one resident in depth, the task board and
the per-grid view with the demand outlook. Read-only; every read of resident data is audited."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Request

from models.registry import risk_specs
from serving import cockpit, schemas
from serving.api.common import (
    ERRORS,
    SECURED,
    ResidentIdPath,
    error,
    principal_of,
    runtime_of,
)
from serving.edge import CARE, allow
from twin.schema import TASK_STATUSES

router = APIRouter(prefix="/cockpit", tags=["care managers' cockpit"], dependencies=SECURED, responses=ERRORS)

GridId = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="Only this grid cell.")]
PANELS_NOT_YET = {
    "alerts": "Live alerts are not available yet: no sensor map of the homes is configured (TWINCARE_SENSOR_MAP).",
    "what_if": "What-if results are not available yet: no what-if run is published to this service so far.",
}


def _titles(rt) -> dict[str, str]:
    specs = risk_specs()
    return {m: specs[m].title if m in specs else m for m in rt.risk_models}


def _today(rt) -> date:
    return rt.store.now().date()


@router.get("/meta", summary="What the cockpit can show: risk models, bands, grids, panels")
@allow(*CARE)
def meta(request: Request) -> dict[str, Any]:
    rt = runtime_of(request)
    specs = risk_specs()
    kinds = rt.model_kinds
    models = [
        {"name": m, "title": specs[m].title, "medium": specs[m].bands.medium, "high": specs[m].bands.high,
         "version": rt.model_versions[m], "kind": kinds[m]}
        for m in rt.risk_models
        if m in specs
    ]
    who = principal_of(request)
    return {
        "who": {"name": who.name, "role": who.role} if who else None,
        "today": _today(rt).isoformat(),
        "features_as_of": None if rt.online.as_of is None else str(rt.online.as_of.date()),
        "models": models,
        "grids": sorted(set(rt.grid_of.values())),
        "panels_not_available": {k: v for k, v in PANELS_NOT_YET.items() if not (k == "alerts" and rt.live is not None)},
    }


@router.get("/at-risk", summary="Ranked residents with grid, trend and newly-high mark")
@allow(*CARE)
def at_risk(
    request: Request,
    model: Annotated[schemas.RiskModel | None, Query(description="Which risk (default: the first).")] = None,
    band: Annotated[schemas.Band | None, Query(description="Only this band.")] = None,
    grid: GridId = None,
    q: Annotated[str | None, Query(max_length=64, description="Resident id contains this.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Highest probability first from the latest nightly scores (scored live when none are stored)."""
    rt = runtime_of(request)
    model = model or rt.risk_models[0]
    if model not in rt.risk_models:
        return error(422, f"model not served here: {model}")
    source, scores = rt.ranked_scores(model, band)
    if grid is not None:
        scores = [s for s in scores if rt.grid_of.get(s.resident_id) == grid]
    if q:
        needle = q.strip().lower()
        scores = [s for s in scores if needle in s.resident_id.lower()]
    items = []
    for rank, s in enumerate(scores[:limit], start=1):
        trend = cockpit.score_trend(rt.store.score_history(s.resident_id, model=model)) if source == "stored" else []
        items.append(
            {
                "rank": rank,
                "resident_id": s.resident_id,
                "grid_id": rt.grid_of.get(s.resident_id),
                "probability": s.probability,
                "band": s.band,
                "as_of_date": s.as_of.isoformat() if s.as_of else None,
                "reasons": s.reasons,
                "missing_data": s.missing_data,
                "trend": trend,
                "newly_high": cockpit.newly_high(trend),
            }
        )
    rt.audit.record(principal_of(request), "cockpit.at_risk", None, model=model, rows=len(items))
    return {"model": model, "source": source, "total": len(scores), "items": items}


@router.get(
    "/residents/{resident_id}",
    summary="One resident: risk over time, signed reasons, sensor trends, timeline, tasks",
    responses={404: {"model": schemas.ErrorBody, "description": "Unknown resident."}},
)
@allow(*CARE)
def resident(request: Request, resident_id: ResidentIdPath) -> dict[str, Any]:
    rt = runtime_of(request)
    try:
        chunk = rt.score_residents([resident_id], rt.risk_models, rt.config.top_reasons)
    except KeyError:
        return error(404, f"unknown resident id: {resident_id}")
    as_of = chunk.as_of[0] or _today(rt)
    row = dict(zip(chunk.columns, chunk.values[0].tolist(), strict=True))
    titles = _titles(rt)
    history = rt.store.score_history(resident_id)
    risks = []
    for m, s in chunk.by_model.items():
        champion = rt.champions[m]
        cols = [chunk.columns[n] for n in champion.feature_names]
        contrib = champion.spec.contributions(champion.loaded, chunk.values[:, cols])[0]
        trend = cockpit.score_trend([h for h in history if h.model == m], points=52)
        if not trend or trend[-1]["as_of"] != as_of.isoformat():
            trend.append({"as_of": as_of.isoformat(), "probability": float(s.probability[0]), "band": str(s.band[0])})
        risks.append(
            {
                "model": m,
                "title": titles[m],
                "version": s.version,
                "kind": s.kind,
                "probability": float(s.probability[0]),
                "band": str(s.band[0]),
                "bands": {"medium": champion.spec.bands.medium, "high": champion.spec.bands.high},
                "reasons": cockpit.signed_reasons(np.asarray(contrib), champion.feature_names, row),
                "causes": chunk.causes(m, 0),
                "likely_cause": chunk.likely_cause(m, 0),
                "trend": trend,
                "newly_high": cockpit.newly_high(trend),
            }
        )
    since = pd.Timestamp(as_of) - pd.Timedelta(days=max(cockpit.TREND_DAYS, cockpit.RECENT_DAYS + cockpit.USUAL_DAYS))
    h = rt.history
    days = h.read("sensor_days", start=since, residents=[resident_id])
    year_ago = pd.Timestamp(as_of) - pd.Timedelta(days=365)
    tasks = rt.store.list_tasks(status=None, resident_id=resident_id, limit=200).tasks
    today = _today(rt)
    body = {
        "resident_id": resident_id,
        "grid_id": rt.grid_of.get(resident_id),
        "as_of_date": as_of.isoformat(),
        "today": today.isoformat(),
        "risks": risks,
        "sensors": cockpit.sensor_trends(days, as_of),
        "missing_data": cockpit.missing_data_notes(days, as_of),
        "timeline": cockpit.timeline(
            h.read("assessments", start=year_ago, residents=[resident_id]),
            h.read("events", start=year_ago, residents=[resident_id]),
            h.read("visits", start=year_ago, residents=[resident_id]),
            tasks,
        ),
        "tasks": [cockpit.board_item(t, today, titles) for t in reversed(tasks)],
    }
    rt.audit.record(principal_of(request), "cockpit.resident", resident_id)
    return body


@router.get("/tasks", summary="Task board: open, claimed, completed (recent), overdue flagged")
@allow(*CARE)
def task_board(
    request: Request,
    grid: GridId = None,
    recent: Annotated[int, Query(ge=1, le=200, description="Finished tasks shown per column.")] = 30,
) -> dict[str, Any]:
    rt = runtime_of(request)
    today = _today(rt)
    titles = _titles(rt)
    columns: dict[str, list[dict[str, Any]]] = {s: [] for s in TASK_STATUSES}
    for t in _all_tasks(rt, grid=grid):
        columns.setdefault(t.status, []).append(cockpit.board_item(t, today, titles))
    for status in ("completed", "expired", "cancelled"):
        columns[status] = columns.get(status, [])[-recent:][::-1]
    overdue = sum(i["overdue"] for s in cockpit.ACTIVE for i in columns.get(s, []))
    rt.audit.record(principal_of(request), "cockpit.tasks", None, grid=grid)
    return {"today": today.isoformat(), "overdue": overdue, "columns": columns}


def _all_tasks(rt, *, status=None, grid: str | None = None):
    cursor = None
    while True:
        page = rt.store.list_tasks(status=status, grid_id=grid, cursor=cursor, limit=500)
        yield from page.tasks
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


@router.get("/grids", summary="Per grid: high-risk residents, tasks, demand outlook against volunteer supply")
@allow(*CARE)
def grids(
    request: Request,
    days: Annotated[int, Query(ge=1, le=14, description="Days of demand outlook.")] = 14,
) -> dict[str, Any]:
    rt = runtime_of(request)
    today = _today(rt)
    high = {}
    for m in rt.risk_models:
        counts: dict[str, int] = {}
        for s in rt.store.latest_scores(m, band="high", limit=1_000_000):
            g = rt.grid_of.get(s.resident_id)
            if g is not None:
                counts[g] = counts.get(g, 0) + 1
        high[m] = counts
    active = list(_all_tasks(rt, status=list(cockpit.ACTIVE)))
    volunteers = (
        rt.history.read("volunteers", ["grid_id", "weekly_hours"]) if rt.history.has("volunteers")
        else pd.DataFrame(columns=["grid_id", "weekly_hours"])
    )
    heat = cockpit.demand_heatmap(rt.demand_outlook(days), volunteers)
    names = sorted(set(rt.grid_of.values()) | set(heat["grids"]))
    rows = cockpit.grid_rows(names, high, active, today, rt.grid_scarcity())
    rt.audit.record(principal_of(request), "cockpit.grids", None)
    return {
        "today": today.isoformat(),
        "titles": _titles(rt),
        "grids": rows,
        "heatmap": heat,
        "window_end": (today + timedelta(days=days)).isoformat(),
    }
