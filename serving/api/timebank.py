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
from serving.store import Forbidden
from serving.volunteers import TOKEN_HEADER, VolunteerTokenError, verify

log = logging.getLogger("twincare.serving")

router = APIRouter(prefix="/timebank", tags=["time bank"], dependencies=SECURED, responses=ERRORS)


@router.get("/tasks", response_model=schemas.FeedPage, summary="Open tasks feed (cursor)")
@allow(*TIMEBANK)
def open_tasks(
    request: Request,
    grid_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
):
    """Open tasks in the order they were opened; keep `next_cursor` to see each new task once.

    The feed says what help is needed where, not who needs it or why: no resident id, no risk
    reason (the volunteer who claims a task gets those)."""
    rt = runtime_of(request)
    page = rt.store.list_open_tasks(grid_id=grid_id, cursor=cursor, limit=limit)
    rt.audit.record(principal_of(request), "timebank.feed", None, grid_id=grid_id, rows=len(page.tasks))
    return schemas.FeedPage(
        items=[schemas.FeedTask(**{k: getattr(t, k) for k in schemas.FeedTask.model_fields}) for t in page.tasks],
        next_cursor=page.next_cursor,
    )


def acting_volunteer(request: Request, named: str | None) -> str:
    """The volunteer this call acts for: the one bound to the key, else the one a valid
    X-Volunteer-Token names; a body naming anyone else is refused (403)."""
    p = principal_of(request)
    vid = getattr(p, "volunteer_id", None)
    if vid is None:
        token = request.headers.get(TOKEN_HEADER)
        secret = runtime_of(request).volunteer_secret
        if not token or secret is None:
            raise Forbidden(
                f"key {getattr(p, 'name', '?')!r} is not bound to a volunteer: send {TOKEN_HEADER} "
                "signed for this key, or use the volunteer's own key"
            )
        try:
            vid = verify(secret, token, p.name)
        except VolunteerTokenError as exc:
            raise Forbidden(str(exc)) from None
    if named is not None and named != vid:
        raise Forbidden(f"this call acts as volunteer {vid!r}, not {named!r}")
    return vid


@router.post(
    "/tasks/{task_id}/claim",
    response_model=schemas.TaskResult,
    summary="Claim an open task",
    responses={404: {"model": schemas.ErrorBody}, 409: {"model": schemas.ErrorBody}},
)
@allow(*TIMEBANK)
def claim(request: Request, task_id: TaskIdPath, body: schemas.ClaimBody, idempotency_key: IdempotencyKey):
    volunteer = acting_volunteer(request, body.volunteer_id)
    task = runtime_of(request).store.claim_task(
        task_id, volunteer, idempotency_key=idempotency_key, actor=principal_of(request)
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
    volunteer = acting_volunteer(request, body.volunteer_id)
    task = rt.store.complete_task(task_id, volunteer, idempotency_key=idempotency_key, actor=principal_of(request))
    rt.visits_due()  # written back in batches by the runtime's flusher, not one part per task
    return schemas.TaskResult(task=task_out(task))


@router.post(
    "/tasks/{task_id}/cancel",
    response_model=schemas.TaskResult,
    summary="Cancel an active task (a volunteer: only one they claimed)",
    responses={404: {"model": schemas.ErrorBody}, 409: {"model": schemas.ErrorBody}},
)
@allow(*TIMEBANK, *CARE)
def cancel(request: Request, task_id: TaskIdPath, idempotency_key: IdempotencyKey, body: schemas.CancelBody | None = None):
    """Care managers cancel any active task; a volunteer only releases a task they claimed."""
    p = principal_of(request)
    volunteer = acting_volunteer(request, None) if getattr(p, "role", None) == "timebank" else None
    task = runtime_of(request).store.cancel_task(
        task_id,
        idempotency_key=idempotency_key,
        note=(body.reason if body else "cancelled"),
        actor=p,
        volunteer_id=volunteer,
    )
    return schemas.TaskResult(task=task_out(task))


