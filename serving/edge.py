"""Authorization at the edge, declared where each route is defined, and closed by default.

Every route states who may call it with `@allow(role, ...)` or `@public` on its function (FastAPI
routes and the BentoML APIs alike); BentoML's own routes are declared in `BUILTIN_ROUTES`.
`RouteTable.build` reads those declarations from the app and refuses to build when any route
states none, so a route added later without roles stops start-up instead of being open.
`EdgeMiddleware` checks the API key (or the web page's sign-in session cookie) against the table
before anything else runs; a path that is
no route at all still needs a valid key before it gets its 404.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from serving.auth import (
    ROLES,
    AuthError,
    allow_principal,
    authorize,
    key_from_headers,
    session_token_from_headers,
)

CARE = ("care_manager",)
TIMEBANK = ("timebank",)
DEVICE = ("device",)
AUTHENTICATED = tuple(r for r in ROLES if r not in DEVICE)  # any valid key but a home gateway's
ACCESS_ATTR = "__twincare_access__"


class UndeclaredRoute(RuntimeError):
    """A route states no roles; the message names it."""


@dataclass(frozen=True)
class Access:
    """Who may call a route: `roles` (admin always may), or `None` for everyone."""

    roles: tuple[str, ...] | None

    def __post_init__(self) -> None:
        if self.roles is not None:
            unknown = [r for r in self.roles if r not in ROLES]
            if unknown or not self.roles:
                raise ValueError(f"roles must be some of {ROLES}, got {self.roles}")

    @property
    def public(self) -> bool:
        return self.roles is None


def allow(*roles: str) -> Callable:
    """Declare the roles that may call the decorated route (admin always may)."""
    access = Access(tuple(roles))

    def mark(fn):
        setattr(fn, ACCESS_ATTR, access)
        return fn

    return mark


def public(fn):
    """Declare the decorated route open to everyone (health probes, the page and its files)."""
    setattr(fn, ACCESS_ATTR, Access(None))
    return fn


def access_of(fn: Any) -> Access | None:
    return getattr(fn, ACCESS_ATTR, None)


# BentoML's own routes (no function of ours to decorate): path -> access.
BUILTIN_ROUTES: Mapping[str, Access] = {
    "/livez": Access(None),
    "/healthz": Access(None),
    "/readyz": Access(None),
    "/metrics": Access(("admin",)),
    "/docs.json": Access(None),
    "/schema.json": Access(AUTHENTICATED),
    "/static_content/*": Access(None),
    "/": Access(None),
}


@dataclass(frozen=True)
class RouteRule:
    methods: frozenset[str]
    pattern: re.Pattern
    access: Access
    path: str  # the declared path, for messages, tests and the access log
    query: frozenset[str] | None = None  # the query parameters the route declares (None: not checked)


@dataclass(frozen=True)
class RouteTable:
    """The declared access of every route; `match` answers which access a request needs."""

    rules: tuple[RouteRule, ...]

    @classmethod
    def build(cls, app: Any, apis: Mapping[str, Any] = (), builtins: Mapping[str, Access] = BUILTIN_ROUTES) -> RouteTable:
        """Read the declarations of the routes of a Starlette/FastAPI `app` and of BentoML
        `apis` (name -> APIMethod). Raises UndeclaredRoute naming every route without one."""
        rules: list[RouteRule] = []
        missing: list[str] = []
        for route in getattr(app, "routes", ()):
            path = getattr(route, "path", None)
            if path is None or not hasattr(route, "path_regex"):
                missing.append(f"{type(route).__name__} (a route whose roles cannot be read)")
                continue
            access = access_of(getattr(route, "endpoint", None))
            if access is None:
                missing.append(f"{','.join(sorted(getattr(route, 'methods', None) or ['*']))} {path}")
                continue
            methods = frozenset(getattr(route, "methods", None) or ())
            dependant = getattr(route, "dependant", None)
            query = (
                frozenset(p.alias for p in dependant.query_params) if dependant is not None else None
            )
            rules.append(RouteRule(methods, route.path_regex, access, path, query))
        for name, api in dict(apis).items():
            access = access_of(getattr(api, "func", None))
            route = getattr(api, "route", f"/{name}")
            if access is None:
                missing.append(f"POST {route} (BentoML API {name})")
                continue
            rules.append(RouteRule(frozenset({"POST"}), re.compile(f"^{re.escape(route)}$"), access, route, frozenset()))
        if missing:
            raise UndeclaredRoute(
                "route(s) declare no roles (add @allow(...) or @public where they are defined): "
                + "; ".join(missing)
            )
        for path, access in builtins.items():
            prefix = path.endswith("/*")
            pattern = re.compile(f"^{re.escape(path[:-1])}.*$" if prefix else f"^{re.escape(path)}$")
            rules.append(RouteRule(frozenset({"GET", "HEAD"}), pattern, access, path, None if prefix else frozenset()))
        return cls(tuple(rules))

    def rule(self, method: str, path: str) -> RouteRule | None:
        """The declared route a request reaches, if any."""
        for rule in self.rules:
            if (not rule.methods or method in rule.methods) and rule.pattern.match(path):
                return rule
        return None

    def match(self, method: str, path: str) -> Access | None:
        """The access of the route a request reaches; None when it reaches no declared route."""
        rule = self.rule(method, path)
        return None if rule is None else rule.access

    def methods_at(self, path: str) -> list[str]:
        """Every method some declared route takes at `path` (a 405's `Allow`)."""
        return sorted({m for r in self.rules if r.pattern.match(path) for m in r.methods})

    def declared(self) -> Iterable[RouteRule]:
        return iter(self.rules)


MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest request body anyone may send (a full /assess batch of explicit rows fits)."""

SECURITY_HEADERS = (
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; "
     b"base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
CACHEABLE_PREFIXES = ("/web/", "/static_content/")
"""Static files of the page: no resident data, revalidated (no-cache). Everything else: no-store."""

access_log = logging.getLogger("twincare.access")


async def send_json(send, status: int, body: dict, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": payload})


def _authenticate(runtime: Any, headers: Mapping[str, str], roles: Sequence[str]):
    """(principal, "key" | "session"): an API key in the headers wins; without one, the web
    page's sign-in session cookie. Raises AuthError (401 unknown or expired, 403 wrong role)."""
    key = key_from_headers(headers)
    token = None if key else session_token_from_headers(headers)
    if token is None:
        return authorize(runtime.keyring, key, roles), "key"
    session = runtime.sessions.find(token)
    if session is None:
        raise AuthError(401, "the sign-in session has expired or ended; sign in again")
    return allow_principal(session.principal, roles), "session"


_REASONS = {400: "the request is not valid", 404: "no such route", 405: "method not allowed on this route",
            413: "the request body is too large", 415: "unsupported content type",
            422: "the request is not valid", 500: "internal error", 503: "the service is unavailable"}


def error_body(status: int, raw: bytes, content_type: str) -> dict:
    """Any error answer as the one shape `{"error": text, "detail": [...]}`, never echoing input."""
    doc: Any = None
    if "json" in content_type:
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str) and "detail" not in doc and len(doc) == 1:
        return doc
    message = doc["error"] if isinstance(doc, dict) and isinstance(doc.get("error"), str) else \
        _REASONS.get(status, "the request failed")
    detail = None
    items = doc.get("detail") if isinstance(doc, dict) else doc if isinstance(doc, list) else None
    if isinstance(items, list):  # validation errors: where and what, not the value sent
        detail = [
            {"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in items if isinstance(e, dict)
        ]
    elif isinstance(items, str) and status < 500:
        message = items
    if status == 400 and detail:
        status = 422
    return {"error": message, **({"detail": detail} if detail else {})}


class EdgeMiddleware:
    """ASGI middleware: the API-key check a request's route declares, before anything else runs.

    `state` is the app state the service fills at start-up (`route_table`, `runtime`). Puts the
    caller's `Principal` in `scope["state"]["principal"]`. Also, for every request: a body size
    limit, unknown query parameters refused, one error body shape (BentoML's 400 for a body that
    fails validation becomes 422), security headers, `Cache-Control: no-store` on pages and
    data, and an access log line naming the route template (never a resident id).
    """

    def __init__(self, app, state: Any, validated_apis: Sequence[str] = ()):
        self.app = app
        self.state = state
        self.validated = frozenset(validated_apis)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        path, method = scope["path"], scope["method"]
        table: RouteTable | None = getattr(self.state, "route_table", None)
        rule = table.rule(method, path) if table is not None else None
        status_seen: list[int] = []
        send = self._shaped(send, path, status_seen, table.methods_at(path) if table is not None else [])
        try:
            await self._handle(scope, receive, send, rule, table)
        finally:
            access_log.info("%s %s %s %.1fms", method, rule.path if rule else "(no route)",
                            status_seen[0] if status_seen else "-", (time.perf_counter() - started) * 1e3)

    async def _handle(self, scope, receive, send, rule: RouteRule | None, table: RouteTable | None):
        method = scope["method"]
        access = rule.access if rule else None
        runtime = getattr(self.state, "runtime", None)
        if access is None or not access.public:
            if runtime is None or table is None:
                return await send_json(send, 503, {"error": "the service is starting"})
            roles = AUTHENTICATED if access is None else access.roles
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            try:
                principal, via = _authenticate(runtime, headers, roles)
            except AuthError as exc:
                extra = [(b"www-authenticate", b'Bearer realm="twincare"')] if exc.status == 401 else []
                return await send_json(send, exc.status, {"error": exc.message}, extra)
            scope.setdefault("state", {}).update(principal=principal, signed_in_via=via)
        document = getattr(self.state, "openapi", None)
        if scope["path"] == "/docs.json" and method in ("GET", "HEAD") and document is not None:
            return await send_json(send, 200, document())
        if rule is not None and rule.query is not None:
            names = {k for k, _ in _query_pairs(scope.get("query_string", b""))}
            unknown = sorted(names - rule.query)
            if unknown:
                allowed = ", ".join(sorted(rule.query)) or "none"
                return await send_json(send, 422, {"error": f"unknown query parameter(s): {', '.join(unknown)[:200]}; "
                                                            f"this route takes: {allowed}"})
        ctype = dict(scope["headers"]).get(b"content-type")
        if method == "POST" and ctype is not None and ctype.split(b";")[0].strip().lower() != b"application/json":
            return await send_json(send, 415, {"error": "send the body as application/json"})
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return await send_json(send, 413, {"error": f"a request body holds at most {MAX_BODY_BYTES} bytes"})
        receive, too_large = _limited(receive)

        async def inner_send(message):  # once the body overflowed, the app's answer is dropped
            if not too_large:
                if method == "POST" and scope["path"] in self.validated and message["type"] == "http.response.start" \
                        and message["status"] == 400:
                    message = {**message, "status": 422}
                await send(message)

        await self.app(scope, receive, inner_send)
        if too_large:
            await send_json(send, 413, {"error": f"a request body holds at most {MAX_BODY_BYTES} bytes"})

    def _shaped(self, send, path: str, status_seen: list[int], methods: Sequence[str]):
        """Wrap `send`: error bodies rewritten to the one shape, security and cache headers added,
        and a 405's `Allow` naming every method of the path (`methods`), not only one route's."""
        cacheable = path.startswith(CACHEABLE_PREFIXES)
        held: dict[str, Any] = {}

        def headers_of(start: dict, drop: set[bytes]) -> list[tuple[bytes, bytes]]:
            kept = [(k, v) for k, v in start.get("headers", []) if k.lower() not in drop]
            if not cacheable:
                kept = [(k, v) for k, v in kept if k.lower() != b"cache-control"] + [(b"cache-control", b"no-store")]
            have = {k.lower() for k, _ in kept}
            return kept + [(k, v) for k, v in SECURITY_HEADERS if k not in have]

        async def shaped(message):
            if message["type"] == "http.response.start":
                status = message["status"]
                status_seen.append(status)
                if status >= 400:
                    held["start"], held["body"] = message, b""
                    return
                return await send({**message, "headers": headers_of(message, set())})
            if message["type"] == "http.response.body" and "start" in held:
                held["body"] += message.get("body", b"")
                if message.get("more_body"):
                    return
                start = held.pop("start")
                ctype = dict((k.lower(), v) for k, v in start.get("headers", [])).get(b"content-type", b"").decode("latin-1")
                body = error_body(start["status"], held.pop("body"), ctype)
                status = 422 if start["status"] == 400 and "detail" in body else start["status"]
                if status_seen:
                    status_seen[0] = status
                payload = json.dumps(body).encode()
                headers = headers_of(start, {b"content-type", b"content-length"})
                if status == 405 and methods:
                    headers = [(k, v) for k, v in headers if k.lower() != b"allow"]
                    headers.append((b"allow", ", ".join(methods).encode()))
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(payload)).encode()), *headers]})
                return await send({"type": "http.response.body", "body": payload})
            return await send(message)

        return shaped


def _query_pairs(raw: bytes) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(raw.decode("latin-1"), keep_blank_values=True)


def _limited(receive):
    """`receive` that stops reading a body past MAX_BODY_BYTES; the list it returns turns true then."""
    seen = [0]
    over: list[bool] = []

    async def limited():
        if over:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            seen[0] += len(message.get("body", b""))
            if seen[0] > MAX_BODY_BYTES:
                over.append(True)
                return {"type": "http.disconnect"}
        return message

    return limited, over
