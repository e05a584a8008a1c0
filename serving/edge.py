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
import re
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
    path: str  # the declared path, for messages and tests


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
            rules.append(RouteRule(methods, route.path_regex, access, path))
        for name, api in dict(apis).items():
            access = access_of(getattr(api, "func", None))
            route = getattr(api, "route", f"/{name}")
            if access is None:
                missing.append(f"POST {route} (BentoML API {name})")
                continue
            rules.append(RouteRule(frozenset({"POST"}), re.compile(f"^{re.escape(route)}$"), access, route))
        if missing:
            raise UndeclaredRoute(
                "route(s) declare no roles (add @allow(...) or @public where they are defined): "
                + "; ".join(missing)
            )
        for path, access in builtins.items():
            prefix = path.endswith("/*")
            pattern = re.compile(f"^{re.escape(path[:-1])}.*$" if prefix else f"^{re.escape(path)}$")
            rules.append(RouteRule(frozenset({"GET", "HEAD"}), pattern, access, path))
        return cls(tuple(rules))

    def match(self, method: str, path: str) -> Access | None:
        """The access of the route a request reaches; None when it reaches no declared route."""
        for rule in self.rules:
            if (not rule.methods or method in rule.methods) and rule.pattern.match(path):
                return rule.access
        return None

    def declared(self) -> Iterable[RouteRule]:
        return iter(self.rules)


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


class EdgeMiddleware:
    """ASGI middleware: the API-key check a request's route declares, before anything else runs.

    `state` is the app state the service fills at start-up (`route_table`, `runtime`). Puts the
    caller's `Principal` in `scope["state"]["principal"]`. For the BentoML APIs it turns BentoML's
    400 for a body that fails validation into 422, like the other routes.
    """

    def __init__(self, app, state: Any, validated_apis: Sequence[str] = ()):
        self.app = app
        self.state = state
        self.validated = frozenset(validated_apis)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        table: RouteTable | None = getattr(self.state, "route_table", None)
        runtime = getattr(self.state, "runtime", None)
        access = table.match(method, path) if table is not None else None
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
        if method == "POST" and path in self.validated:

            async def send_422(message):
                if message["type"] == "http.response.start" and message["status"] == 400:
                    message = {**message, "status": 422}
                await send(message)

            return await self.app(scope, receive, send_422)
        return await self.app(scope, receive, send)
