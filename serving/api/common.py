"""What every route module shares: the runtime of the request, the caller, parameter types,
error bodies and response conversions."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from serving import schemas
from serving.auth import Principal
from serving.runtime import Runtime, StartupError
from serving.scoring import ChunkScores
from serving.store import Task
from serving.store.tasks import CURSOR_PATTERN


def runtime_of(request: Request) -> Runtime:
    """The runtime the service built at start-up (held by the app, not by a module global)."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise StartupError("the service runtime is not built yet")
    return runtime


def principal_of(request: Request) -> Principal | None:
    return getattr(request.state, "principal", None)


api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="API key (or `Authorization: Bearer <key>`); roles: timebank, care_manager, admin.",
)
SECURED = [Security(api_key_header)]

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Client-chosen key; a retry with the same key changes nothing and returns the first answer.",
    ),
]
ResidentIdPath = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="Pseudonymous resident id.")]
TaskIdPath = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="Task id.")]
Cursor = Annotated[str | None, Query(pattern=CURSOR_PATTERN, description="next_cursor of the previous page.")]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]

ERRORS = {
    401: {"model": schemas.ErrorBody, "description": "No or unknown API key."},
    403: {"model": schemas.ErrorBody, "description": "The key's role may not call this route."},
}


def task_out(t: Task) -> schemas.TaskView:
    return schemas.TaskView(**{k: getattr(t, k) for k in schemas.TaskView.model_fields})


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def invalid(field: str, message: str) -> JSONResponse:
    """A 422 naming the body field at fault, in the shape of the request validation's own."""
    return JSONResponse({"error": message, "detail": [{"loc": ["body", field], "msg": message, "type": "value_error"}]},
                        status_code=422)


def assessments_of(chunk: ChunkScores, i: int) -> list[schemas.ModelAssessment]:
    """Row i of a scored chunk as one assessment per model, with its worded reasons."""
    return [
        schemas.ModelAssessment(
            model=name,
            version=s.version,
            kind=s.kind,
            probability=float(s.probability[i]),
            band=str(s.band[i]),
            reasons=chunk.reasons(name, i),
            missing_data=chunk.missing_data(name, i),
            causes=chunk.causes(name, i),
            likely_cause=chunk.likely_cause(name, i),
        )
        for name, s in chunk.by_model.items()
    ]


