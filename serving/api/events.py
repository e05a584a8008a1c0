"""Home gateways' live events (`POST /events`, device keys) and the care managers' alerts
(list, acknowledge, rate). The work is `serving.live`; here requests are only translated."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from serving import schemas
from serving.api.common import (
    ERRORS,
    SECURED,
    ResidentIdPath,
    error,
    invalid,
    principal_of,
    runtime_of,
)
from serving.auth import DEVICE
from serving.edge import CARE, allow
from serving.live import FormatMismatch

router = APIRouter(dependencies=SECURED, responses=ERRORS)

AlertIdPath = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9]{1,64}$", description="Alert id.")]
AwayIdPath = Annotated[int, PathParam(ge=1, le=2**31 - 1, description="Away span id.")]
CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
MAX_AWAY = timedelta(days=366)


class EventBatch(BaseModel):
    """One batch of a home's raw sensor events."""

    model_config = ConfigDict(extra="forbid")

    resident_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="Whose home; a device key is bound to one resident (give it or leave it out).")
    format: Literal["casas", "intervals"] = Field(
        "casas", description="Line format, as `twincare ingest events`: casas `date time sensor value`, "
                             "intervals `start end sensor value`.")
    events: list[Any] = Field(
        description="Events: {id, line} or the line's fields ({id, time, sensor, value}; intervals "
                    "{id, start, end, sensor, value}). Ids are the gateway's: a resent id changes nothing.")
    sent_at: datetime | None = Field(
        None, description="The gateway's clock when it sent the batch (the home's local time, no zone); "
                          "moves the home's clock on when no event came.")


class BatchAnswer(BaseModel):
    accepted: int = Field(description="New events stored.")
    duplicates: int = Field(description="Events already stored under their id (nothing changed).")
    late: int = Field(description="Events older than the newest the alert rules had read (stored, not monitored).")
    rejected: list[dict] = Field(description="Bad events: index in the batch, id, and why.")
    days_updated: list[str] = Field(
        description="Days whose sensor_days row was rebuilt with this batch (the others follow within "
                    "TWINCARE_LIVE_DAYS_SECONDS).")
    alerts: list[dict] = Field(description="Alerts these events raised.")


class AlertView(BaseModel):
    alert_id: str
    resident_id: str
    kind: str
    status: str = Field(description="open, escalated or acknowledged.")
    text: str = Field(description="The alert in words.")
    since: str = Field(description="Home clock: since when the sign was seen.")
    due_at: str = Field(description="Home clock: when the resident's usual limit passed.")
    raised_at: str = Field(description="Home clock: when the service raised it.")
    created_at: str
    urgent: bool
    task_id: str | None = Field(description="The urgent check visit it opened for volunteers.")
    acknowledged_at: str | None
    acknowledged_by: str | None
    escalated_at: str | None
    rating: str | None = Field(description="real or false, once rated.")
    rated_at: str | None
    rated_by: str | None
    cell: str | None = Field(None, description="no_movement: the place and time of day whose stillness limit "
                                               "it passed (e.g. \"living/day\"); rating it tunes that limit.")
    rating_reason: str | None = Field(None, description="Why a false alarm was false, when said: out.")


class AlertList(BaseModel):
    items: list[AlertView]


class RatingReason(StrEnum):
    """Why a false alarm was false (an enum, not a one-value literal: OpenAPI 3.0 has no const)."""

    out = "out"


class Rating(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Literal["real", "false"] = Field(description="real: something was wrong; false: a false alarm.")
    reason: RatingReason | None = Field(None, description="With false, why: out, the resident was out (the "
                                          "front door's sensor missed the opening): no wait is lengthened, and "
                                          "the home's door is counted as missing openings.")


class RatedAlert(BaseModel):
    alert: AlertView
    tuning: dict[str, float] = Field(description="The resident's threshold factor per alert kind after the rating.")
    cell_tuning: dict[str, float] = Field(description="no_movement's factor per rated place and time of day "
                                                      "(e.g. \"living/day\"), after the rating.")
    door_missed: int = Field(description="False alarms rated out: the front door's sensor missed the outing.")


class AwaySpanIn(BaseModel):
    """A time the resident is away (a stay with family, in hospital): no alerts from the home."""

    model_config = ConfigDict(extra="forbid")

    start: datetime = Field(description="From (the home's local clock, no zone).")
    end: datetime = Field(description="Until (the home's local clock, no zone); after start, at most a year later.")
    note: str | None = Field(None, max_length=200, description="Why, in a few words (kept with the span).")


class AwaySpanView(BaseModel):
    away_id: int
    resident_id: str
    start: str
    end: str
    note: str | None
    created_by: str


class QuietHoursIn(BaseModel):
    """Hours in which the home's non-urgent alerts (night-time toilet surges) are held until the
    end; urgent ones (a fall, not up, a night exit) are never held."""

    model_config = ConfigDict(extra="forbid")

    start: str = Field(pattern=CLOCK, description="HH:MM, the home's local clock.")
    end: str = Field(pattern=CLOCK, description="HH:MM; before start means the hours span midnight.")


class QuietHoursView(BaseModel):
    start: str
    end: str
    default: bool = Field(description="True while the service's default hours apply (none set for this home).")


class HomeAlertSettings(BaseModel):
    resident_id: str
    away: list[AwaySpanView] = Field(description="Away spans not cancelled, in the order they were set.")
    quiet_hours: QuietHoursView
    tuning: dict[str, float] = Field(description="The home's threshold factor per alert kind, from ratings.")
    cell_tuning: dict[str, float] = Field(description="no_movement's factor per rated place and time of day, "
                                                      "from ratings (a place not named: 1).")
    door_missed: int = Field(description="False alarms rated out: outings the front door's sensor missed "
                                         "(check its battery and placement).")


def _minutes(clock: str) -> int:
    h, m = clock.split(":")
    return int(h) * 60 + int(m)


def _home_of(request: Request, resident_id: str):
    """(runtime, None), or (None, the error response) when live alerts are off or the resident unknown."""
    rt = runtime_of(request)
    if rt.live is None:
        return None, error(404, "live alerts are off here: no sensor map of the homes is configured (TWINCARE_SENSOR_MAP)")
    if resident_id not in rt.features.row_of and rt.live.live.last_event_time(resident_id) is None:
        return None, error(404, f"unknown resident id: {resident_id}")
    return rt, None


def _view(a) -> AlertView:
    return AlertView(**a.to_dict())


@router.post(
    "/events", response_model=BatchAnswer, tags=["home gateways"], summary="A batch of a home's raw sensor events",
    responses={422: {"model": schemas.ErrorBody, "description": "Bad events, each named in detail (loc = body, events, its index; msg = why); the good ones are kept."},
               413: {"model": schemas.ErrorBody, "description": "Too many events in one batch."},
               404: {"model": schemas.ErrorBody, "description": "No sensor map configured: live events are off."}},
)
@allow(DEVICE)
def post_events(request: Request, batch: EventBatch):
    """Store a home's events (idempotent by event id), rebuild its sensor days, run its alert rules."""
    rt = runtime_of(request)
    principal = principal_of(request)
    if rt.live is None:
        return error(404, "live events are off here: no sensor map of the homes is configured (TWINCARE_SENSOR_MAP)")
    bound = getattr(principal, "resident_id", None)
    resident = batch.resident_id or bound
    if resident is None:
        return error(422, "resident_id is needed (only a device key names its resident itself)")
    if bound is not None and resident != bound:
        return error(403, f"key {principal.name!r} is bound to another resident's home, not {resident}")
    if batch.sent_at is not None and batch.sent_at.tzinfo is not None:
        return error(422, "sent_at is the home's local clock without a zone, like the events' times")
    if len(batch.events) > rt.config.max_events:
        return error(413, f"a batch holds at most {rt.config.max_events} events; got {len(batch.events)}")
    try:
        result = rt.live.ingest(resident, batch.format, batch.events, batch.sent_at)
    except FormatMismatch as exc:
        return error(409, str(exc))
    body = result.to_dict()
    if result.rejected:
        shown = ", ".join(str(r["id"] if r["id"] is not None else f"#{r['index']}") for r in result.rejected[:10])
        more = " ..." if len(result.rejected) > 10 else ""
        return JSONResponse(  # the one error shape: each rejected event where and why, never its content
            {"error": f"{len(result.rejected)} event(s) rejected ({shown}{more}); {result.accepted} new event(s) kept",
             "detail": [{"loc": ["body", "events", str(r["index"])], "msg": str(r["why"]), "type": "rejected_event"}
                        for r in result.rejected]},
            status_code=422,
        )
    return body


@router.get("/alerts", response_model=AlertList, tags=["care managers"], summary="Live alerts, newest first")
@allow(*CARE)
def list_alerts(
    request: Request,
    status: Annotated[Literal["open", "escalated", "acknowledged", "unacknowledged"] | None,
                      Query(description="Only this status (all when absent).")] = None,
    resident_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
):
    rt = runtime_of(request)
    if rt.live is None:
        return AlertList(items=[])
    items = rt.live.live.list_alerts(status=status, resident_id=resident_id, limit=limit)
    rt.audit.record(principal_of(request), "alerts.read", resident_id, rows=len(items))
    return AlertList(items=[_view(a) for a in items])


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertView, tags=["care managers"],
             summary="Acknowledge an alert", responses={404: {"model": schemas.ErrorBody, "description": "No such alert."}})
@allow(*CARE)
def acknowledge(request: Request, alert_id: AlertIdPath):
    rt = runtime_of(request)
    if rt.live is None:
        return error(404, f"no such alert: {alert_id}")
    return _view(rt.live.live.acknowledge(alert_id, principal_of(request)))


@router.post("/alerts/{alert_id}/rate", response_model=RatedAlert, tags=["care managers"],
             summary="Rate an alert real or a false alarm (tunes that resident's threshold)",
             responses={404: {"model": schemas.ErrorBody, "description": "No such alert."},
                        409: {"model": schemas.ErrorBody, "description": "Already rated otherwise."},
                        422: {"model": schemas.ErrorBody, "description": "A reason with a rating other than false."}})
@allow(*CARE)
def rate(request: Request, alert_id: AlertIdPath, body: Rating):
    rt = runtime_of(request)
    if rt.live is None:
        return error(404, f"no such alert: {alert_id}")
    if body.reason is not None and body.rating != "false":
        return invalid("reason", "a reason goes only with the rating false")
    alert = rt.live.rate(alert_id, body.rating, principal_of(request), body.reason.value if body.reason else None)
    return RatedAlert(alert=_view(alert), **rt.live.tuning(alert.resident_id))


NO_HOME = {404: {"model": schemas.ErrorBody, "description": "Unknown resident, or live alerts are off."}}


@router.get("/residents/{resident_id}/alert_settings", response_model=HomeAlertSettings, tags=["care managers"],
            summary="A home's away spans, quiet hours and alert tuning", responses=NO_HOME)
@allow(*CARE)
def alert_settings(request: Request, resident_id: ResidentIdPath):
    rt, refused = _home_of(request, resident_id)
    if refused is not None:
        return refused
    rt.audit.record(principal_of(request), "home.settings.read", resident_id)
    return rt.live.home_settings(resident_id)


@router.post("/residents/{resident_id}/away", response_model=AwaySpanView, status_code=201, tags=["care managers"],
             summary="The resident is away: no alerts from the home from start to end", responses=NO_HOME)
@allow(*CARE)
def set_away(request: Request, resident_id: ResidentIdPath, body: AwaySpanIn):
    rt, refused = _home_of(request, resident_id)
    if refused is not None:
        return refused
    for field, value in (("start", body.start), ("end", body.end)):
        if value.tzinfo is not None:
            return invalid(field, f"{field} is the home's local clock without a zone, like its events' times")
    if not body.start < body.end <= body.start + MAX_AWAY:
        return invalid("end", "end must come after start, and at most a year after it")
    span = rt.live.set_away(resident_id, body.start, body.end, body.note, principal_of(request))
    return span.to_dict()


@router.delete("/residents/{resident_id}/away/{away_id}", response_model=AwaySpanView, tags=["care managers"],
               summary="Cancel an away span (alerts resume)", responses=NO_HOME)
@allow(*CARE)
def cancel_away(request: Request, resident_id: ResidentIdPath, away_id: AwayIdPath):
    rt, refused = _home_of(request, resident_id)
    if refused is not None:
        return refused
    return rt.live.cancel_away(resident_id, away_id, principal_of(request)).to_dict()


@router.put("/residents/{resident_id}/quiet_hours", response_model=HomeAlertSettings, tags=["care managers"],
            summary="Set a home's quiet hours (non-urgent alerts held until they end)", responses=NO_HOME)
@allow(*CARE)
def set_quiet_hours(request: Request, resident_id: ResidentIdPath, body: QuietHoursIn):
    rt, refused = _home_of(request, resident_id)
    if refused is not None:
        return refused
    start, end = _minutes(body.start), _minutes(body.end)
    if start == end:
        return invalid("end", "quiet hours end at another time than they start")
    rt.live.set_quiet_hours(resident_id, start, end, principal_of(request))
    return rt.live.home_settings(resident_id)


@router.delete("/residents/{resident_id}/quiet_hours", response_model=HomeAlertSettings, tags=["care managers"],
               summary="Clear a home's quiet hours (the service's default hours apply)", responses=NO_HOME)
@allow(*CARE)
def clear_quiet_hours(request: Request, resident_id: ResidentIdPath):
    rt, refused = _home_of(request, resident_id)
    if refused is not None:
        return refused
    rt.live.clear_quiet_hours(resident_id, principal_of(request))
    return rt.live.home_settings(resident_id)
