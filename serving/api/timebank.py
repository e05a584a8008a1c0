"""Time-bank routes: the open-task feed, claim, complete (credits move), cancel."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query, Request

from serving import schemas
from serving.api.common import (
    ERRORS,
    SECURED,
    Cursor,
    IdempotencyKey,
    Limit,
    TaskIdPath,
    principal_of,
    runtime_of,
    task_out,
)
from serving.edge import CARE, TIMEBANK, allow

log = logging.getLogger("twincare.serving")

router = APIRouter(prefix="/timebank", tags=["time bank"], dependencies=SECURED, responses=ERRORS)


@router.get("/tasks", response_model=schemas.TaskPage, summary="Open tasks feed (cursor)")
@allow(*TIMEBANK)
def open_tasks(
    request: Request,
    grid_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
):
    """Open tasks in the order they were opened; keep `next_cursor` to see each new task once."""
    page = runtime_of(request).store.list_open_tasks(grid_id=grid_id, cursor=cursor, limit=limit)
    return schemas.TaskPage(items=[task_out(t) for t in page.tasks], next_cursor=page.next_cursor)


@router.post(
    "/tasks/{task_id}/claim",
    response_model=schemas.TaskResult,
    summary="Claim an open task",
    responses={404: {"model": schemas.ErrorBody}, 409: {"model": schemas.ErrorBody}},
)
@allow(*TIMEBANK)
def claim(request: Request, task_id: TaskIdPath, body: schemas.ClaimBody, idempotency_key: IdempotencyKey):
    task = runtime_of(request).store.claim_task(
        task_id, body.volunteer_id, idempotency_key=idempotency_key, actor=principal_of(request)
    )
    return schemas.TaskResult(task=task_out(task))


@router.post(
    "/tasks/{task_id}/complete",
    response_model=schemas.TaskResult,
    summary="Complete a claimed task: credits move, the visit is written back",
    responses={403: {"model": schemas.ErrorBody}, 404: {"model": schemas.ErrorBody}, 409: {"model": schemas.ErrorBody}},
)
@allow(*TIMEBANK)
def complete(request: Request, task_id: TaskIdPath, body: schemas.CompleteBody, idempotency_key: IdempotencyKey):
    rt = runtime_of(request)
    task = rt.store.complete_task(
        task_id, body.volunteer_id, idempotency_key=idempotency_key, actor=principal_of(request)
    )
    try:
        rt.store.flush_visits(rt.history)
    except Exception:  # the visit stays pending and the next flush (or the batch) writes it
        log.exception("visit write-back for task %s deferred", task_id)
    return schemas.TaskResult(task=task_out(task))


@router.post(
    "/tasks/{task_id}/cancel",
    response_model=schemas.TaskResult,
    summary="Cancel an open or claimed task",
    responses={404: {"model": schemas.ErrorBody}, 409: {"model": schemas.ErrorBody}},
)
@allow(*TIMEBANK, *CARE)
def cancel(request: Request, task_id: TaskIdPath, idempotency_key: IdempotencyKey, body: schemas.CancelBody | None = None):
    task = runtime_of(request).store.cancel_task(
        task_id,
        idempotency_key=idempotency_key,
        note=(body.reason if body else "cancelled"),
        actor=principal_of(request),
    )
    return schemas.TaskResult(task=task_out(task))


