"""The TwinCare BentoML service: `bentoml serve serving.service:TwinCare`.

POST /assess and POST /forecast_demand are BentoML APIs; the care-manager and time-bank routes
and the web page are the FastAPI app mounted at `/` (serving.api). The service builds its runtime
once (serving.runtime) and refuses to start when a @champion model is missing or was trained on a
different feature schema, or when any route declares no roles (serving.edge).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections import Counter
from functools import cache

import anyio
import bentoml
import pandas as pd
from sqlalchemy.exc import DBAPIError
from starlette.responses import JSONResponse

from models.registry import ChampionError
from serving import schemas
from serving.api.app import app as http_app
from serving.api.common import assessments_of
from serving.config import ServingConfig
from serving.edge import (
    CARE,
    TIMEBANK,
    EdgeMiddleware,
    RouteTable,
    UndeclaredRoute,
    allow,
    send_json,
)
from serving.openapi import finish
from serving.runtime import StartupError, build_runtime
from serving.scoring import BadFeatures, ChunkScores, rows_to_features

log = logging.getLogger("twincare.serving")

INLINE_RESIDENTS = 16
"""/assess scores up to this many residents on the event loop; more go to a worker thread."""

MIN_FORECAST_DAYS = 28
"""Days of supplied counts a series needs: the forecaster's longest recent window."""


@cache
def _metrics():
    """Prometheus metrics of our own (created once per process, on first use)."""
    return {
        "assessed": bentoml.metrics.Counter(
            name="twincare_residents_assessed_total",
            documentation="Residents scored by /assess, per model.",
            labelnames=["model"],
        ),
        "bands": bentoml.metrics.Counter(
            name="twincare_assessments_by_band_total",
            documentation="Assessments per model and band.",
            labelnames=["model", "band"],
        ),
        "tasks": bentoml.metrics.Counter(
            name="twincare_tasks_opened_total",
            documentation="Tasks opened by /assess.",
            labelnames=["reason"],
        ),
        "model_version": bentoml.metrics.Gauge(
            name="twincare_model_version",
            documentation="Served model version (value = version number).",
            labelnames=["model"],
        ),
    }


def _set_version_gauges(versions: dict[str, str]) -> None:
    m = _metrics()
    for name, version in versions.items():
        with contextlib.suppress(ValueError):  # a non-numeric version has no gauge value
            m["model_version"].labels(model=name).set(float(version))


class ReadinessMiddleware:
    """`GET /readyz` answers with what readiness found (model versions served, store, online
    features): 200 when ready, 503 when not. While the runtime is being built BentoML answers."""

    def __init__(self, app, state):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        runtime = getattr(self.state, "runtime", None)
        if scope["type"] != "http" or scope["path"] != "/readyz" or scope["method"] not in ("GET", "HEAD") \
                or runtime is None:
            return await self.app(scope, receive, send)
        import anyio

        ok, detail = await anyio.to_thread.run_sync(runtime.readiness)
        await send_json(send, 200 if ok else 503, {"ready": ok, **detail})


BODY_APIS = ("/assess", "/forecast_demand")
"""The BentoML APIs: a JSON body is required, and a body failing validation is a 422."""


def _error(ctx: bentoml.Context, status: int, message: str) -> JSONResponse:
    ctx.response.status_code = status
    return JSONResponse({"error": message}, status_code=status)


@bentoml.service(
    name="TwinCare",
    workers=1,
    traffic={"timeout": 120},
    http={"cors": {"enabled": False}},
    logging={"access": {"enabled": False}},  # the edge logs route templates, never resident ids
)
@bentoml.asgi_app(http_app, path="/")
class TwinCare:
    """Fall-risk and isolation scores with reasons, demand forecasts, and the time bank's tasks."""

    def __init__(self) -> None:
        config = ServingConfig.from_env()
        try:
            table = RouteTable.build(http_app, TwinCare.apis)
            runtime = build_runtime(config, deliver_webhooks=True)
        except (ChampionError, StartupError, UndeclaredRoute) as exc:
            log.error("TwinCare cannot start: %s", exc)
            raise
        http_app.state.route_table = table
        http_app.state.runtime = runtime
        http_app.state.openapi = cache(lambda: finish(TwinCare.openapi_spec.asdict(), table, BODY_APIS))
        self.runtime = runtime
        if runtime.webhook is not None:
            runtime.webhook.start()
        if runtime.live is not None:
            runtime.live.start(config.alert_tick_seconds)
        _set_version_gauges(runtime.model_versions)
        runtime.on_swap.append(_set_version_gauges)
        runtime.watch_champions(config.model_poll_seconds)
        log.info("TwinCare serving models %s", runtime.model_versions)

    @bentoml.on_shutdown
    def close(self) -> None:
        http_app.state.runtime = None
        self.runtime.close()

    def __is_ready__(self) -> bool:
        ok, detail = self.runtime.readiness()
        if not ok:
            log.warning("not ready: %s", detail)
        return ok

    @bentoml.api(route="/assess")
    @allow(*CARE)
    async def assess(self, request: schemas.AssessRequest, /, ctx: bentoml.Context) -> schemas.AssessResponse:
        """Score residents (ids from the online store, or explicit feature rows) with reasons,
        and open proactive-visit tasks for high bands."""
        rt = self.runtime
        principal = ctx.request.state.principal if hasattr(ctx.request.state, "principal") else None
        n = len(request.resident_ids or request.rows or [])
        # A few residents score in about a millisecond, less than a hop to a worker thread and
        # back costs; larger batches go to a thread so they do not hold up other requests.
        if n <= INLINE_RESIDENTS:
            scored = self._score(request, ctx)
        else:
            scored = await anyio.to_thread.run_sync(self._score, request, ctx)
        if isinstance(scored, JSONResponse):
            return scored
        chunk = scored
        actions = {}
        if request.acts and rt.acts_on(chunk):  # store writes only when a band calls for a task
            try:
                actions = await anyio.to_thread.run_sync(rt.act, chunk, principal)
            except (DBAPIError, sqlite3.Error) as exc:
                log.error("no tasks opened, the store failed: %s", exc)
                return _error(ctx, 503, "the time-bank store is unavailable; retry later")
        m = _metrics()
        results = []
        for i, rid in enumerate(chunk.resident_ids):
            results.append(
                schemas.ResidentAssessment(
                    resident_id=rid,
                    as_of_date=chunk.as_of[i],
                    assessments=assessments_of(chunk, i),
                    actions=actions.get(rid, []),
                )
            )
            rt.audit.record(principal, "resident.assess", rid)
        for name, s in chunk.by_model.items():
            m["assessed"].labels(model=name).inc(len(s.probability))
            for band, count in Counter(s.band.tolist()).items():
                m["bands"].labels(model=name, band=band).inc(count)
        for acts in actions.values():
            for a in acts:
                if a["status"] == "opened":
                    m["tasks"].labels(reason=a["reason"]).inc()
        return schemas.AssessResponse(
            results=results,
            model_versions={name: s.version for name, s in chunk.by_model.items()},  # the versions that scored
        )

    def _score(self, request: schemas.AssessRequest, ctx: bentoml.Context) -> ChunkScores | JSONResponse:
        """The request's residents scored with reasons, or the error response that says why not."""
        rt = self.runtime
        n = len(request.resident_ids or request.rows or [])
        if n > rt.config.max_batch:
            return _error(ctx, 413, f"a batch holds at most {rt.config.max_batch} residents; got {n}")
        models = list(dict.fromkeys(request.models))
        missing = [m for m in models if m not in rt.risk_models]
        if missing:
            return _error(ctx, 422, f"model(s) not served here: {', '.join(missing)}")
        if request.resident_ids is not None:
            try:
                return rt.score_residents(list(dict.fromkeys(request.resident_ids)), models, request.top_reasons)
            except KeyError as exc:
                return _error(ctx, 404, str(exc.args[0]) if exc.args else "unknown resident ids")
        try:
            features = rows_to_features([r.model_dump() for r in request.rows or []])
        except BadFeatures as exc:
            return _error(ctx, 422, str(exc))
        return rt.score(features, models, request.top_reasons)

    @bentoml.api(route="/forecast_demand")
    @allow(*TIMEBANK, *CARE)
    def forecast_demand(
        self, request: schemas.ForecastRequest, /, ctx: bentoml.Context
    ) -> schemas.ForecastResponse:
        """Daily service requests per series, 1-14 days ahead, with prediction intervals."""
        rt = self.runtime
        champion = rt.forecaster()
        if champion is None:
            return _error(ctx, 503, "no demand forecaster is served")
        if request.counts is not None:
            counts = pd.DataFrame([c.model_dump() for c in request.counts])
            counts["date"] = pd.to_datetime(counts["date"]).astype("datetime64[ns]")
            counts["series_id"] = counts["series_id"].astype("str")
            days = counts.groupby("series_id")["date"].nunique()
            short = days[days < MIN_FORECAST_DAYS]
            if len(short):
                shown = ", ".join(f"{s} ({n} days)" for s, n in short.head(10).items())
                return _error(
                    ctx, 422,
                    f"cannot forecast these counts: each series needs at least {MIN_FORECAST_DAYS} "
                    f"days of history; too short: {shown}",
                )
        else:
            try:
                stored = rt.online.counts()
            except sqlite3.Error as exc:
                return _error(ctx, 503, f"the online store cannot be read: {exc}")
            if request.series_ids is not None:
                wanted = set(request.series_ids)
            else:
                grids = set(request.grid_ids or [])
                wanted = {s for s in stored["series_id"].unique() if s.rsplit(":", 1)[0] in grids}
            missing = sorted(set(request.series_ids or []) - set(stored["series_id"]))
            if request.grid_ids is not None:
                have = {s.rsplit(":", 1)[0] for s in stored["series_id"].unique()}
                missing = sorted(set(request.grid_ids) - have)
            if missing:
                shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
                return _error(ctx, 404, f"no stored demand history for: {shown}")
            counts = stored[stored["series_id"].isin(wanted)]
        try:
            fc = champion.spec.forecast(champion.loaded, counts, horizon=request.horizon, basis=request.basis)
        except ValueError as exc:
            return _error(ctx, 422, f"cannot forecast these counts: {exc}")
        return schemas.ForecastResponse(
            model=champion.name,
            version=champion.version,
            forecasts=[
                schemas.ForecastPoint(
                    series_id=r.series_id,
                    date=pd.Timestamp(r.date).date(),
                    horizon=int(r.horizon),
                    forecast=float(r.forecast),
                    lower=float(r.lower),
                    upper=float(r.upper),
                    method=r.method,
                )
                for r in fc.itertuples()
            ],
        )


TwinCare.add_asgi_middleware(EdgeMiddleware, state=http_app.state, validated_apis=BODY_APIS)
TwinCare.add_asgi_middleware(ReadinessMiddleware, state=http_app.state)
