"""Authorization is declared on each route and closed by default: the route table read from the
app answers every route x (no key, wrong key, each role) exactly as declared, and a route that
declares no roles stops start-up."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI

from serving.edge import BUILTIN_ROUTES, RouteTable, UndeclaredRoute, allow, public
from tests.serving.test_api import H, V, api, serving_home  # noqa: F401  (fixtures: trained workdir, client)

ROLES = ("timebank", "care_manager", "admin")
# a concrete value for each path parameter, and a body for each POST and PUT route
PATH_VALUES = {"resident_id": "R000001", "task_id": "T-none", "name": "app.js", "model": "fall_risk",
               "alert_id": "Anone", "away_id": "1"}
BODIES = {
    "/assess": {"resident_ids": ["R000001"], "act": False},
    "/forecast_demand": {"series_ids": ["G01:meals"], "horizon": 2},
    "/timebank/tasks/{task_id}/claim": {},
    "/timebank/tasks/{task_id}/complete": {},
    "/timebank/tasks/{task_id}/cancel": {"reason": "x"},
    "/session": {},
    "/session/end": {},
    "/events": {"events": []},
    "/alerts/{alert_id}/acknowledge": {},
    "/alerts/{alert_id}/rate": {"rating": "real"},
    "/residents/{resident_id}/away": {"start": "2026-01-01T09:00:00", "end": "2026-01-02T09:00:00"},
    "/residents/{resident_id}/quiet_hours": {"start": "22:00", "end": "07:00"},
}


def _concrete(path: str) -> str:
    path = path.replace("/*", "/x")
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)


def _cases():
    from serving.api.app import app as http_app
    from serving.service import TwinCare

    table = RouteTable.build(http_app, TwinCare.apis)
    return [(sorted(r.methods)[0], r.path, r.access.roles) for r in table.declared()]


CASES = _cases()


@pytest.mark.parametrize(("method", "path", "roles"), CASES, ids=[f"{m} {p}" for m, p, _ in CASES])
def test_every_declared_route_answers_each_key_as_declared(api, method, path, roles):  # noqa: F811
    client, keys, home = api
    url = _concrete(path)
    body = BODIES.get(path)
    assert method in ("GET", "DELETE") or body is not None, f"give {path} an example body in BODIES"

    def call(headers):
        client.cookies.clear()  # a sign-in answer sets a session cookie; each call shows only its key
        headers = {**headers, "Idempotency-Key": f"route-table-{method}-{path}"}
        return client.request(method, url, json=body, headers=headers)

    for headers in ({}, {"X-API-Key": "tc_not-a-key"}):
        r = call(headers)
        if roles is None:
            assert r.status_code not in (401, 403), (path, r.status_code)
        else:
            assert r.status_code == 401, (path, r.status_code, r.text)
    key_names = {"timebank": "demo-timebank", "care_manager": "demo-care-manager", "admin": "demo-admin"}
    for role in ROLES:
        # a time-bank write acts for a volunteer: the platform's (or admin's) key sends their token
        acting = V(home, "V1", key_names[role]) if path.startswith("/timebank/tasks/{") else {}
        r = call(H(keys, role, **acting))
        if roles is None or role in roles or role == "admin":
            assert r.status_code not in (401, 403), (path, role, r.status_code, r.text)
        else:
            assert r.status_code == 403 and role in r.json()["error"], (path, role, r.status_code)


def test_every_route_of_the_served_app_is_declared():
    """Walk the whole BentoML app: each route is one of ours (declared) or a declared built-in."""
    from serving.api.app import app as http_app
    from serving.service import TwinCare

    table = RouteTable.build(http_app, TwinCare.apis)
    outer = TwinCare.to_asgi(is_main=True)
    seen = 0
    for route in outer.routes:
        path = getattr(route, "path", None)
        if type(route).__name__ == "PassiveMount":
            assert route.app is http_app  # our routes, all declared (RouteTable.build checked)
            continue
        assert path is not None, route
        probe = _concrete(path + ("/*" if type(route).__name__ == "Mount" else ""))
        assert table.match("GET" if path not in ("/assess", "/forecast_demand") else "POST", probe) is not None, path
        seen += 1
    assert seen >= len(BUILTIN_ROUTES)


def test_a_route_without_declared_roles_stops_start_up():
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/ok")
    @allow("care_manager")
    def ok():
        return {}

    @app.get("/health")
    @public
    def health():
        return {}

    assert RouteTable.build(app).match("GET", "/ok").roles == ("care_manager",)

    @app.get("/forgotten")
    def forgotten():
        return {}

    with pytest.raises(UndeclaredRoute, match="GET /forgotten"):
        RouteTable.build(app)


def test_roles_must_be_known():
    with pytest.raises(ValueError, match="roles"):
        allow("volunteer")
    with pytest.raises(ValueError, match="roles"):
        allow()
