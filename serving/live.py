"""Live events and alerts: what a home gateway's batch does, and the clock that runs between them.

`LiveAlerts.ingest(resident_id, fmt, items, sent_at)` takes one batch of raw events (the line
formats of `twincare ingest events`), in this order:
1. each item is checked on its own; a bad one is named with why, the good ones go on;
2. the new events (by event id; a retry's are duplicates and change nothing) are stored in one
   transaction: once the answer is sent the batch is on disk. The resident's sensor_days rows for
   the days they touch (and the days next to them) are rebuilt from the stored events by the batch
   aggregation itself, so they equal batch ingestion of the same events: with the batch when the
   home's last rebuild is `days_every` seconds old, else by the clock (`tick`) or `flush_days`;
3. the new events are fed, in time order, to the resident's `models.alerts.ResidentMonitor` (the
   rules `twincare alerts evaluate` scores), which learned from the resident's own stored days;
   an event older than the newest one the monitor has seen is kept for the sensor days but not
   fed to it (it is read again when the monitor is rebuilt at start-up);
4. every alert raised is stored with its webhook event, and its urgent check visit is opened for
   nearby volunteers through the actions policy (`models.policy.plan_alert_task`).

`tick()` (a background thread, every `tick_seconds`) moves each home's clock on by the wall time
since its last batch (less the allowed batch lag), escalates urgent alerts that no one has
acknowledged and whose visit no volunteer has claimed within `escalate_after`, and opens any
visit an alert is still missing (a crash between the two writes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from models.alerts import Alert, AlertSettings, ResidentMonitor
from models.policy import DEFAULT_POLICY, NEUTRAL_SCARCITY, ActionPolicy, Scarcity
from serving.actions import alert_task_spec
from serving.store import TimeBankStore
from serving.store.live import AwaySpan, DeviceEvent, LiveStore, StoredAlert
from twin.ingest_events import (
    ACTIVE_INTERVAL_VALUES,
    INACTIVE_INTERVAL_VALUES,
    BadLine,
    EventLogReport,
    SensorDayConfig,
    aggregate_sensor_days,
    casas_activations,
    casas_state,
    interval_activations,
    is_reading,
    parse_casas_line,
    parse_interval_line,
)

log = logging.getLogger("twincare.serving.live")

FORMATS = ("casas", "intervals")
MAX_ID = 128
DAY = timedelta(days=1)
REPLAY_RAISE_WINDOW = timedelta(hours=2)
"""On a rebuild, alerts the replay finds due this close to the newest event are stored (a crash
may have come between an event batch and its alert); older ones are history."""


class FormatMismatch(ValueError):
    """A home's events came in the other line format than the ones stored for it."""


@dataclass
class BatchResult:
    """What one batch did."""

    accepted: int
    duplicates: int
    late: int
    rejected: list[dict]
    days_updated: list[str]
    alerts: list[dict]

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Home:
    monitor: ResidentMonitor
    fmt: str | None
    position: datetime | None  # newest event fed to the monitor
    clock: datetime | None  # the home's time at the last batch (newest event or sent_at)
    wall: float  # time.monotonic() at the last batch
    lock: threading.Lock = field(default_factory=threading.Lock)
    dirty: set = field(default_factory=set)  # days whose sensor_days row waits to be rebuilt
    rebuilt: float = -1e18  # time.monotonic() of the last rebuild


def parse_item(item: Any, fmt: str) -> DeviceEvent:
    """One batch item -> event; ValueError says what is wrong with it.

    An item is {"id", "line"} with a line of the format, or the line's fields: casas
    {"id", "time", "sensor", "value"}, intervals {"id", "start", "end", "sensor", "value"}.
    """
    if not isinstance(item, Mapping):
        raise ValueError("an event must be an object with 'id' and 'line' (or the line's fields)")
    eid = item.get("id")
    if not isinstance(eid, str) or not eid.strip() or len(eid) > MAX_ID or not eid.isprintable():
        raise ValueError(f"'id' must be printable text of 1-{MAX_ID} characters")
    line = item.get("line")
    if line is None:
        names = ("time", "sensor", "value") if fmt == "casas" else ("start", "end", "sensor", "value")
        missing = [n for n in names if not isinstance(item.get(n), str) or not item.get(n).strip()]
        if missing:
            raise ValueError(f"needs 'line' or the text fields {', '.join(names)} (missing: {', '.join(missing)})")
        parts = [item[n].strip() for n in names]
        if fmt == "casas":
            parts[0] = parts[0].replace("T", " ", 1)
        line = " ".join(parts)
    if not isinstance(line, str) or "\n" in line or not line.strip() or line.lstrip().startswith("#"):
        raise ValueError("'line' must be one log line")
    try:
        if fmt == "casas":
            t, sensor, value, _ = parse_casas_line(line.strip())
            if casas_state(value) is None and not is_reading(value):
                raise BadLine(f"unknown value {value!r} (ON/OFF/OPEN/CLOSE or a number)")
            end = None
        else:
            t, end, sensor, value = parse_interval_line(line.strip())
            if value not in ACTIVE_INTERVAL_VALUES | INACTIVE_INTERVAL_VALUES:
                raise BadLine(f"unknown value {value!r} (1/0, ON/OFF)")
    except BadLine as e:
        raise ValueError(str(e)) from None
    if len(sensor) > 64 or len(value) > 32:
        raise ValueError("sensor ids hold at most 64 characters and values 32")
    return DeviceEvent(eid, t, sensor, value, end)


class LiveAlerts:
    """Monitors of every home that sends events, and the writes their batches and alerts make."""

    def __init__(
        self,
        store: TimeBankStore,
        sensor_map: Mapping[str, str],
        *,
        settings: AlertSettings | None = None,
        day_config: SensorDayConfig | None = None,
        policy: ActionPolicy = DEFAULT_POLICY,
        grid_of: Callable[[str], str | None] = lambda rid: None,
        scarcity_of: Callable[[str], Scarcity] = lambda grid: NEUTRAL_SCARCITY,
        escalate_after: timedelta = timedelta(minutes=15),
        batch_lag: timedelta = timedelta(minutes=2),
        days_every: float = 60.0,
    ):
        self.store = store
        self.live = LiveStore(store)
        self.sensor_map = dict(sensor_map)
        self.settings = settings or AlertSettings()
        self.day_config = day_config or SensorDayConfig()
        self.policy = policy
        self.grid_of = grid_of
        self.scarcity_of = scarcity_of
        self.escalate_after = escalate_after
        self.batch_lag = batch_lag
        self.days_every = days_every
        self._homes: dict[str, _Home] = {}
        self._building: dict[str, threading.Lock] = {}  # per home while its monitor is built
        self._lock = threading.Lock()
        self.vectors: Any = None  # serving.live_features.LiveVectors, when live days feed /assess
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- homes -----------------------------------------------------------------------------------

    def _home(self, resident_id: str) -> _Home:
        """The home's monitor, built on first use. A build replays the home's stored days (a
        second or so), so it runs outside the lock every home shares: one home's first contact
        never holds up the others' batches or the clock; a second batch of the same home waits
        for the one build."""
        with self._lock:
            home = self._homes.get(resident_id)
            if home is not None:
                return home
            building = self._building.setdefault(resident_id, threading.Lock())
        with building:
            with self._lock:
                home = self._homes.get(resident_id)
            if home is None:
                home = self._build(resident_id)
                with self._lock:
                    self._homes[resident_id] = home
                    self._building.pop(resident_id, None)
            return home

    def _build(self, resident_id: str) -> _Home:
        """A monitor that has read the resident's stored events of its learning window, with the
        thresholds the care managers' ratings have tuned."""
        mon = ResidentMonitor(resident_id, self.sensor_map, self.settings)
        for kind, real, since, cell, reason in self.live.ratings(resident_id):
            mon.rate(kind, real, since=since, cell=cell, reason=reason)
        self._apply_home_settings(resident_id, mon)
        last = self.live.last_event_time(resident_id)
        home = _Home(mon, None, None, None, time.monotonic())
        if last is None:
            return home
        ev = self.live.read_events(resident_id, last - (self.settings.history_days + 2) * DAY, None)
        home.fmt = "intervals" if ev["end_time"].notna().any() else "casas"
        raised: list[tuple[Alert, datetime]] = []
        for t, sensor, value in self._monitor_events(ev, home.fmt):
            raised += [(a, t) for a in mon.observe(t, sensor, value)]
            home.position = t
        home.clock = home.position
        recent = [(a, t) for a, t in raised if a.at >= last - REPLAY_RAISE_WINDOW]
        if recent:
            self._store_alerts(recent)
        return home

    @staticmethod
    def _monitor_events(ev: pd.DataFrame, fmt: str) -> list[tuple[datetime, str, str]]:
        """Stored events as the monitor reads them (intervals: ON at the start, OFF at the end)."""
        if ev.empty:
            return []
        if fmt == "casas":
            times = ev["time"].dt.to_pydatetime()
            return list(zip(times, ev["sensor"].tolist(), ev["value"].tolist(), strict=True))
        active = ev[ev["value"].str.upper().isin(ACTIVE_INTERVAL_VALUES)]
        out = [(s, sensor, "ON") for s, sensor in zip(active["time"].dt.to_pydatetime(), active["sensor"], strict=True)]
        out += [(e, sensor, "OFF") for e, sensor in zip(active["end_time"].dt.to_pydatetime(), active["sensor"], strict=True)]
        out.sort(key=lambda x: x[0])
        return out

    # -- a batch ---------------------------------------------------------------------------------

    def ingest(self, resident_id: str, fmt: str, items: Sequence[Any], sent_at: datetime | None = None) -> BatchResult:
        """Check, store and monitor one batch of a home's events (see the module doc)."""
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}")
        rejected: list[dict] = []
        good: list[DeviceEvent] = []
        seen: dict[str, DeviceEvent] = {}
        index_of: dict[str, int] = {}
        for i, item in enumerate(items):
            try:
                ev = parse_item(item, fmt)
            except ValueError as e:
                eid = item.get("id") if isinstance(item, Mapping) and isinstance(item.get("id"), str) else None
                rejected.append({"index": i, "id": eid, "why": str(e)})
                continue
            twin_ev = seen.get(ev.event_id)
            if twin_ev is not None and not twin_ev.same_as(ev):
                rejected.append({"index": i, "id": ev.event_id, "why": "the batch holds this id twice with different content"})
                continue
            seen[ev.event_id] = ev
            index_of.setdefault(ev.event_id, i)
            good.append(ev)
        home = self._home(resident_id)
        with home.lock:
            if home.fmt is not None and good and home.fmt != fmt:
                raise FormatMismatch(f"this home's events are stored in the {home.fmt} format; got {fmt}")
            new, dups, conflicts = self._store_events(resident_id, good)
            for ev, why in conflicts:
                rejected.append({"index": index_of[ev.event_id], "id": ev.event_id, "why": why})
            if new and home.fmt is None:
                home.fmt = fmt
            touched = {e.time.date() for e in new} | {e.end_time.date() for e in new if e.end_time is not None}
            home.dirty |= {d + k * DAY for d in touched for k in (-1, 0, 1)}
            days = self._rebuild(resident_id, home) if time.monotonic() - home.rebuilt >= self.days_every else []
            alerts, late = self._monitor(home, new, sent_at)
        stored = self._store_alerts(alerts)
        rejected.sort(key=lambda r: r["index"])
        return BatchResult(len(new), len(dups), late, rejected, sorted(str(d) for d in days),
                           [a.to_dict() for a in stored])

    def _store_events(self, resident_id: str, events: Sequence[DeviceEvent]):
        """Store the new events (one transaction: once it commits the batch is acknowledged)."""
        with self.store.engine.begin() as conn:
            return self.live.add_events(conn, resident_id, events, self.store.now())

    def _rebuild(self, resident_id: str, home: _Home) -> list:
        """Rebuild the home's waiting sensor days from its stored events (call with its lock)."""
        days, home.dirty, home.rebuilt = home.dirty, set(), time.monotonic()
        if not days or home.fmt is None:
            return []
        with self.store.engine.begin() as conn:
            # a day's measures depend on the day before (the night, an absence begun then) and
            # on whether anything came after it (how much of it was observed)
            lo = datetime.combine(min(days), datetime.min.time()) - DAY
            hi = datetime.combine(max(days), datetime.min.time()) + 2 * DAY
            stored = self.live.events_between(conn, resident_id, lo, hi)
            rows = self.sensor_days(stored, home.fmt, resident_id)
            rows = rows[rows["date"].dt.date.isin(days)]
            return self.live.put_days(conn, resident_id, rows, self.store.now())

    def flush_days(self) -> int:
        """Rebuild every home's waiting sensor days now; returns the rows rebuilt."""
        with self._lock:
            homes = list(self._homes.items())
        n = 0
        for rid, home in homes:
            with home.lock:
                n += len(self._rebuild(rid, home))
        return n

    def sensor_days(self, stored: pd.DataFrame, fmt: str, resident_id: str) -> pd.DataFrame:
        """sensor_days rows of stored events, by the batch ingestion's own aggregation."""
        rep = EventLogReport(source="live", format=fmt, resident_id=resident_id)
        cfg = self.day_config
        if fmt == "casas":
            events = pd.DataFrame({
                "line": stored["seq"].to_numpy(), "time": stored["time"],
                "sensor": stored["sensor"].astype(str), "state": [casas_state(v) for v in stored["value"]],
            })
            acts, times, is_door = casas_activations(events, self.sensor_map, cfg, rep)
        else:
            act = stored[stored["value"].str.upper().isin(ACTIVE_INTERVAL_VALUES)]
            intervals = pd.DataFrame({"line": act["seq"].to_numpy(), "start": act["time"], "end": act["end_time"],
                                      "sensor": act["sensor"].astype(str)})
            acts, times, is_door = interval_activations(intervals, self.sensor_map, cfg, rep)
        rows, _ = aggregate_sensor_days(acts, times, is_door, self.sensor_map, resident_id, cfg, rep)
        return rows

    def _monitor(self, home: _Home, new: Sequence[DeviceEvent], sent_at: datetime | None):
        """Feed the new events in time order; returns (alerts with when raised, late events)."""
        feed: list[tuple[datetime, str, str]] = []
        for e in new:
            if home.fmt == "intervals":
                if e.value in ACTIVE_INTERVAL_VALUES:
                    feed += [(e.time, e.sensor, "ON"), (e.end_time, e.sensor, "OFF")]
            else:
                feed.append((e.time, e.sensor, e.value))
        feed.sort(key=lambda x: x[0])
        late = 0
        out: list[tuple[Alert, datetime]] = []
        mon = home.monitor
        for t, sensor, value in feed:
            if home.position is not None and t < home.position:
                late += 1
                continue
            out += [(a, t) for a in mon.observe(t, sensor, value)]
            home.position = t
        clock = max([c for c in (home.position, sent_at) if c is not None], default=None)
        if clock is not None:
            if home.position is not None and clock > home.position:
                out += [(a, clock) for a in mon.advance(clock)]
            home.clock, home.wall = clock, time.monotonic()
        return out, late

    # -- alerts ----------------------------------------------------------------------------------

    def _store_alerts(self, alerts: Sequence[tuple[Alert, datetime]]) -> list[StoredAlert]:
        out = []
        for a, raised in alerts:
            stored, created = self.live.add_alert(a.resident_id, a.kind, a.since, a.at, max(a.at, raised), a.text,
                                                  a.urgent, a.cell)
            if created:
                if stored.urgent:
                    stored = self._open_visit(stored)
                out.append(stored)
        return out

    def _open_visit(self, alert: StoredAlert) -> StoredAlert:
        grid = self.grid_of(alert.resident_id) or "unknown"
        spec = alert_task_spec(alert.resident_id, grid, alert.kind, alert.text, today=self.store.now().date(),
                               scarcity=self.scarcity_of(grid), policy=self.policy)
        res = self.store.open_task(spec, idempotency_key=f"alert-{alert.alert_id}")
        return self.live.link_task(alert.alert_id, res.task.task_id)

    def rate(self, alert_id: str, rating: str, actor: Any, reason: str | None = None) -> StoredAlert:
        """Store a care manager's rating (a false one with an optional reason) and tune the wait
        it rates (`ResidentMonitor.rate`)."""
        alert, changed = self.live.rate(alert_id, rating, actor, reason)
        if changed:
            with self._lock:
                home = self._homes.get(alert.resident_id)
            if home is not None:
                with home.lock:
                    home.monitor.rate(alert.kind, rating == "real", since=alert.since, cell=alert.cell,
                                      reason=reason)
        return alert

    # -- per-home settings: away spans and quiet hours ---------------------------------------

    def _apply_home_settings(self, resident_id: str, mon: ResidentMonitor) -> None:
        """The home's stored away spans and quiet hours, in place of what the monitor had."""
        mon.away = []
        for span in self.live.settings.away_spans(resident_id):
            mon.set_away(span.start, span.end)
        quiet = self.live.settings.quiet_hours(resident_id)
        mon.settings = replace(
            mon.settings,
            quiet_start_hour=self.settings.quiet_start_hour if quiet is None else quiet[0] / 60,
            quiet_end_hour=self.settings.quiet_end_hour if quiet is None else quiet[1] / 60,
        )

    def _loaded(self, resident_id: str) -> _Home | None:
        with self._lock:
            return self._homes.get(resident_id)

    def set_away(self, resident_id: str, start: datetime, end: datetime, note: str | None, actor: Any) -> AwaySpan:
        """The resident is away from start to end (home clock): nothing is raised from the home
        meanwhile. Stored first; a loaded monitor takes it at once, a rebuilt one from the store."""
        span = self.live.settings.add_away(resident_id, start, end, note, actor)
        home = self._loaded(resident_id)
        if home is not None:
            with home.lock:
                home.monitor.set_away(span.start, span.end)
        return span

    def cancel_away(self, resident_id: str, away_id: int, actor: Any) -> AwaySpan:
        span = self.live.settings.cancel_away(resident_id, away_id, actor)
        self._reapply_home_settings(resident_id)
        return span

    def set_quiet_hours(self, resident_id: str, start_minute: int, end_minute: int, actor: Any) -> None:
        """Non-urgent alerts of this home are held from start to end (minutes after midnight)."""
        self.live.settings.set_quiet_hours(resident_id, start_minute, end_minute, actor)
        self._reapply_home_settings(resident_id)

    def clear_quiet_hours(self, resident_id: str, actor: Any) -> None:
        """The service's default quiet hours apply to this home again."""
        self.live.settings.clear_quiet_hours(resident_id, actor)
        self._reapply_home_settings(resident_id)

    def _reapply_home_settings(self, resident_id: str) -> None:
        """A loaded monitor takes the stored settings at once (a rebuilt one reads them anyway)."""
        home = self._loaded(resident_id)
        if home is not None:
            with home.lock:
                self._apply_home_settings(resident_id, home.monitor)

    def home_settings(self, resident_id: str) -> dict:
        """Away spans, quiet hours (and whether they are the service's default) and the rules'
        tuning from ratings, for one home."""
        quiet = self.live.settings.quiet_hours(resident_id)
        start, end = ((round(self.settings.quiet_start_hour * 60), round(self.settings.quiet_end_hour * 60))
                      if quiet is None else quiet)
        return {
            "resident_id": resident_id,
            "away": [s.to_dict() for s in self.live.settings.away_spans(resident_id)],
            "quiet_hours": {"start": f"{start // 60:02d}:{start % 60:02d}", "end": f"{end // 60:02d}:{end % 60:02d}",
                            "default": quiet is None},
            **self.tuning(resident_id),
        }

    def tuning(self, resident_id: str) -> dict[str, dict[str, float]]:
        """The resident's threshold factors from ratings (1: as learned): per alert kind
        (`tuning`), and no_movement's per rated place and time of day (`cell_tuning`); and how
        many false alarms were rated "out" (`door_missed`: the front door's sensor missed them)."""
        mon = self._home(resident_id).monitor
        return {"tuning": dict(mon.tuning), "cell_tuning": dict(mon.cell_tuning), "door_missed": mon.door_missed}

    # -- the clock -------------------------------------------------------------------------------

    def tick(self) -> dict[str, int]:
        """Advance every home's clock, escalate, open missing visits; returns counts of each."""
        raised: list[tuple[Alert, datetime]] = []
        with self._lock:
            homes = list(self._homes.values())
        for home in homes:
            if home.clock is None or home.position is None:
                continue
            with home.lock:
                now = home.clock + timedelta(seconds=time.monotonic() - home.wall) - self.batch_lag
                if now > home.position:
                    raised += [(a, now) for a in home.monitor.advance(now)]
        stored = self._store_alerts(raised)
        for rid, home in self._homes.copy().items():
            if home.dirty and time.monotonic() - home.rebuilt >= self.days_every:
                with home.lock:
                    self._rebuild(rid, home)
        self.fold_vectors()
        escalated = self.live.escalate_due(self.store.now() - self.escalate_after)
        opened = 0
        for alert in self.live.alerts_without_task(self.store.now() - timedelta(minutes=1)):
            self._open_visit(alert)
            opened += 1
        return {"raised": len(stored), "escalated": len(escalated), "visits_opened": opened}

    def fold_vectors(self) -> int:
        """Serve a new feature vector for each home one of whose live days has ended since its last
        one (`serving.live_features`); a home whose days wait to be rebuilt waits for them. Returns
        how many were built; a home that fails is logged and tried again at the next tick."""
        if self.vectors is None:
            return 0
        built = 0
        for rid, home in self._homes.copy().items():
            if home.dirty:
                continue
            try:
                built += self.vectors.refresh(rid, home.clock) is not None
            except Exception:
                log.exception("live feature vector of %s failed", rid)
        return built

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.tick()
            except Exception:  # keep the clock running whatever one tick met
                log.exception("alert clock tick failed")

    def start(self, interval: float) -> None:
        if interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(interval,), name="alert-clock", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10)

