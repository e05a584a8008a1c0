"""The service's runtime (models, features, stores, keys) and its HTTP routes.

`Runtime` is built once per process from a `ServingConfig`; `build_runtime` refuses to build
(ChampionError / StartupError) when a champion model or the online store cannot be served.
`app` is the FastAPI app BentoML mounts at `/`: care-manager routes, time-bank routes and the
care-manager web page. `EdgeMiddleware` authenticates every request before any route runs.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, FastAPI, Header, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader

from features.online import OnlineStore, OnlineStoreError
from serving import schemas
from serving.actions import DEFAULT_POLICY, Scarcity, act_on_assessments, grid_scarcity
from serving.actions import ModelAssessment as ActionInput
from serving.auth import AuthError, KeyRing, Principal, authorize, key_from_headers
from serving.config import DEMAND_MODEL, RISK_MODELS, ServingConfig
from serving.scoring import Champion, ChunkScores, load_champions, score_chunk, score_matrix
from serving.store import StoreError, Task, TimeBankStore, audit_table
from serving.webhook import WebhookConfig, WebhookDeliverer
from twin.store import HistoryStore

log = logging.getLogger("twincare.serving")

WEB_DIR = Path(__file__).parent / "web"
CARE = ("care_manager",)
TIMEBANK = ("timebank",)
ANY_ROLE = ("timebank", "care_manager", "admin")


class StartupError(RuntimeError):
    """Something the service needs (besides a model) is missing; the message says what."""


# ---------------------------------------------------------------------------------------------
# Audit trail: reads of resident data are recorded off the request path
# ---------------------------------------------------------------------------------------------


class AuditTrail:
    """Queue of audit rows written by one background thread, so a read never waits on a commit.

    Rows waiting together are written in one transaction (one disk sync, not one per read).
    Writes to the store audit themselves inside their own transaction; this is for reads.
    """

    def __init__(self, store: TimeBankStore):
        self._store = store
        self._queue: queue.Queue[tuple | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="audit-trail", daemon=True)
        self._thread.start()

    def record(self, principal: Principal | None, action: str, resident_id: str | None = None, **detail: Any) -> None:
        self._queue.put((datetime.now(UTC).replace(tzinfo=None), principal, action, resident_id, detail))

    def _write(self, items: list[tuple]) -> None:
        rows = [
            {
                "at": at,
                "actor": str(getattr(p, "name", "system")),
                "role": str(getattr(p, "role", "system")),
                "action": action,
                "resident_id": resident_id,
                "detail": detail,
            }
            for at, p, action, resident_id, detail in items
        ]
        try:
            with self._store.engine.begin() as conn:
                conn.execute(audit_table.insert(), rows)
        except Exception:  # an audit failure must not take the service down
            log.exception("could not record %d audit rows", len(rows))

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while len(batch) < 500:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [b for b in batch if b is not None]
            stop = len(rows) < len(batch)  # close() queued None
            if rows:
                self._write(rows)
            for _ in batch:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every queued row is written."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)


# ---------------------------------------------------------------------------------------------
# Online features, held in memory and reloaded when the store file changes
# ---------------------------------------------------------------------------------------------


class OnlineFeatures:
    """Every resident's latest vector from the online store, kept in memory for fast lookups.

    The store is rewritten by `twincare materialise`; a lookup notices a change of the store's
    files (modification time and size) and reloads, so a new night's vectors are served at once.
    """

    def __init__(self, online: OnlineStore):
        self.online = online
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._load()

    def _file_stamp(self) -> tuple:
        stamp = []
        for suffix in ("", "-wal"):
            p = Path(str(self.online.path) + suffix)
            try:
                st = p.stat()
                stamp.append((st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                stamp.append(None)
        return tuple(stamp)

    def _load(self) -> None:
        stamp = self._file_stamp()
        frame = self.online.get(self.online.resident_ids())
        pos = [j for j, c in enumerate(frame.columns) if c not in ("resident_id", "as_of_date")]
        self.columns = tuple(frame.columns[j] for j in pos)
        self.values = frame.iloc[:, pos].to_numpy(dtype=np.float64, na_value=np.nan)
        self.ids = frame["resident_id"].tolist()
        self.as_of = [None if pd.isna(d) else d.date() for d in pd.DatetimeIndex(frame["as_of_date"])]
        self.row_of = {r: i for i, r in enumerate(self.ids)}
        self._stamp = stamp

    @property
    def stamp(self) -> tuple | None:
        """Identifies the loaded state of the store (changes when the store is rewritten)."""
        return self._stamp

    def refresh(self) -> None:
        if self._file_stamp() != self._stamp:
            with self._lock:
                if self._file_stamp() != self._stamp:
                    self._load()

    def lookup(self, resident_ids: Sequence[str]) -> tuple[list[str], list[date | None], np.ndarray]:
        """(ids, as-of dates, feature matrix) of the residents asked; KeyError names unknown ids."""
        self.refresh()
        row_of = self.row_of
        unknown = [r for r in resident_ids if r not in row_of]
        if unknown:
            shown = ", ".join(unknown[:20]) + (" ..." if len(unknown) > 20 else "")
            raise KeyError(f"unknown resident id(s) in the online store: {shown}")
        rows = [row_of[r] for r in resident_ids]
        return list(resident_ids), [self.as_of[i] for i in rows], self.values[rows]


# ---------------------------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------------------------


@dataclass
class Runtime:
    """Everything a request needs, loaded once at start-up."""

    config: ServingConfig
    champions: dict[str, Champion]
    online: OnlineStore
    features: OnlineFeatures
    store: TimeBankStore
    keyring: KeyRing
    history: HistoryStore
    grid_of: dict[str, str]
    scarcity: dict[str, Scarcity]
    audit: AuditTrail
    webhook: WebhookDeliverer | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    _live_cache: dict[tuple, pd.DataFrame] = field(default_factory=dict)
    _scarcity_stamp: tuple | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def model_versions(self) -> dict[str, str]:
        return {name: c.version for name, c in self.champions.items()}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Models loaded and the task store reachable."""
        store_ok = self.store.ping()
        models_ok = all(m in self.champions for m in self.config.models)
        return store_ok and models_ok, {
            "models": self.model_versions,
            "store": "ok" if store_ok else "unreachable",
            "online_as_of": None if self.online.as_of is None else str(self.online.as_of.date()),
        }

    def close(self) -> None:
        if self.webhook is not None:
            self.webhook.stop()
        self.audit.close()
        self.store.close()

    # -- scoring -------------------------------------------------------------------------------

    def score(self, features: pd.DataFrame, models: Sequence[str], top_k: int) -> ChunkScores:
        return score_chunk(self.champions, features, models, top_k)

    def score_residents(self, resident_ids: Sequence[str], models: Sequence[str], top_k: int) -> ChunkScores:
        """Score residents by id from the online features (KeyError names unknown ids)."""
        ids, as_of, values = self.features.lookup(resident_ids)
        return score_matrix(
            self.champions, resident_ids=ids, as_of=as_of, columns=self.features.columns,
            values=values, models=models, top_k=top_k,
        )

    def act(self, chunk: ChunkScores, principal: Principal | None) -> dict[str, list[dict]]:
        """Open tasks for high bands; returns resident id -> actions taken."""
        assessments = []
        for m, s in chunk.by_model.items():
            for i, rid in enumerate(chunk.resident_ids):
                grid = self.grid_of.get(rid)
                if grid is None or s.band[i] not in DEFAULT_POLICY.open_bands:
                    continue
                assessments.append(
                    ActionInput(
                        resident_id=rid,
                        grid_id=grid,
                        model=m,
                        probability=float(s.probability[i]),
                        band=str(s.band[i]),
                        reasons=chunk.reasons(m, i),
                        model_version=s.version,
                        as_of=chunk.as_of[i],
                    )
                )
        out: dict[str, list[dict]] = {}
        if not assessments:
            return out
        for o in act_on_assessments(self.store, assessments, scarcity_by_grid=self.grid_scarcity(), actor=principal):
            if o.task is None or o.action == "none":
                continue
            out.setdefault(o.resident_id, []).append(
                {
                    "task_id": o.task.task_id,
                    "kind": o.task.kind,
                    "reason": o.task.reason,
                    "due_date": o.task.due_date,
                    "credits": o.task.credits,
                    "status": o.action,
                }
            )
        return out

    def grid_scarcity(self) -> dict[str, Scarcity]:
        """Scarcity per grid, recomputed when the online store (and its demand counts) changes."""
        stamp = self.features.stamp
        if self._scarcity_stamp != stamp:
            with self._lock:
                if self._scarcity_stamp != stamp:
                    self.scarcity = _scarcity(self.champions, self.online, self.history)
                    self._scarcity_stamp = stamp
        return self.scarcity

    def live_ranking(self, model: str) -> pd.DataFrame:
        """Every resident in the online store scored now (cached per online-store state and version)."""
        self.features.refresh()
        key = (model, self.champions[model].version, self.features.stamp)
        with self._lock:
            cached = self._live_cache.get(key)
        if cached is not None:
            return cached
        ids = self.features.ids
        rows = []
        for k in range(0, len(ids), self.config.batch_chunk):
            chunk = self.score_residents(ids[k : k + self.config.batch_chunk], [model], self.config.top_reasons)
            s = chunk.by_model[model]
            rows.append(
                pd.DataFrame(
                    {
                        "resident_id": chunk.resident_ids,
                        "as_of_date": chunk.as_of,
                        "probability": s.probability,
                        "band": s.band,
                        "reasons": [chunk.reasons(model, i) for i in range(len(chunk))],
                    }
                )
            )
        ranked = (
            pd.concat(rows, ignore_index=True).sort_values("probability", ascending=False, kind="stable")
            if rows
            else pd.DataFrame(columns=["resident_id", "as_of_date", "probability", "band", "reasons"])
        )
        with self._lock:
            self._live_cache = {key: ranked, **{k: v for k, v in self._live_cache.items() if k[2] == key[2]}}
        return ranked


def _grids(history: HistoryStore) -> dict[str, str]:
    if not history.has("residents"):
        return {}
    df = history.read("residents", ["resident_id", "grid_id"])
    return dict(zip(df["resident_id"].astype(str), df["grid_id"].astype(str), strict=True))


def _scarcity(champions: dict[str, Champion], online: OnlineStore, history: HistoryStore) -> dict[str, Scarcity]:
    """Scarcity per grid from the demand forecast of the coming week and volunteer supply."""
    from models.demand import forecast

    demand = champions.get(DEMAND_MODEL)
    if demand is None or not history.has("volunteers"):
        return {}
    counts = online.counts()
    if counts.empty:
        return {}
    try:
        fc = forecast(demand.loaded, counts, horizon=7)
    except ValueError as exc:
        log.warning("no demand forecast for scarcity (credits use scarcity 1): %s", exc)
        return {}
    volunteers = history.read("volunteers", ["grid_id", "weekly_hours"])
    return grid_scarcity(fc, volunteers, horizon_days=7)


def build_runtime(config: ServingConfig, *, need_keys: bool = True, deliver_webhooks: bool = False) -> Runtime:
    """Load champions, open the stores and the key ring; refuse with a clear message if any fails.

    The nightly batch passes `need_keys=False`: it answers no requests. The serving process passes
    `deliver_webhooks=True` to send task events (from the outbox every writer fills) to
    TWINCARE_WEBHOOK_URL, when one is configured.
    """
    champions = load_champions(config.models, config.tracking_uri)
    online = OnlineStore(config.online_db)
    try:
        online.check()
    except OnlineStoreError as exc:
        raise StartupError(str(exc)) from None
    try:
        keyring = KeyRing.from_file(config.api_keys_path) if need_keys else KeyRing([])
    except (FileNotFoundError, ValueError) as exc:
        raise StartupError(str(exc)) from None
    try:
        webhook_config = WebhookConfig(url=config.webhook_url, secret=config.webhook_secret) if config.webhook_url else None
    except ValueError as exc:
        raise StartupError(f"TWINCARE_WEBHOOK_URL: {exc}") from None
    store = TimeBankStore(config.store_url)
    history = HistoryStore(config.history_dir)
    webhook = WebhookDeliverer(store, webhook_config) if webhook_config and deliver_webhooks else None
    features = OnlineFeatures(online)
    return Runtime(
        config=config,
        champions=champions,
        online=online,
        features=features,
        store=store,
        keyring=keyring,
        history=history,
        grid_of=_grids(history),
        scarcity=_scarcity(champions, online, history),
        audit=AuditTrail(store),
        webhook=webhook,
        _scarcity_stamp=features.stamp,
    )


def preflight(config: ServingConfig) -> None:
    """Check what start-up needs (champions, online store, key file) without serving."""
    build_runtime(config).close()


_current: Runtime | None = None


def install(runtime: Runtime | None) -> None:
    """Make `runtime` the one the routes and the middleware use (one per process)."""
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise StartupError("the service runtime is not installed")
    return _current


# ---------------------------------------------------------------------------------------------
# Edge: authentication for every route, clear 4xx for bad bodies
# ---------------------------------------------------------------------------------------------

# (method or "*", path pattern, roles allowed; None = public). First match wins.
ROUTE_ROLES: tuple[tuple[str, re.Pattern, tuple[str, ...] | None], ...] = tuple(
    (m, re.compile(p), r)
    for m, p, r in (
        ("GET", r"^/$", None),
        ("GET", r"^/web/[A-Za-z0-9_.-]+$", None),
        ("GET", r"^/(healthz|livez|readyz)$", None),
        ("GET", r"^/(docs|docs\.json)$", None),
        ("GET", r"^/static_content/.*$", None),
        ("GET", r"^/metrics$", ("admin",)),
        ("POST", r"^/assess$", CARE),
        ("POST", r"^/forecast_demand$", ("timebank", "care_manager")),
        ("GET", r"^/residents(/.*)?$", CARE),
        ("GET", r"^/tasks$", CARE),
        ("GET", r"^/timebank/tasks$", TIMEBANK),
        ("POST", r"^/timebank/tasks/[^/]+/(claim|complete)$", TIMEBANK),
        ("POST", r"^/timebank/tasks/[^/]+/cancel$", ("timebank", "care_manager")),
        ("*", r".*", ANY_ROLE),  # anything else: a valid key first, then the router's answer
    )
)
VALIDATED_APIS = ("/assess", "/forecast_demand")


def roles_for(method: str, path: str) -> tuple[str, ...] | None:
    for m, pattern, roles in ROUTE_ROLES:
        if (m == "*" or m == method or (m == "GET" and method == "HEAD")) and pattern.match(path):
            return roles
    return ANY_ROLE


async def _send_json(send, status: int, body: dict, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    import json

    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class EdgeMiddleware:
    """ASGI middleware: API-key check by route before anything else runs.

    Puts the caller's `Principal` in `scope["state"]["principal"]`. For the BentoML APIs it turns
    BentoML's 400 for a body that fails validation into 422, like the other routes.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        roles = roles_for(method, path)
        if roles is not None:
            runtime = _current
            if runtime is None:
                return await _send_json(send, 503, {"error": "the service is starting"})
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            try:
                principal = authorize(runtime.keyring, key_from_headers(headers), roles)
            except AuthError as exc:
                extra = [(b"www-authenticate", b'Bearer realm="twincare"')] if exc.status == 401 else []
                return await _send_json(send, exc.status, {"error": exc.message}, extra)
            scope.setdefault("state", {})["principal"] = principal
        if method == "POST" and path in VALIDATED_APIS:

            async def send_422(message):
                if message["type"] == "http.response.start" and message["status"] == 400:
                    message = {**message, "status": 422}
                await send(message)

            return await self.app(scope, receive, send_422)
        return await self.app(scope, receive, send)


def principal_of(request: Request) -> Principal | None:
    return getattr(request.state, "principal", None)


# ---------------------------------------------------------------------------------------------
# FastAPI app: care-manager and time-bank routes, web page
# ---------------------------------------------------------------------------------------------

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="API key (or `Authorization: Bearer <key>`); roles: timebank, care_manager, admin.",
)
_SECURED = [Security(api_key_header)]

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
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]

_ERRORS = {
    401: {"model": schemas.ErrorBody, "description": "No or unknown API key."},
    403: {"model": schemas.ErrorBody, "description": "The key's role may not call this route."},
}


def _task(t: Task) -> schemas.Task:
    return schemas.Task(**{k: getattr(t, k) for k in schemas.Task.model_fields})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


care = APIRouter(tags=["care managers"], dependencies=_SECURED, responses=_ERRORS)
timebank = APIRouter(prefix="/timebank", tags=["time bank"], dependencies=_SECURED, responses=_ERRORS)


@care.get("/residents/at-risk", response_model=schemas.AtRiskList, summary="Residents ranked by risk")
def at_risk(
    request: Request,
    model: Annotated[schemas.RiskModel, Query(description="Which risk.")] = "fall_risk",
    band: Annotated[schemas.Band | None, Query(description="Only this band.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
):
    """The latest nightly scores, highest probability first; scored live when no batch has run."""
    rt = current()
    stored = rt.store.latest_scores(model, band=band, limit=limit)
    if stored:
        items = [
            schemas.AtRiskEntry(
                resident_id=s.resident_id,
                model=s.model,
                probability=s.probability,
                band=s.band,
                version=s.model_version,
                as_of_date=s.as_of,
                reasons=s.reasons,
            )
            for s in stored
        ]
        source = "stored"
    else:
        ranked = rt.live_ranking(model)
        if band is not None:
            ranked = ranked[ranked["band"] == band]
        ranked = ranked.head(limit)
        version = rt.champions[model].version
        items = [
            schemas.AtRiskEntry(
                resident_id=r.resident_id,
                model=model,
                probability=float(r.probability),
                band=r.band,
                version=version,
                as_of_date=None if pd.isna(r.as_of_date) else pd.Timestamp(r.as_of_date).date(),
                reasons=r.reasons,
            )
            for r in ranked.itertuples()
        ]
        source = "live"
    rt.audit.record(principal_of(request), "residents.at_risk", None, model=model, rows=len(items))
    return schemas.AtRiskList(source=source, items=items)


def assessments_of(chunk: ChunkScores, i: int) -> list[schemas.ModelAssessment]:
    """Row i of a scored chunk as one assessment per model, with its worded reasons."""
    return [
        schemas.ModelAssessment(
            model=name,
            version=s.version,
            probability=float(s.probability[i]),
            band=str(s.band[i]),
            reasons=chunk.reasons(name, i),
        )
        for name, s in chunk.by_model.items()
    ]


@care.get(
    "/residents/{resident_id}",
    response_model=schemas.ResidentPage,
    summary="One resident: current risks with reasons, score history, tasks",
    responses={404: {"model": schemas.ErrorBody, "description": "Unknown resident."}},
)
def resident_page(request: Request, resident_id: ResidentIdPath):
    rt = current()
    try:
        chunk = rt.score_residents([resident_id], RISK_MODELS, rt.config.top_reasons)
    except KeyError:
        return _error(404, f"unknown resident id: {resident_id}")
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
        tasks=[_task(t) for t in tasks],
    )


@care.get("/tasks", response_model=schemas.TaskPage, summary="Tasks, for care managers")
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
    rt = current()
    page = rt.store.list_tasks(status=status, resident_id=resident_id, cursor=cursor, limit=limit)
    rt.audit.record(principal_of(request), "tasks.read", resident_id, rows=len(page.tasks))
    return schemas.TaskPage(items=[_task(t) for t in page.tasks], next_cursor=page.next_cursor)


@timebank.get("/tasks", response_model=schemas.TaskPage, summary="Open tasks feed (cursor)")
def open_tasks(
    grid_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
):
    """Open tasks in the order they were opened; keep `next_cursor` to see each new task once."""
    page = current().store.list_open_tasks(grid_id=grid_id, cursor=cursor, limit=limit)
    return schemas.TaskPage(items=[_task(t) for t in page.tasks], next_cursor=page.next_cursor)


@timebank.post(
    "/tasks/{task_id}/claim",
    response_model=schemas.TaskResult,
    summary="Claim an open task",
    responses={404: {"model": schemas.ErrorBody}, 409: {"model": schemas.ErrorBody}},
)
def claim(request: Request, task_id: TaskIdPath, body: schemas.ClaimBody, idempotency_key: IdempotencyKey):
    task = current().store.claim_task(
        task_id, body.volunteer_id, idempotency_key=idempotency_key, actor=principal_of(request)
    )
    return schemas.TaskResult(task=_task(task))


@timebank.post(
    "/tasks/{task_id}/complete",
    response_model=schemas.TaskResult,
    summary="Complete a claimed task: credits move, the visit is written back",
    responses={403: {"model": schemas.ErrorBody}, 404: {"model": schemas.ErrorBody}, 409: {"model": schemas.ErrorBody}},
)
def complete(request: Request, task_id: TaskIdPath, body: schemas.CompleteBody, idempotency_key: IdempotencyKey):
    rt = current()
    task = rt.store.complete_task(
        task_id, body.volunteer_id, idempotency_key=idempotency_key, actor=principal_of(request)
    )
    try:
        rt.store.flush_visits(rt.history)
    except Exception:  # the visit stays pending and the next flush (or the batch) writes it
        log.exception("visit write-back for task %s deferred", task_id)
    return schemas.TaskResult(task=_task(task))


@timebank.post(
    "/tasks/{task_id}/cancel",
    response_model=schemas.TaskResult,
    summary="Cancel an open or claimed task",
    responses={404: {"model": schemas.ErrorBody}, 409: {"model": schemas.ErrorBody}},
)
def cancel(request: Request, task_id: TaskIdPath, idempotency_key: IdempotencyKey, body: schemas.CancelBody | None = None):
    task = current().store.cancel_task(
        task_id,
        idempotency_key=idempotency_key,
        note=(body.reason if body else "cancelled"),
        actor=principal_of(request),
    )
    return schemas.TaskResult(task=_task(task))


def _web_file(name: str) -> FileResponse:
    media = {"js": "text/javascript", "css": "text/css", "html": "text/html"}[name.rsplit(".", 1)[-1]]
    return FileResponse(WEB_DIR / name, media_type=media, headers={"cache-control": "no-cache"})


def create_app() -> FastAPI:
    """The mounted app (declarations only; state comes from the installed Runtime)."""
    app = FastAPI(
        title="TwinCare care-manager and time-bank routes",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(StoreError)
    async def _store_error(_: Request, exc: StoreError):
        return _error(getattr(exc, "status", 409), str(exc))

    @app.exception_handler(OnlineStoreError)
    async def _online_error(_: Request, exc: OnlineStoreError):
        return _error(503, str(exc))

    app.include_router(care)
    app.include_router(timebank)

    @app.get("/", include_in_schema=False)
    def index():
        return _web_file("index.html")

    @app.get("/web/{name}", include_in_schema=False)
    def web(name: Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]+\.(js|css)$")]):
        if not (WEB_DIR / name).is_file():
            return _error(404, f"no such file: {name}")
        return _web_file(name)

    @app.get("/docs", include_in_schema=False)
    def docs():
        return FileResponse(WEB_DIR / "docs.html", media_type="text/html")

    return app


app = create_app()

