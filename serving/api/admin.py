"""Administrators' routes: the model card of each served model (or of any registered version)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, PlainTextResponse

from serving import schemas
from serving.api.common import ERRORS, SECURED, error, principal_of, runtime_of
from serving.edge import allow

router = APIRouter(tags=["administrators"], dependencies=SECURED, responses=ERRORS)


@router.get(
    "/models/{model}/card",
    summary="The model card of a served model (default: the version served now)",
    response_class=PlainTextResponse,
    responses={404: {"model": schemas.ErrorBody, "description": "Unknown model or version, or no card."}},
)
@allow("admin")
def model_card(
    request: Request,
    model: Annotated[str, PathParam(pattern=r"^[a-z0-9_-]{1,64}$", description="Registered model name.")],
    version: Annotated[str | None, Query(pattern=r"^[0-9]{1,9}$", description="Registered version.")] = None,
    format: Annotated[str, Query(pattern=r"^(md|html)$", description="md (Markdown) or html.")] = "md",
):
    rt = runtime_of(request)
    name = model.replace("-", "_")
    if name not in rt.champions:
        return error(404, f"model {model!r} is not served here; served: {', '.join(rt.champions)}")
    try:
        text = rt.model_card(name, version, format)
    except LookupError as exc:
        return error(404, str(exc.args[0]))
    rt.audit.record(principal_of(request), "model.card", None, model=name, version=version or "served")
    if format == "html":
        return HTMLResponse(text)
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")
