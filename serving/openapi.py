"""The served OpenAPI document, made exact: who may call each route, and every answer it gives.

BentoML writes the document from the APIs and the mounted app; `finish` adds what it leaves out
so that a client (or a fuzzer) generated from it meets the service as it is: the version, the
API-key (or sign-in cookie) `security` of every secured route, the one error body for every 4xx
it can answer, and the volunteer token header of the time-bank writes.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from serving.auth import SESSION_COOKIE
from serving.edge import MAX_BODY_BYTES, RouteTable
from serving.volunteers import TOKEN_HEADER

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
ERROR_SCHEMA = {
    "type": "object",
    "title": "ErrorBody",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {"type": "string", "description": "What was wrong (never the value sent)."},
        "detail": {
            "type": "array",
            "description": "For a request that is not valid: where and why, one item per problem.",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
_ANSWERS = {
    "400": "The body is not JSON or not the declared shape.",
    "401": "No or unknown API key.",
    "403": "The key's role may not call this route, or it acts for another volunteer.",
    "404": "No such resident, task or series.",
    "409": "The task is not in a state that allows this, or the idempotency key was used for another request.",
    "413": f"The body is larger than {MAX_BODY_BYTES} bytes or the batch is too large.",
    "415": "The body is not application/json.",
    "422": "A parameter or the body is not valid (unknown query parameters included).",
    "503": "A store the answer needs is unavailable; retry later.",
}
_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


def _version() -> str:
    try:
        return metadata.version("twincare")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a plain checkout
        return "0"


def _error(code: str) -> dict:
    return {"description": _ANSWERS[code], "content": {"application/json": {"schema": ERROR_REF}}}


def finish(spec: dict[str, Any], table: RouteTable, body_apis: Sequence[str] = ()) -> dict[str, Any]:
    """A copy of BentoML's document with the security, answers and version the service has;
    `body_apis` are the routes whose JSON body is required."""
    spec = copy.deepcopy(spec)
    spec["info"] = {
        "title": "TwinCare",
        "version": _version(),
        "description": "Fall-risk and isolation scores with reasons, demand forecasts, and the time bank's tasks. "
        "Every error answer is `{\"error\": ..., \"detail\": [...]}`.",
    }
    comps = spec.setdefault("components", {})
    schemas = comps.setdefault("schemas", {})
    schemas["ErrorBody"] = ERROR_SCHEMA
    for gone in ("InvalidArgument", "NotFound", "InternalServerError", "HTTPValidationError", "ValidationError"):
        schemas.pop(gone, None)
    comps.setdefault("securitySchemes", {}).update({
        "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                         "description": "API key; roles: timebank, care_manager, admin."},
        "BearerKey": {"type": "http", "scheme": "bearer", "description": "The same API key as a bearer token."},
        "SessionCookie": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                          "description": "The web page's sign-in session (`POST /session`), care managers only."},
    })
    for path, item in spec.get("paths", {}).items():
        concrete = path.replace("{", "").replace("}", "")
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            rule = table.rule(method.upper(), concrete)
            responses = {str(k): v for k, v in op.get("responses", {}).items() if not str(k).startswith("5")}
            codes = ["422"]
            if rule is None or not rule.access.public:
                op["security"] = [{"APIKeyHeader": []}, {"BearerKey": []}]
                if rule is not None and "care_manager" in (rule.access.roles or ()):
                    op["security"].append({"SessionCookie": []})
                codes += ["401", "403", "503"]
            if "requestBody" in op:
                codes += ["400", "413", "415"]
                if path in body_apis:  # BentoML leaves their body optional; it names what to score
                    op["requestBody"]["required"] = True
            if any(p.get("in") == "path" for p in op.get("parameters", [])) or path in ("/assess", "/forecast_demand"):
                codes.append("404")
            if path.startswith("/timebank/tasks/") and method == "post":
                codes.append("409")
                op.setdefault("parameters", []).append({
                    "name": TOKEN_HEADER, "in": "header", "required": False,
                    "description": "For a key not bound to one volunteer: the signed token of the volunteer acting.",
                    "schema": {"type": "string", "maxLength": 1000},
                })
            for code in codes:
                responses[code] = _error(code)
            if path == "/readyz":
                responses["503"] = {"description": "Not ready: a model, store or history part is unavailable."}
            op["responses"] = responses
    _link(spec)
    return _drop_refs(spec)


# (from path, method, to path, method, parameter, where the value is in the 200 answer)
LINKS = (
    ("/timebank/tasks", "get", "/timebank/tasks/{task_id}/claim", "post", "task_id", "/items/0/task_id"),
    ("/timebank/tasks/{task_id}/claim", "post", "/timebank/tasks/{task_id}/complete", "post", "task_id", "/task/task_id"),
    ("/timebank/tasks/{task_id}/claim", "post", "/timebank/tasks/{task_id}/cancel", "post", "task_id", "/task/task_id"),
    ("/tasks", "get", "/timebank/tasks/{task_id}/cancel", "post", "task_id", "/items/0/task_id"),
    ("/residents/at-risk", "get", "/residents/{resident_id}", "get", "resident_id", "/items/0/resident_id"),
)


def _link(spec: dict[str, Any]) -> None:
    """OpenAPI links between operations (the feed's task is claimed, then completed), so a client
    (or a stateful fuzzer) can follow a task through its life."""
    paths = spec.get("paths", {})
    for src, sm, dst, dm, param, pointer in LINKS:
        source, target = paths.get(src, {}).get(sm), paths.get(dst, {}).get(dm)
        if source is None or target is None or "operationId" not in target:
            continue
        ok = source.get("responses", {}).get("200")
        if ok is None:
            continue
        name = target["operationId"]
        ok.setdefault("links", {})[name] = {
            "operationId": name,
            "parameters": {param: f"$response.body#{pointer}"},
        }


def _drop_refs(node: Any) -> Any:
    """Point every reference to a removed BentoML or FastAPI error schema at ErrorBody."""
    gone = {f"#/components/schemas/{n}" for n in
            ("InvalidArgument", "NotFound", "InternalServerError", "HTTPValidationError", "ValidationError")}
    if isinstance(node, dict):
        if node.get("$ref") in gone:
            return dict(ERROR_REF)
        return {k: _drop_refs(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_drop_refs(v) for v in node]
    return node
