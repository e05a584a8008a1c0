"""Live records: raw events from home gateways, the sensor_days rows they make, and alerts.

`LiveStore(store)` works on the time-bank store's engine. Events are kept by (resident, event
id), so a gateway's retry changes nothing; an alert is kept by its id (resident, kind and since
when the sign was seen), so the same alert raised twice is stored once. An alert's webhook event
goes into the time-bank outbox in the same transaction as the alert.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.alerts import RATING_REASONS
from serving.store import audit
from serving.store.errors import Conflict, InvalidInput, NotFound
from serving.store.records import SYSTEM, Actor, jsonable
from serving.store.schema import (
    alerts_table,
    away_spans_table,
    device_events_table,
    live_days_table,
    quiet_hours_table,
    tasks_table,
    webhook_outbox_table,
)

ALERT_EVENT_TYPES = ("alert.raised", "alert.escalated")
RATINGS = ("real", "false")


@dataclass(frozen=True)
class DeviceEvent:
    """One raw event as a gateway sent it (times on the home's local clock)."""

    event_id: str
    time: datetime
    sensor: str
    value: str
    end_time: datetime | None = None  # intervals only

    def same_as(self, other: DeviceEvent) -> bool:
        return (self.time, self.sensor, self.value, self.end_time) == (other.time, other.sensor, other.value, other.end_time)


@dataclass(frozen=True)
class StoredAlert:
    alert_id: str
    resident_id: str
    kind: str
    since: datetime
    due_at: datetime
    raised_at: datetime
    created_at: datetime
    text: str
    urgent: bool
    task_id: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    escalated_at: datetime | None
    rating: str | None
    rated_at: datetime | None
    rated_by: str | None
    cell: str | None = None  # no_movement: the place and time of day whose limit it passed
    rating_reason: str | None = None  # why a false alarm was false: out

    @property
    def status(self) -> str:
        if self.acknowledged_at is not None:
            return "acknowledged"
        return "escalated" if self.escalated_at is not None else "open"

    def to_dict(self) -> dict:
        d = {k: (v.isoformat(timespec="seconds") if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}
        d["status"] = self.status
        return d


def alert_id_for(resident_id: str, kind: str, since: datetime) -> str:
    """Stable id of an alert: the same sign of the same resident is one alert."""
    raw = f"{resident_id}|{kind}|{since.isoformat(timespec='seconds')}"
    return "A" + hashlib.sha256(raw.encode()).hexdigest()[:23]


def _alert(r: Any) -> StoredAlert:
    return StoredAlert(**{c: getattr(r, c) for c in StoredAlert.__dataclass_fields__})


class LiveStore:
    """Events, live sensor days and alerts on the time-bank store's engine (`store.engine`)."""

    def __init__(self, store: Any):
        self.store = store
        self.engine = store.engine
        self._read = store._read  # a deferred read transaction: never takes SQLite's write lock
        self.settings = HomeSettings(store)

    def now(self) -> datetime:
        return self.store.now()

    # -- events ----------------------------------------------------------------------------------

    def add_events(self, conn: Connection, resident_id: str, events: Sequence[DeviceEvent], now: datetime
                   ) -> tuple[list[DeviceEvent], list[DeviceEvent], list[tuple[DeviceEvent, str]]]:
        """Insert the events not stored yet. Returns (new, duplicates, conflicts with why): a
        known id with the same content is a duplicate; with other content it is refused."""
        t = device_events_table
        ids = [e.event_id for e in events]
        known: dict[str, DeviceEvent] = {}
        for k in range(0, len(ids), 500):
            q = sa.select(t.c.event_id, t.c.time, t.c.sensor, t.c.value, t.c.end_time).where(
                t.c.resident_id == resident_id, t.c.event_id.in_(ids[k:k + 500]))
            for r in conn.execute(q):
                known[r.event_id] = DeviceEvent(r.event_id, r.time, r.sensor, r.value, r.end_time)
        new, dups, bad = [], [], []
        for e in events:
            old = known.get(e.event_id)
            if old is None:
                known[e.event_id] = e
                new.append(e)
            elif old.same_as(e):
                dups.append(e)
            else:
                bad.append((e, "this event id was already used for a different event"))
        if new:
            conn.execute(t.insert(), [
                {"resident_id": resident_id, "event_id": e.event_id, "time": e.time, "end_time": e.end_time,
                 "sensor": e.sensor, "value": e.value, "received_at": now} for e in new])
        return new, dups, bad

    def events_between(self, conn: Connection, resident_id: str, lo: datetime | None, hi: datetime | None) -> pd.DataFrame:
        """A resident's stored events with lo <= time < hi, in time then arrival order."""
        t = device_events_table
        q = sa.select(t.c.seq, t.c.event_id, t.c.time, t.c.end_time, t.c.sensor, t.c.value).where(
            t.c.resident_id == resident_id)
        if lo is not None:
            q = q.where(t.c.time >= lo)
        if hi is not None:
            q = q.where(t.c.time < hi)
        rows = [tuple(r) for r in conn.execute(q.order_by(t.c.time, t.c.seq))]
        df = pd.DataFrame.from_records(rows, columns=["seq", "event_id", "time", "end_time", "sensor", "value"])
        for c in ("time", "end_time"):
            df[c] = pd.to_datetime(df[c]).astype("datetime64[ns]")
        return df

    def read_events(self, resident_id: str, lo: datetime | None = None, hi: datetime | None = None) -> pd.DataFrame:
        with self._read() as conn:
            return self.events_between(conn, resident_id, lo, hi)

    def last_event_time(self, resident_id: str) -> datetime | None:
        t = device_events_table
        with self._read() as conn:
            return conn.execute(sa.select(sa.func.max(t.c.time)).where(t.c.resident_id == resident_id)).scalar()

    def event_count(self, resident_id: str | None = None) -> int:
        t = device_events_table
        q = sa.select(sa.func.count()).select_from(t)
        if resident_id is not None:
            q = q.where(t.c.resident_id == resident_id)
        with self._read() as conn:
            return int(conn.execute(q).scalar() or 0)

    def event_ids(self, resident_id: str | None = None) -> set[tuple[str, str]]:
        t = device_events_table
        q = sa.select(t.c.resident_id, t.c.event_id)
        if resident_id is not None:
            q = q.where(t.c.resident_id == resident_id)
        with self._read() as conn:
            return {(r[0], r[1]) for r in conn.execute(q)}

    # -- live sensor days --------------------------------------------------------------------------

    def put_days(self, conn: Connection, resident_id: str, rows: pd.DataFrame, now: datetime) -> list[date]:
        """Replace the resident's live sensor_days rows for the days in `rows` (sensor_days columns)."""
        if rows.empty:
            return []
        t = live_days_table
        days = [pd.Timestamp(d).date() for d in rows["date"]]
        conn.execute(t.delete().where(t.c.resident_id == resident_id, t.c.date.in_(days)))
        measures = [c for c in rows.columns if c not in ("resident_id", "date")]
        conn.execute(t.insert(), [
            {"resident_id": resident_id, "date": d, "updated_at": now,
             "measures": {c: _number(v) for c, v in zip(measures, vals, strict=True)}}
            for d, vals in zip(days, rows[measures].itertuples(index=False, name=None), strict=True)])
        return days

    def days(self, resident_id: str | None = None) -> pd.DataFrame:
        """Live sensor_days rows (resident_id, date, then the measures), by resident and date."""
        t = live_days_table
        q = sa.select(t.c.resident_id, t.c.date, t.c.measures).order_by(t.c.resident_id, t.c.date)
        if resident_id is not None:
            q = q.where(t.c.resident_id == resident_id)
        with self._read() as conn:
            rows = conn.execute(q).all()
        out = pd.DataFrame([{"resident_id": r.resident_id, "date": pd.Timestamp(r.date), **dict(r.measures)}
                            for r in rows])
        for c in out.columns[2:]:
            out[c] = out[c].astype("float64")
        return out

    # -- alerts ----------------------------------------------------------------------------------

    def add_alert(self, resident_id: str, kind: str, since: datetime, due_at: datetime, raised_at: datetime,
                  text: str, urgent: bool, cell: str | None = None) -> tuple[StoredAlert, bool]:
        """Store an alert (a non-urgent one with its `alert.raised` webhook event); (alert, False)
        if already stored."""
        aid = alert_id_for(resident_id, kind, since)
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(alerts_table).where(alerts_table.c.alert_id == aid)).first()
            if found is not None:
                return _alert(found), False
            now = self.now()
            conn.execute(alerts_table.insert().values(
                alert_id=aid, resident_id=resident_id, kind=kind, since=since, due_at=due_at, raised_at=raised_at,
                created_at=now, text=text, urgent=urgent, cell=cell))
            alert = _alert(conn.execute(sa.select(alerts_table).where(alerts_table.c.alert_id == aid)).one())
            if not urgent:  # an urgent one is announced with its visit (`link_task`)
                _emit(conn, "alert.raised", alert, now)
            audit.record(conn, None, "alert.raise", resident_id, {"alert_id": aid, "kind": kind}, now)
            return alert, True

    def link_task(self, alert_id: str, task_id: str) -> StoredAlert:
        """Record the visit an urgent alert opened, and send its `alert.raised` event with it."""
        with self.engine.begin() as conn:
            linked = conn.execute(alerts_table.update().where(
                alerts_table.c.alert_id == alert_id, alerts_table.c.task_id.is_(None)).values(task_id=task_id)).rowcount
            alert = _alert(conn.execute(sa.select(alerts_table).where(alerts_table.c.alert_id == alert_id)).one())
            if linked:  # (else another writer linked it and announced it)
                _emit(conn, "alert.raised", alert, self.now())
            return alert

    def get_alert(self, alert_id: str) -> StoredAlert:
        with self._read() as conn:
            r = conn.execute(sa.select(alerts_table).where(alerts_table.c.alert_id == alert_id)).first()
        if r is None:
            raise NotFound(f"no such alert: {alert_id}")
        return _alert(r)

    def list_alerts(self, *, status: str | None = None, resident_id: str | None = None,
                    limit: int = 100) -> list[StoredAlert]:
        """Newest first; status open (neither acknowledged nor escalated), escalated or acknowledged."""
        a = alerts_table
        q = sa.select(a).order_by(a.c.seq.desc()).limit(limit)
        if resident_id is not None:
            q = q.where(a.c.resident_id == resident_id)
        if status == "acknowledged":
            q = q.where(a.c.acknowledged_at.is_not(None))
        elif status == "escalated":
            q = q.where(a.c.acknowledged_at.is_(None), a.c.escalated_at.is_not(None))
        elif status == "open":
            q = q.where(a.c.acknowledged_at.is_(None), a.c.escalated_at.is_(None))
        elif status == "unacknowledged":
            q = q.where(a.c.acknowledged_at.is_(None))
        with self._read() as conn:
            return [_alert(r) for r in conn.execute(q)]

    def acknowledge(self, alert_id: str, actor: Actor) -> StoredAlert:
        """Mark an alert seen by a care manager; acknowledging again changes nothing."""
        with self.engine.begin() as conn:
            r = conn.execute(sa.select(alerts_table).where(alerts_table.c.alert_id == alert_id)).first()
            if r is None:
                raise NotFound(f"no such alert: {alert_id}")
            if r.acknowledged_at is None:
                now = self.now()
                conn.execute(alerts_table.update().where(alerts_table.c.alert_id == alert_id)
                             .values(acknowledged_at=now, acknowledged_by=actor.name))
                audit.record(conn, actor, "alert.acknowledge", r.resident_id, {"alert_id": alert_id}, now)
            return _alert(conn.execute(sa.select(alerts_table).where(alerts_table.c.alert_id == alert_id)).one())

    def rate(self, alert_id: str, rating: str, actor: Actor, reason: str | None = None) -> tuple[StoredAlert, bool]:
        """Rate an alert real or false, a false one with an optional reason (acknowledging it
        too); (alert, changed). Rating an alert again with the same rating and reason changes
        nothing; with another it is a conflict."""
        if rating not in RATINGS:
            raise InvalidInput(f"rating must be one of {', '.join(RATINGS)}")
        if reason is not None and (rating != "false" or reason not in RATING_REASONS):
            raise InvalidInput(f"a reason ({', '.join(RATING_REASONS)}) goes only with the rating false")
        with self.engine.begin() as conn:
            r = conn.execute(sa.select(alerts_table).where(alerts_table.c.alert_id == alert_id)).first()
            if r is None:
                raise NotFound(f"no such alert: {alert_id}")
            if r.rating == rating and r.rating_reason == reason:
                return _alert(r), False
            if r.rating is not None:
                said = r.rating + (f" ({r.rating_reason})" if r.rating_reason else "")
                raise Conflict(f"alert {alert_id} is already rated {said!r}")
            now = self.now()
            values = {"rating": rating, "rating_reason": reason, "rated_at": now, "rated_by": actor.name}
            if r.acknowledged_at is None:
                values |= {"acknowledged_at": now, "acknowledged_by": actor.name}
            conn.execute(alerts_table.update().where(alerts_table.c.alert_id == alert_id).values(**values))
            audit.record(conn, actor, "alert.rate", r.resident_id,
                         {"alert_id": alert_id, "rating": rating, "reason": reason}, now)
            return _alert(conn.execute(sa.select(alerts_table).where(alerts_table.c.alert_id == alert_id)).one()), True

    def ratings(self, resident_id: str) -> list[tuple[str, bool, datetime, str | None, str | None]]:
        """(kind, real, since, cell, reason) of a resident's rated alerts, in the order they were
        rated."""
        a = alerts_table
        q = (sa.select(a.c.kind, a.c.rating, a.c.since, a.c.cell, a.c.rating_reason)
             .where(a.c.resident_id == resident_id, a.c.rating.is_not(None)).order_by(a.c.rated_at, a.c.seq))
        with self._read() as conn:
            return [(k, r == "real", since, cell, why) for k, r, since, cell, why in conn.execute(q)]

    def escalate_due(self, before: datetime) -> list[StoredAlert]:
        """Escalate every urgent alert created before `before` that no one has acknowledged and
        whose visit no volunteer has claimed: mark it and send an `alert.escalated` event."""
        a, t = alerts_table, tasks_table
        claimed = sa.select(t.c.task_id).where(t.c.task_id == a.c.task_id, t.c.status.in_(("claimed", "completed")))
        q = sa.select(a).where(a.c.acknowledged_at.is_(None), a.c.escalated_at.is_(None), a.c.urgent.is_(True),
                               a.c.created_at <= before, ~sa.exists(claimed))
        out = []
        with self.engine.begin() as conn:
            now = self.now()
            for r in conn.execute(q).all():
                conn.execute(a.update().where(a.c.alert_id == r.alert_id).values(escalated_at=now))
                alert = _alert(conn.execute(sa.select(a).where(a.c.alert_id == r.alert_id)).one())
                _emit(conn, "alert.escalated", alert, now)
                audit.record(conn, None, "alert.escalate", r.resident_id, {"alert_id": r.alert_id}, now)
                out.append(alert)
        return out

    def alerts_without_task(self, before: datetime) -> list[StoredAlert]:
        """Urgent unacknowledged alerts stored before `before` that still have no visit."""
        a = alerts_table
        q = sa.select(a).where(a.c.task_id.is_(None), a.c.urgent.is_(True), a.c.acknowledged_at.is_(None),
                               a.c.created_at < before)
        with self._read() as conn:
            return [_alert(r) for r in conn.execute(q)]


@dataclass(frozen=True)
class AwaySpan:
    """A time the resident is away from home (home clock): no alerts from the home meanwhile."""

    away_id: int
    resident_id: str
    start: datetime
    end: datetime
    note: str | None
    created_by: str

    def to_dict(self) -> dict:
        return {"away_id": self.away_id, "resident_id": self.resident_id, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "note": self.note, "created_by": self.created_by}


class HomeSettings:
    """Per-home settings the care managers set: away spans and quiet hours."""

    def __init__(self, store: Any):
        self.engine = store.engine
        self.now = store.now
        self._read = store._read  # a deferred read transaction: never takes SQLite's write lock

    def add_away(self, resident_id: str, start: datetime, end: datetime, note: str | None, actor: Actor | None
                 ) -> AwaySpan:
        if end <= start:
            raise InvalidInput("an away span ends after it starts")
        t = away_spans_table
        with self.engine.begin() as conn:
            now = self.now()
            seq = conn.execute(t.insert().values(resident_id=resident_id, start=start, end=end, note=note,
                                                 created_at=now, created_by=(actor or SYSTEM).name)).inserted_primary_key[0]
            audit.record(conn, actor, "home.away.set", resident_id,
                         {"away_id": seq, "start": start.isoformat(), "end": end.isoformat()}, now)
            return _span(conn.execute(sa.select(t).where(t.c.seq == seq)).one())

    def cancel_away(self, resident_id: str, away_id: int, actor: Actor | None) -> AwaySpan:
        """Cancel a span (kept, marked cancelled); cancelling again changes nothing."""
        t = away_spans_table
        with self.engine.begin() as conn:
            r = conn.execute(sa.select(t).where(t.c.seq == away_id, t.c.resident_id == resident_id)).first()
            if r is None:
                raise NotFound(f"no away span {away_id} for resident {resident_id}")
            if r.cancelled_at is None:
                now = self.now()
                conn.execute(t.update().where(t.c.seq == away_id).values(cancelled_at=now,
                                                                         cancelled_by=(actor or SYSTEM).name))
                audit.record(conn, actor, "home.away.cancel", resident_id, {"away_id": away_id}, now)
            return _span(r)

    def away_spans(self, resident_id: str) -> list[AwaySpan]:
        """The resident's spans not cancelled, in the order they were set."""
        t = away_spans_table
        q = sa.select(t).where(t.c.resident_id == resident_id, t.c.cancelled_at.is_(None)).order_by(t.c.seq)
        with self._read() as conn:
            return [_span(r) for r in conn.execute(q)]

    def set_quiet_hours(self, resident_id: str, start_minute: int, end_minute: int, actor: Actor | None) -> None:
        t = quiet_hours_table
        with self.engine.begin() as conn:
            now = self.now()
            values = {"start_minute": start_minute, "end_minute": end_minute, "updated_at": now,
                      "updated_by": (actor or SYSTEM).name}
            if not conn.execute(t.update().where(t.c.resident_id == resident_id).values(**values)).rowcount:
                conn.execute(t.insert().values(resident_id=resident_id, **values))
            audit.record(conn, actor, "home.quiet_hours.set", resident_id,
                         {"start_minute": start_minute, "end_minute": end_minute}, now)

    def clear_quiet_hours(self, resident_id: str, actor: Actor | None) -> None:
        """The service's default hours apply to the home again; clearing again changes nothing."""
        t = quiet_hours_table
        with self.engine.begin() as conn:
            if conn.execute(t.delete().where(t.c.resident_id == resident_id)).rowcount:
                audit.record(conn, actor, "home.quiet_hours.clear", resident_id, {}, self.now())

    def quiet_hours(self, resident_id: str) -> tuple[int, int] | None:
        """(start, end) in minutes after midnight, or None: the service's default applies."""
        t = quiet_hours_table
        with self._read() as conn:
            r = conn.execute(sa.select(t.c.start_minute, t.c.end_minute).where(t.c.resident_id == resident_id)).first()
        return None if r is None else (int(r[0]), int(r[1]))


def _span(r: Any) -> AwaySpan:
    return AwaySpan(int(r.seq), r.resident_id, r.start, r.end, r.note, r.created_by)


def _emit(conn: Connection, event_type: str, alert: StoredAlert, now: datetime) -> None:
    eid = f"{alert.alert_id}.{event_type.removeprefix('alert.')}"
    payload = {"event_id": eid, "type": event_type, "occurred_at": now.isoformat(), "alert": alert.to_dict()}
    conn.execute(webhook_outbox_table.insert().values(
        event_id=eid, event_type=event_type, task_id=alert.task_id or alert.alert_id, payload=jsonable(payload),
        created_at=now, attempts=0, next_attempt_at=now))


def _number(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f

