"""Care-manager routes: residents ranked by risk, one resident's page, the task list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from serving import schemas
from serving.api.common import (
    ERRORS,
    SECURED,
    Cursor,
    Limit,
    ResidentIdPath,
    assessments_of,
    error,
    principal_of,
    runtime_of,
    task_out,
)
from serving.edge import CARE, allow

router = APIRouter(tags=["care managers"], dependencies=SECURED, responses=ERRORS)


@router.get("/residents/at-risk", response_model=schemas.AtRiskList, summary="Residents ranked by risk")
@allow(*CARE)
def at_risk(
    request: Request,
    model: Annotated[schemas.RiskModel | None, Query(description="Which risk (default: the first risk model).")] = None,
    band: Annotated[schemas.Band | None, Query(description="Only this band.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
):
    """The latest nightly scores, highest probability first; scored live when no batch has run."""
    rt = runtime_of(request)
    model = model or rt.risk_models[0]
    source, scores = rt.ranked_scores(model, band, limit)
    items = [
        schemas.AtRiskEntry(
            resident_id=s.resident_id,
            model=s.model,
            probability=s.probability,
            band=s.band,
            version=s.model_version,
            as_of_date=s.as_of,
            reasons=s.reasons,
            missing_data=s.missing_data,
        )
        for s in scores
    ]
    rt.audit.record(principal_of(request), "residents.at_risk", None, model=model, rows=len(items))
    return schemas.AtRiskList(source=source, items=items)


@router.get(
    "/residents/{resident_id}",
    response_model=schemas.ResidentPage,
    summary="One resident: current risks with reasons, score history, tasks",
    responses={404: {"model": schemas.ErrorBody, "description": "Unknown resident."}},
)
@allow(*CARE)
def resident_page(request: Request, resident_id: ResidentIdPath):
    rt = runtime_of(request)
    try:
        chunk = rt.score_residents([resident_id], rt.risk_models, rt.config.top_reasons)
    except KeyError:
        return error(404, f"unknown resident id: {resident_id}")
    assessments = assessments_of(chunk, 0)
    history = [
        schemas.ScorePoint(
            model=s.model,
            version=s.model_version,
            as_of_date=s.as_of,
            probability=s.probability,
            band=s.band,
            scored_at=s.scored_at,
        )
        for s in rt.store.score_history(resident_id)
    ]
    tasks = rt.store.list_tasks(status=None, resident_id=resident_id, limit=200).tasks
    rt.audit.record(principal_of(request), "resident.read", resident_id)
    return schemas.ResidentPage(
        resident_id=resident_id,
        as_of_date=chunk.as_of[0],
        assessments=assessments,
        score_history=history,
        tasks=[task_out(t) for t in tasks],
    )


@router.get("/tasks", response_model=schemas.TaskPage, summary="Tasks, for care managers")
@allow(*CARE)
def list_tasks(
    request: Request,
    status: Annotated[
        schemas.TaskStatus | None,
        Query(description="Only this status (all when absent)."),
    ] = None,
    resident_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
):
    rt = runtime_of(request)
    page = rt.store.list_tasks(status=status, resident_id=resident_id, cursor=cursor, limit=limit)
    rt.audit.record(principal_of(request), "tasks.read", resident_id, rows=len(page.tasks))
    return schemas.TaskPage(items=[task_out(t) for t in page.tasks], next_cursor=page.next_cursor)


