"""Per-resident hazard alerts from a home's raw sensor events, learned from the resident's own days.

One `ResidentMonitor` per home reads that home's events in time order (`observe`) and is told the
time (`advance`); it returns worded `Alert`s. The same code runs in the service (events arriving
from a gateway) and in `twincare alerts evaluate` / `replay` (a twin's or a real log's events).

What a monitor learns, over a rolling window of its last `history_days` observed days:
- the usual wake time (leaving bed after 04:00 and staying up for 30 minutes);
- the longest stillness after activity in each room by time of day (night when up from bed,
  day), and, in a home with a chair occupancy sensor, the same with bed and chair both empty and
  while sitting in the chair; a limit is the stillness the days' longest would beat about once in
  `stillness_once_in_days` days (an extreme-value fit, never below the longest seen);
- which chair sensors the home has and whether they can be trusted (each fires on most days and
  has not been quiet for longer than it ever is, below: how long a chair may stay unused is
  learned from how it is used; `chair_silent_hours`, off by default, adds a fixed cap); a home may
  have several (an armchair, a chair in the bedroom), each `chair` in the sensor map, each learned
  on its own;
- for each chair and motion sensor, how long it stays quiet while the resident is out of bed and at
  home (the days' longest, the same extreme-value fit): quiet for longer, its battery is taken for
  flat;
- the room the resident usually last moves in before the front door opens;
- whether two people live here (a second person seen on most days: motion elsewhere while the
  resident lies in bed or sits in a chair) and, if so, the longest stillness while it was not
  known who was at home (after the front door, below);
- night-time toilet visits (22:00-06:00) and front-door exits at night.
No alert is raised during the first `learning_days` observed days.

The rules (each threshold times `sensitivity` and the resident's rating-tuned factor: for
`no_movement`, the factor of the place and time of day of the stillness that was rated, so a false
alarm after the hall's stillness in the day makes that wait longer, not the bedroom's at night):
- `no_movement`: awake, at home and the gateway alive, but no movement for longer than the limit
  of the room and time of day. With a trusted chair sensor the limit depends on where the
  resident is: bed and chair empty (someone lying on the floor), the short limit learned for
  that case; sitting in a chair, that chair's limit times `seated_margin`. Without one (or with
  one gone quiet) stillness after motion may be a doze in a chair, so the limit is the room's
  longest with dozes included. After the room the resident usually leaves home from, the limit
  is times `entrance_margin` (the door event of an outing may have been missed). When a second
  person was seen lately (motion elsewhere while the resident lies in bed or sits in the chair)
  the stillness may be theirs: the limit is at least the chair's, times `company_margin`.
  In a home two live in, the front door opening and then movement means one of them went out
  (or came back) and it is not known who: the one moving may be the other person, whose
  stillness is no sign of the resident. Until the door and movement come again (back in) or the
  resident is seen in bed or in a chair, the limit is at least the longest stillness usual at such
  times in that home, times `company_margin` (too few such days: the longest usual sit, times it).
  During the day, while a motion sensor is taken for flat, the resident may be moving in its room
  unseen: the limit is at least that room's.
  Stillness after getting out of bed counts too (a fall on the way to the toilet);
- `not_up`: still in bed later than the resident's usual latest wake time plus a margin;
- `night_exit`: the front door at night and no one moving at home since (unless night exits are
  usual for this resident);
- `toilet_surge`: more night-time toilet visits than the resident's usual high.
Quiet hours hold the non-urgent kind (`toilet_surge`) until they end; away spans (`set_away`)
and time after a front-door event with no movement (out of home) raise nothing; a silent gateway
(no event of any kind for `offline_minutes`) raises nothing, and since where the resident is
(in bed? in the chair?) is then unknown, stillness counts again from the next sign of them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from twin.ingest_events import (  # what a sensor line says when it fires or rests
    OFF_VALUES,
    ON_VALUES,
)

ALERT_KINDS = ("no_movement", "not_up", "night_exit", "toilet_surge")
URGENT_KINDS = frozenset({"no_movement", "not_up", "night_exit"})
# the planted incident each alert kind is meant to catch
INCIDENT_OF = {
    "no_movement": "fall_long_lie",
    "not_up": "not_up",
    "night_exit": "night_exit",
    "toilet_surge": "toilet_surge",
}
# why a false alarm was false, when the care manager says: "out", the resident was out of the
# home (the front door's sensor missed the opening)
RATING_REASONS = ("out",)
MOTION_ROLES = frozenset({"toilet", "bathroom", "kitchen", "living", "bedroom", "motion"})
# a motion sensor's role in the words a care manager reads (the role `motion` is the hall's, or
# another room's without a role of its own: the sensor map's `hall`, `hallway`, `other motion`)
ROOM_WORDS = {"motion": "hall", "living": "living room"}
TOILET_ROLES = frozenset({"toilet", "bathroom"})
DAY = 86400.0


@dataclass(frozen=True)
class AlertSettings:
    """How cautious the rules are; `sensitivity` above 1 waits longer (fewer, later alerts)."""

    sensitivity: float = 1.0
    learning_days: int = 14
    history_days: int = 28
    min_days_per_cell: int = 5
    stillness_floor_minutes: float = 15.0
    stillness_once_in_days: float = 90.0  # a limit is the stillness a day's longest beats this rarely
    seated_margin: float = 1.5  # in the chair (seen by its sensor): the usual longest times this
    company_minutes: float = 60.0  # someone else was seen this recently: stillness may be theirs
    company_margin: float = 2.0  # ... and the limit is the usual longest anywhere times this
    shared_days_share: float = 0.5  # a second person seen on this share of the days: two live here
    entrance_margin: float = 1.5  # last movement where one leaves home from: it may be an outing
    wake_margin_minutes: float = 30.0
    exit_confirm_minutes: float = 10.0
    away_confirm_minutes: float = 10.0
    toilet_margin: float = 2.0
    offline_minutes: float = 45.0
    chair_days_share: float = 0.5  # the chair sensor counts when it fired on this share of the days
    chair_every_day_share: float = 0.9  # ... and is sat in every day when it fired on this share
    # ... and fired within these hours; None: only its own learned longest quiet says its
    # battery is flat (a fixed 36 hours made a chair used two days in three untrusted on the
    # third, and stillness in its room waited for the room's longest, sits included)
    chair_silent_hours: float | None = None
    quiet_start_hour: float = 22.0
    quiet_end_hour: float = 7.0
    night_start_hour: float = 22.0
    night_end_hour: float = 6.0
    exit_start_hour: float = 23.0
    usual_night_exits_per_week: float = 1.0

    def __post_init__(self) -> None:
        if not self.sensitivity > 0:
            raise ValueError("sensitivity must be positive")
        if self.learning_days < 1 or self.history_days < self.learning_days:
            raise ValueError("need 1 <= learning_days <= history_days")


@dataclass(frozen=True)
class StillRule:
    """The limit of a stillness under way and what set it (`ResidentMonitor.still_rule`)."""

    limit: float  # seconds after the last movement
    usual: float  # the learned stillness it comes from, before margins and sensitivity
    night: bool
    unseated: bool  # a trusted chair sensor says bed and chairs are empty
    entrance: bool  # after the room the resident leaves home from
    company: bool  # someone else was seen lately
    blind_room: str | None  # a room whose motion sensor went quiet made it wait
    unsure: bool  # after the front door in a home of two: who is at home is not known
    cell: str  # the place and time of day whose limit it is (`stillness_cell`): what a rating tunes


@dataclass(frozen=True)
class Alert:
    """One raised alert: what, when it was raised, since when the sign has been seen, in words."""

    resident_id: str
    kind: str
    at: datetime
    since: datetime
    text: str
    # no_movement: the place and time of day whose limit the stillness passed (`stillness_cell`),
    # which a rating of the alert tunes
    cell: str | None = None

    @property
    def urgent(self) -> bool:
        return self.kind in URGENT_KINDS

    def to_dict(self) -> dict:
        return {"resident_id": self.resident_id, "kind": self.kind, "at": self.at.isoformat(timespec="seconds"),
                "since": self.since.isoformat(timespec="seconds"), "text": self.text, "urgent": self.urgent,
                "cell": self.cell}


@dataclass
class _Day:
    wake: float | None = None  # seconds after midnight
    stillness: dict[tuple[str, int], float] = field(default_factory=dict)  # (room, block) -> longest, s
    unseated: dict[tuple[str, int], float] = field(default_factory=dict)  # the same, nobody in bed or chair
    chairs: set[str] = field(default_factory=set)  # the chair sensors that fired
    sat_from: dict[tuple[str, str], int] = field(default_factory=dict)  # (chair, room moved in before sitting) -> sits
    before_door: dict[str, int] = field(default_factory=dict)  # room of the last movement before the front door
    night_toilet: int | None = None
    night_exits: int = 0
    company: bool = False  # a second person was seen
    quiet: dict[str, float] = field(default_factory=dict)  # sensor -> longest awake time at home between its events, s
    unsure: float | None = None  # longest stillness while it was not known who was at home, s
    # stillness that raised a no_movement alert, kept apart: (room/block key, seconds, whether bed
    # and chairs were seen empty, when it began); learned unless a care manager rated it a fall
    alerted: list[tuple[tuple[str, int], float, bool, int]] = field(default_factory=list)
    active: bool = False


@dataclass(frozen=True)
class Profile:
    """What a resident's own history says is usual (what the thresholds are made of)."""

    days: int
    wake_usual: float | None
    wake_late: float | None
    chair_days: int  # days any chair sensor fired
    company_days: int  # days a second person was seen
    chairs: dict[str, int]  # days each chair sensor fired
    chair_rooms: dict[str, str]  # the room one usually moves in before sitting in each chair
    entrance: str | None  # the room a resident usually last moves in before the front door opens
    toilet_usual: float | None
    toilet_high: float | None
    night_exits_per_week: float

    @classmethod
    def learn(cls, days: Iterable[_Day]) -> Profile:
        days = [d for d in days if d.active]
        wakes = [d.wake for d in days if d.wake is not None]
        toilets = [d.night_toilet for d in days if d.night_toilet is not None]
        return cls(
            days=len(days),
            wake_usual=_quantile(wakes, 0.5) if wakes else None,
            wake_late=_quantile(wakes, 0.9) if len(wakes) >= 3 else None,
            chair_days=sum(bool(d.chairs) for d in days),
            company_days=sum(d.company for d in days),
            chairs=_day_counts([d.chairs for d in days]),
            chair_rooms=_chair_rooms([d.sat_from for d in days]),
            entrance=_most_common([d.before_door for d in days]),
            toilet_usual=_quantile(toilets, 0.5) if toilets else None,
            toilet_high=_quantile(toilets, 0.95) if len(toilets) >= 3 else None,
            night_exits_per_week=7.0 * sum(d.night_exits for d in days) / max(len(days), 1),
        )


def _day_counts(sets: list[set[str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for names in sets:
        for k in names:
            out[k] = out.get(k, 0) + 1
    return out


def _chair_rooms(counts: list[dict[tuple[str, str], int]]) -> dict[str, str]:
    by_chair: dict[str, dict[str, int]] = {}
    for c in counts:
        for (chair, room), n in c.items():
            by_chair.setdefault(chair, {})[room] = by_chair.get(chair, {}).get(room, 0) + n
    return {chair: max(rooms, key=lambda r: (rooms[r], r)) for chair, rooms in by_chair.items()}


def _most_common(counts: list[dict[str, int]]) -> str | None:
    total: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    return max(total, key=lambda k: (total[k], k)) if total else None


def _rare_longest(daily: list[float], once_in_days: float) -> float:
    """The stillness a day's longest would beat about once in `once_in_days` days: a Gumbel
    (extreme-value) fit to the days' longest by moments, never below the longest seen."""
    n = len(daily)
    mean = sum(daily) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in daily) / max(n - 1, 1))
    beta = sd * math.sqrt(6) / math.pi
    mu = mean - 0.5772 * beta
    return max(mu - beta * math.log(-math.log(1 - 1 / once_in_days)), max(daily))


def _tuned(factor: float, real: bool) -> float:
    """A threshold factor after one rating: 1.25 times longer after a false alarm, 0.9 after a
    real one, kept within 0.7-3."""
    return float(min(max(factor * (0.9 if real else 1.25), 0.7), 3.0))


def _quantile(values: list, q: float) -> float:
    """Linear-interpolation quantile (numpy's default), without numpy's per-call overhead."""
    v = sorted(values)
    pos = (len(v) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return float(v[lo] + (v[hi] - v[lo]) * (pos - lo))


def _clock(t: float) -> str:
    s = int(t % DAY)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}"


def _duration(seconds: float) -> str:
    m = int(round(seconds / 60))
    return f"{m} min" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def _chair_place(sensor: str) -> str:
    """Where a resident sits on a chair sensor, as a place whose stillness is learned."""
    return f"chair {sensor}"


def room_words(role: str) -> str:
    """A motion sensor's role as the room it watches, e.g. `living` -> "living room"."""
    return ROOM_WORDS.get(role, role.replace("_", " "))


def _is_room(place: str | None) -> bool:
    """A room seen by motion (not the door, the bed or a chair)."""
    return place is not None and place not in ("front_door", "bed") and not place.startswith("chair ")


def _block(t: float) -> int:
    return int((t % DAY) // 21600.0)


def stillness_cell(place: str, night: bool) -> str:
    """The key of a place's stillness limit at night (up from bed, 00:00-06:00) or in the day:
    what a `no_movement` alert names as its `cell` and a rating of it tunes."""
    return f"{place}/{'night' if night else 'day'}"


class ResidentMonitor:
    """The alert rules for one home; feed it that home's events in time order."""

    def __init__(self, resident_id: str, sensor_roles: Mapping[str, str], settings: AlertSettings | None = None,
                 *, epoch: datetime = datetime(2000, 1, 1), tuning: Mapping[str, float] | None = None):
        self.resident_id = resident_id
        self.roles = dict(sensor_roles)
        self.settings = settings or AlertSettings()
        self.epoch = epoch
        self.tuning = {k: 1.0 for k in ALERT_KINDS} | dict(tuning or {})
        self.cell_tuning: dict[str, float] = {}  # no_movement's factor per rated cell (`stillness_cell`)
        self.door_missed = 0  # false alarms rated "out": the front door's sensor missed the outing
        self.history: deque[_Day] = deque(maxlen=self.settings.history_days)
        self.profile = Profile.learn([])
        self.away: list[tuple[float, float]] = []
        self._day: int | None = None
        self._today = _Day()
        self._night_toilet: dict[int, int] = {}
        self._last_any: float | None = None
        self._last_move: float | None = None
        self._room: str | None = None
        self._in_bed = False
        self._seat: str | None = None  # the chair sensor the resident sits on
        self._seat_stale = False  # ... sat down before a silent gateway: the getting up may be lost
        self._chair_at: dict[str, float] = {}  # last event of each chair sensor
        self._awake = 0.0  # seconds out of bed and at home so far (the gateway alive)
        self._awake_move = 0.0  # ... at the last movement
        self._awake_at: dict[str, float] = {}  # ... at each chair or motion sensor's last event
        self._quiet_limits: dict[str, float | None] = {}
        self._chair_room: str | None = None  # where the resident moved last before sitting down
        self._company_at: float | None = None  # last sign of a second person at home
        self._unsure_at: float | None = None  # front door of a shared home, then motion: who went out?
        self._doors = 0  # front-door openings since the last movement
        self._bed_since: float | None = None
        self._door: float | None = None  # last front-door event not yet followed by movement
        self._wake_candidate: float | None = None
        self._toilet_end = -math.inf
        self._alerted: set[tuple[str, float]] = set()
        # when no_movement alerts rated real (a fall) or "out" (nobody at home) began, whole
        # seconds: stillness not to learn as the room's usual
        self.confirmed: set[int] = set()
        self._held: list[Alert] = []
        self._usual: dict[tuple[str | None, bool, bool], float | None] = {}
        self._bed_off_at: float | None = None

    # -- time ----------------------------------------------------------------------------------

    def seconds(self, t: datetime) -> float:
        return (t - self.epoch).total_seconds()

    def when(self, s: float) -> datetime:
        return self.epoch + timedelta(seconds=round(s))

    @property
    def learning(self) -> bool:
        """True while the resident has fewer observed days than the learning period."""
        return self.profile.days < self.settings.learning_days

    # -- configuration -------------------------------------------------------------------------

    def set_away(self, start: datetime, end: datetime) -> None:
        """Away mode: nothing is raised between start and end (a stay with family, hospital)."""
        self.away.append((self.seconds(start), self.seconds(end)))

    def rate(self, kind: str, real: bool, since: datetime | None = None, cell: str | None = None,
             reason: str | None = None) -> float:
        """A care manager's rating of an alert: a false alarm makes it wait longer for this
        resident, a real one a little less. A no_movement alert's rating tunes the limit of its
        `cell` (the place and time of day of the stillness) alone: a false alarm there says that
        stillness was this resident's routine, not that their stillness anywhere is; tuning the
        whole kind on each one raised every limit of a home after a missed door event or a nap
        (measured in docs/results/alerts.md). A no_movement alert rated real (given when its
        stillness began) was a fall: that lie is not learned as the room's usual stillness, or the
        next fall there would wait as long. Other kinds, and a no_movement alert without a cell
        (stored before cells were), tune the kind. A false alarm rated with the reason "out" (the
        resident was out: the front door's sensor missed the opening) tunes nothing and is not
        learned as the room's stillness, since it was nobody's, and is counted against the door's
        sensor (`door_missed`).
        Returns the factor after the rating."""
        if kind not in ALERT_KINDS:
            raise ValueError(f"unknown alert kind {kind!r}")
        if reason is not None and reason not in RATING_REASONS:
            raise ValueError(f"unknown rating reason {reason!r}; known: {', '.join(RATING_REASONS)}")
        if reason == "out" and not real:
            self.door_missed += 1
            if kind == "no_movement" and since is not None:  # nobody's stillness: not to learn
                self.confirmed.add(round(self.seconds(since)))
                self._usual = {}
            return self.cell_tuning.get(cell, 1.0) if kind == "no_movement" and cell else self.tuning[kind]
        if real and kind == "no_movement" and since is not None:
            self.confirmed.add(round(self.seconds(since)))
            self._usual = {}
        if kind == "no_movement" and cell:
            self.cell_tuning[cell] = _tuned(self.cell_tuning.get(cell, 1.0), real)
            return self.cell_tuning[cell]
        self.tuning[kind] = _tuned(self.tuning[kind], real)
        return self.tuning[kind]

    # -- thresholds ----------------------------------------------------------------------------

    def _factor(self, kind: str) -> float:
        return self.settings.sensitivity * self.tuning[kind]

    def _still_factor(self, place: str | None, night: bool) -> float:
        """no_movement's factor for stillness at `place` (room or chair) by night or day."""
        tuned = self.cell_tuning.get(stillness_cell(place, night), 1.0) if place and self.cell_tuning else 1.0
        return self._factor("no_movement") * tuned

    def stillness_limit(self, room: str | None, t: float, *, unseated: bool = False) -> float | None:
        """Seconds of stillness after activity in `room` at time t that raise `no_movement`:
        the longest usual there at night (00:00-06:00), or during the day; with `unseated`, the
        longest usual there while nobody was in bed or in the chair."""
        usual = self._usual_stillness(room, _block(t), unseated)
        if usual is None:
            return None
        return max(usual, self.settings.stillness_floor_minutes * 60) * self._still_factor(room, _block(t) == 0)

    def _usual_stillness(self, room: str | None, block: int, unseated: bool = False) -> float | None:
        key = (room, block == 0, unseated)
        if key not in self._usual:
            self._usual[key] = self._learn_usual(room, block == 0, unseated)
        return self._usual[key]

    def _learn_usual(self, room: str | None, night: bool, unseated: bool) -> float | None:
        """The longest stillness this resident has (rarely) after activity in the room at that
        time of day: from the days' longest there, or in the room at any time, or anywhere, as
        the days with such stillness allow."""
        if room is None:
            return None
        blocks = (0,) if night else (1, 2, 3)
        tables = [self._learned_stillness(d, unseated) for d in self.history if d.active]
        for fits in (lambda k: k[0] == room and k[1] in blocks, lambda k: k[0] == room, lambda k: True):
            daily = [max(v for k, v in t.items() if fits(k)) for t in tables if any(fits(k) for k in t)]
            if (usual := self._rare(daily)) is not None:
                return usual
        return None

    def _rare(self, daily: list[float]) -> float | None:
        """What the days' longest would beat about once in `stillness_once_in_days` days
        (`_rare_longest`); None with fewer than `min_days_per_cell` days to learn from."""
        if len(daily) < self.settings.min_days_per_cell:
            return None
        return _rare_longest(daily, self.settings.stillness_once_in_days)

    def _learned_stillness(self, day: _Day, unseated: bool) -> dict[tuple[str, int], float]:
        """A day's longest stillness per room and block, with the alerted ones not rated a fall."""
        table = dict(day.unseated if unseated else day.stillness)
        for key, gap, empty, since in day.alerted:
            if since not in self.confirmed and (empty or not unseated) and gap > table.get(key, 0.0):
                table[key] = gap
        return table

    @property
    def _seated(self) -> bool:
        return self._seat is not None

    def chairs(self) -> list[str]:
        """The home's chair sensors: those that fired on most of the learned days."""
        p = self.profile
        return sorted(k for k, n in p.chairs.items() if n >= self.settings.chair_days_share * p.days)

    def has_chair(self, s: float, room: str | None = None) -> bool:
        """Whether this home's chair sensors can be trusted at time s: each fired on most of the
        learned days and lately (a home without one, or with one whose battery is flat, falls back
        on the stillness learned from motion alone). After motion in `room`, only the chairs one
        sits in from that room count: someone last seen in the hall is not sitting unseen in the
        bedroom's chair, whose motion sensor they would have passed."""
        hours = self.settings.chair_silent_hours
        limit = math.inf if hours is None else hours * 3600
        chairs = self.chairs()
        if _is_room(room):
            near = self.profile.chair_rooms
            watched = [k for k in chairs if near.get(k, room) == room]
        else:
            watched = chairs
        return bool(chairs) and all(s - self._chair_at.get(k, -math.inf) <= limit and not self.gone_quiet(k, s)
                                    for k in watched)

    def gone_quiet(self, sensor: str, s: float) -> bool:
        """Whether a chair or motion sensor has been quiet, at time s (now, or the last movement),
        for longer than the resident, out of bed and at home, has ever (rarely) left it: a flat
        battery. Learned per sensor from the days' longest such quiet."""
        since = self._awake_at.get(sensor)
        if since is None:
            return False
        if sensor not in self._quiet_limits:
            self._quiet_limits[sensor] = self._rare([d.quiet[sensor] for d in self.history
                                                     if d.active and sensor in d.quiet])
        limit = self._quiet_limits[sensor]
        return limit is not None and self._awake_by(s) - since > limit

    def _blind(self, s: float) -> list[str]:
        """The rooms whose motion sensor has gone quiet at time s (`gone_quiet`)."""
        return sorted({r for k, r in self.roles.items() if r in MOTION_ROLES and self.gone_quiet(k, s)})

    def _awake_by(self, s: float) -> float:
        """Seconds out of bed and at home up to time s (taken as such since the last movement)."""
        if self._last_any is None or s >= self._last_any or self._last_move is None:
            return self._awake
        return min(self._awake, self._awake_move + s - self._last_move)

    def _chair_limit(self, t: float) -> float | None:
        """The longest usual sit in any of the home's chairs (someone may be sitting in one)."""
        limits = [x for x in (self.stillness_limit(_chair_place(k), t) for k in self.profile.chairs) if x is not None]
        return max(limits) if limits else None

    def _unsure_limit(self, t: float) -> float | None:
        """In a home two live in, after the front door it is not known who went out: the longest
        stillness usual at such times (learned from the home's days), or, with too few of those,
        the longest usual sit anywhere times `company_margin`."""
        usual = self._rare([d.unsure for d in self.history if d.active and d.unsure is not None])
        if usual is not None:
            return usual * self._factor("no_movement") * self.settings.company_margin
        sits = self._chair_limit(t) if self.profile.chair_days else None
        sits = sits or self.stillness_limit(self._room, t)
        return None if sits is None else sits * self.settings.company_margin

    def _toilet_limit(self) -> float | None:
        p = self.profile
        if p.toilet_high is None:
            return None
        return max(p.toilet_high + self.settings.toilet_margin * self._factor("toilet_surge"),
                   2 * (p.toilet_usual or 0) + 1)

    # -- events --------------------------------------------------------------------------------

    def observe(self, t: datetime | float, sensor: str, value: str) -> list[Alert]:
        """Take one event (in time order); returns the alerts due up to and including it."""
        s = t if isinstance(t, float | int) else self.seconds(t)
        s = float(s)
        out = self.advance(s)
        self._roll(s)
        role = self.roles.get(sensor)
        v = str(value).upper()
        if self._last_any is not None and s - self._last_any > self.settings.offline_minutes * 60 \
                and self._last_move is not None:
            # the gateway was silent: where the resident is (in bed? in the chair?) is unknown, so
            # stillness counts again from the next sign of them
            self._last_move, self._room = s, None
            self._seat_stale = self._seat is not None
        elif self._last_any is not None and not self._in_bed and self._door is None:
            self._awake += s - self._last_any
        self._last_any = s
        if role is None or (v not in ON_VALUES and v not in OFF_VALUES):
            return out  # readings (temperature) and unmapped sensors only show the gateway is alive
        self._today.active = True
        if role == "chair" or role in MOTION_ROLES:
            if sensor in self._awake_at:
                q = self._awake - self._awake_at[sensor]
                self._today.quiet[sensor] = max(self._today.quiet.get(sensor, 0.0), q)
            self._awake_at[sensor] = self._awake
        if role == "front_door":
            if _is_room(self._room) and s - (self._last_move or s) < 300:
                self._today.before_door[self._room] = self._today.before_door.get(self._room, 0) + 1
            self._door = s
            if v in ON_VALUES:
                self._doors += 1
            self._move(s, "front_door", record=False)
            return out
        if role == "chair":
            if self._door is not None and self._is_away(s) and self._is_night(self._door, exit_hours=True):
                self._today.night_exits += 1
            self._door, self._doors = None, 0
            self._today.chairs.add(sensor)
            self._chair_at[sensor] = s
            if v in ON_VALUES and _is_room(self._room):
                self._chair_room = self._room
                key = (sensor, self._room)
                self._today.sat_from[key] = self._today.sat_from.get(key, 0) + 1
            self._move(s, _chair_place(sensor), record=not self._in_bed)  # the stillness before it, seated or not
            self._unsure_at = None  # the resident sits or gets up: they are at home
            if v in ON_VALUES:
                self._seat = sensor
            elif self._seat == sensor:
                self._seat = None
            self._seat_stale = False
            return out
        if role == "bed":
            if v in ON_VALUES and not self._in_bed:
                # back within 30 minutes (a toilet visit): still the same night in bed
                short = self._bed_off_at is not None and s - self._bed_off_at < 30 * 60
                if not (short and self._bed_since is not None):
                    self._bed_since = s
                self._in_bed = True
                self._seat = None  # whoever lies down is no longer sitting (a chair's getting up may have been lost)
                self._wake_candidate = None
            elif v in OFF_VALUES and self._in_bed:
                self._in_bed, self._bed_off_at = False, s
                tod = s % DAY
                if 4 * 3600 <= tod < 13 * 3600 and self._today.wake is None:
                    self._wake_candidate = s
            self._move(s, "bed", record=False)  # in bed until now, or lying down
            self._unsure_at = None  # the resident lies down or gets up: they are at home
            return out
        if role not in MOTION_ROLES:
            return out
        if self._door is not None and self._is_away(s) and self._is_night(self._door, exit_hours=True):
            self._today.night_exits += 1
        if self._door is not None:
            self._after_door()
        self._door, self._doors = None, 0
        if v in ON_VALUES:
            self._see_company(s, role)
        if role in TOILET_ROLES and v in ON_VALUES:
            if s - self._toilet_end > 5 * 60 and self._is_night(s):
                night = int((s + (24 - self.settings.night_start_hour) * 3600) // DAY)
                self._night_toilet[night] = self._night_toilet.get(night, 0) + 1
                out += self._check_toilet(s, night)
            self._toilet_end = s
        elif role in TOILET_ROLES:
            self._toilet_end = s
        self._move(s, role, record=not self._in_bed)
        return out

    def _see_company(self, s: float, room: str) -> None:
        """A second person moves here: motion elsewhere while the resident lies in bed or sits in
        the chair. (Motion in two rooms within seconds is not used: one person sets off two
        sensors at a doorway, and the twin's resident does too.)"""
        if self._seat_stale and not self._in_bed and room != self._chair_room:
            # seated since before the gateway went silent: its getting up may have been lost, so
            # movement elsewhere is the resident's own (taken for someone else's, a fall after it
            # waited as long as a sit)
            self._seat, self._seat_stale = None, False
            return
        if (self._in_bed and room != "bedroom") or (
                self._seated and self._chair_room is not None and room != self._chair_room
                and self.has_chair(s, self._chair_room)):
            self._company_at = s
            self._today.company = True

    @property
    def shared(self) -> bool:
        """Whether two people live here: a second person was seen on most of the learned days."""
        p = self.profile
        return p.days > 0 and p.company_days >= self.settings.shared_days_share * p.days

    def _after_door(self) -> None:
        """Movement after the front door opened. In a home two live in, one opening (or three)
        means one of them went out and the other moves, or one came back; which one is not known
        until the resident lies in bed or sits in a chair. An opening to go out and one to come
        back in before anything moves leave things as they were."""
        if self._doors % 2 and self.shared:
            self._unsure_at = None if self._unsure_at is not None else self._door

    def _cell(self, t: float) -> int:
        """Block of the day of a moment; the night block only when up from bed in the night."""
        b = _block(t)
        if b == 0 and not (self._bed_off_at is not None and 0 <= t - self._bed_off_at < 3 * 3600):
            return 1
        return b

    def _move(self, s: float, room: str, *, record: bool) -> None:
        # stillness after activity in a room, after sitting down or getting up from the chair, or
        # after getting out of bed ("bed" when no longer in it)
        if record and self._last_move is not None and self._room not in (None, "front_door"):
            gap = s - self._last_move
            if self._unsure_at is not None:  # who was at home is not known: it may be the other person's
                self._today.unsure = max(self._today.unsure or 0.0, gap)
            key = (_chair_place(self._seat) if self._seat is not None else self._room, self._cell(self._last_move))
            empty = not self._seated and self.has_chair(self._last_move, self._room)
            if ("no_movement", self._last_move) in self._alerted:  # a fall? the rating will say
                self._today.alerted.append((key, gap, empty, round(self._last_move)))
            else:
                if gap > self._today.stillness.get(key, 0.0):
                    self._today.stillness[key] = gap
                if empty and gap > self._today.unseated.get(key, 0.0):
                    self._today.unseated[key] = gap
        self._last_move, self._room, self._awake_move = s, room, self._awake

    def _is_away(self, s: float) -> bool:
        return self._door is not None and s - self._door >= self.settings.away_confirm_minutes * 60

    def _is_night(self, s: float, exit_hours: bool = False) -> bool:
        h = (s % DAY) / 3600
        start = self.settings.exit_start_hour if exit_hours else self.settings.night_start_hour
        return h >= start or h < self.settings.night_end_hour

    def _in_away_mode(self, s: float) -> bool:
        return any(a <= s < b for a, b in self.away)

    def _roll(self, s: float) -> None:
        day = int(s // DAY)
        if self._day is None:
            self._day = day
            return
        if day == self._day:
            return
        self._today.night_toilet = self._night_toilet.pop(self._day, 0 if self._today.active else None)
        self._distrust_silent_chairs(self._today)
        self.history.append(self._today)
        self.profile = Profile.learn(self.history)
        self._usual = {}
        self._quiet_limits = {}
        self._today = _Day()
        self._day = day
        self._night_toilet = {k: v for k, v in self._night_toilet.items() if k >= day - 1}

    def _distrust_silent_chairs(self, day: _Day) -> None:
        """A day a chair sat in nearly every day never fired (a flat battery?): its sits looked like
        stillness with every chair empty, so that day's stillness is learned only as stillness,
        not as the short stillness of someone neither sitting nor lying (a day-long sit in a silent
        armchair taught a living room a limit of hours, and a fall there days later went unseen)."""
        p = self.profile
        if not day.active or p.days < self.settings.min_days_per_cell:
            return
        daily = [k for k, n in p.chairs.items() if n >= self.settings.chair_every_day_share * p.days]
        if any(k not in day.chairs for k in daily):
            day.unseated = {}
            day.alerted = [(key, gap, False, since) for key, gap, _empty, since in day.alerted]

    # -- rules ---------------------------------------------------------------------------------

    def _raise(self, kind: str, at: float, since: float, text: str, cell: str | None = None) -> list[Alert]:
        key = (kind, since)
        if key in self._alerted or self.learning or self._in_away_mode(at):
            return []
        self._alerted.add(key)
        if len(self._alerted) > 256:
            self._alerted = {k for k in self._alerted if k[1] > at - 2 * DAY}
        alert = Alert(self.resident_id, kind, self.when(at), self.when(since), text, cell)
        if kind not in URGENT_KINDS and self._quiet(at):
            self._held.append(alert)
            return []
        return [alert]

    def _quiet(self, s: float) -> bool:
        h = (s % DAY) / 3600
        qs, qe = self.settings.quiet_start_hour, self.settings.quiet_end_hour
        return (h >= qs or h < qe) if qs > qe else (qs <= h < qe)

    def _online_at(self, s: float) -> bool:
        return self._last_any is not None and s - self._last_any <= self.settings.offline_minutes * 60

    def advance(self, now: datetime | float) -> list[Alert]:
        """Alerts due by `now` given the events seen so far (call it as time passes)."""
        s = float(now if isinstance(now, float | int) else self.seconds(now))
        out: list[Alert] = []
        if self._wake_candidate is not None and not self._in_bed and s - self._wake_candidate >= 30 * 60:
            if int(self._wake_candidate // DAY) == self._day:
                self._today.wake = self._wake_candidate % DAY
            self._wake_candidate = None
        if self.learning or self._last_any is None:
            return self._release(s)
        out += self._check_still(s)
        out += self._check_not_up(s)
        out += self._check_exit(s)
        return out + self._release(s)

    def _release(self, s: float) -> list[Alert]:
        if not self._held or self._quiet(s):
            return []
        held, self._held = self._held, []
        end = self.settings.quiet_end_hour * 3600
        return [replace(a, at=max(a.at, self.when(s // DAY * DAY + end)))
                if a.at < self.when(s // DAY * DAY + end) else a for a in held]

    def still_rule(self) -> StillRule | None:
        """The limit of the stillness under way since the last movement, and what set it (None
        when no stillness is watched: in bed, out of the door, no movement yet or no limit
        learned)."""
        if self._in_bed or self._door is not None or self._last_move is None or self._room is None:
            return None
        # with a chair sensor, bed and chair both empty: only the stillness usual when not sitting
        cell = self._cell(self._last_move)
        at, night = cell * 21600.0, cell == 0
        chair = self.has_chair(self._last_move, self._room)
        unseated = chair and not self._seated
        place = _chair_place(self._seat) if chair and self._seat is not None else self._room
        if chair and self._seat is not None:
            limit = self.stillness_limit(place, at)
            limit = None if limit is None else limit * self.settings.seated_margin
        else:
            limit = self.stillness_limit(self._room, at, unseated=unseated)
            if not chair and self.profile.chair_days and limit is not None:
                # the home's chair sensor has gone quiet (a flat battery?): it may be sitting there
                limit = max(limit, self._chair_limit(at) or 0.0)
        if limit is None:
            return None
        entrance = self._room == self.profile.entrance and not self._seated
        if entrance:
            limit *= self.settings.entrance_margin  # an outing whose door event was missed?
        company = self._company_at is not None and \
            self._last_move - self._company_at <= self.settings.company_minutes * 60
        if company:  # the stillness may be the other person's: wait as long as for sitting, and more
            sits = self._chair_limit(at) if chair or self.profile.chair_days else self.stillness_limit(self._room, at)
            limit = max(limit, sits or 0.0) * self.settings.company_margin
        usual = limit / self._still_factor(place, night) / (self.settings.seated_margin if chair and self._seated else 1)
        usual /= self.settings.company_margin if company else 1
        usual /= self.settings.entrance_margin if entrance else 1
        # a motion sensor gone quiet (a flat battery?): in the day the resident may be moving in its
        # room unseen (up at night, they go to the toilet and back to bed)
        blind = [] if night else [(x, r) for r in self._blind(self._last_move)
                                  if (x := self.stillness_limit(r, at, unseated=unseated)) is not None and x > limit]
        blind_room = max(blind)[1] if blind else None
        limit = max([limit] + [x for x, _ in blind])
        unsure = self._unsure_at is not None
        if unsure:  # the resident may have gone out and the stillness be the other person's
            limit = max(limit, self._unsure_limit(at) or 0.0)
        return StillRule(limit, usual, night, unseated, entrance, company, blind_room, unsure,
                         stillness_cell(place, night))

    def _check_still(self, s: float) -> list[Alert]:
        rule = self.still_rule()
        if rule is None:
            return []
        due = self._last_move + rule.limit
        if s < due or not self._online_at(due):
            return []
        where = "when up at night" if rule.night else "during the day"
        last = f"last in the {room_words(self._room)}"
        several = len(self.chairs()) > 1
        chair_words = f"the chair in the {room_words(self._chair_room)}" if several and self._chair_room else "the chair"
        if self._seated:
            last = f"sitting in {chair_words}"
        elif self._room == "bed":
            last = "got up from the bed"
        elif not _is_room(self._room):
            last = f"got up from {chair_words}"
        if rule.unseated:
            empty = "bed and chairs empty" if several else "bed and chair empty"
            text = (f"no movement since {_clock(self._last_move)} ({last}), {empty}; "
                    f"usually still for at most {_duration(rule.usual)} there {where} when not sitting or lying")
        else:
            text = (f"no movement since {_clock(self._last_move)} ({last}); "
                    f"usually still for at most {_duration(rule.usual)} there {where}")
        if rule.entrance:
            text += "; waited longer, as the resident usually leaves home from there"
        if rule.blind_room is not None:
            text += (f"; the {room_words(rule.blind_room)}'s sensor has been quiet for longer than ever (a flat "
                     f"battery?), so the resident may be there unseen: waited {_duration(rule.limit)}, as for stillness there")
        if rule.company:
            text += f"; someone else was at home at {_clock(self._company_at)}"
        if rule.unsure:
            text += (f"; someone went out or came in by the front door at {_clock(self._unsure_at)} and it is not "
                     f"known who is at home: waited {_duration(rule.limit)}, as for the stillness usual then")
        return self._raise("no_movement", due, self._last_move, text, cell=rule.cell)

    def _check_not_up(self, s: float) -> list[Alert]:
        p = self.profile
        if not self._in_bed or self._bed_since is None or p.wake_late is None:
            return []
        day0 = s // DAY * DAY
        if self._bed_since >= day0 + 4 * 3600 or self._today.wake is not None:
            return []
        margin = self.settings.wake_margin_minutes * 60 * self._factor("not_up")
        due = day0 + p.wake_late + margin
        if s < due or not self._online_at(due) or due < self._bed_since:
            return []
        text = f"still in bed at {_clock(due)}; usually up by {_clock(p.wake_late)}"
        return self._raise("not_up", due, day0 + p.wake_late, text)

    def _check_exit(self, s: float) -> list[Alert]:
        if self._door is None or not self._is_night(self._door, exit_hours=True):
            return []
        if self.profile.night_exits_per_week >= self.settings.usual_night_exits_per_week:
            return []
        due = self._door + self.settings.exit_confirm_minutes * 60 * self._factor("night_exit")
        if s < due or not self._online_at(due):
            return []
        text = f"front door opened at {_clock(self._door)} and no movement at home since"
        return self._raise("night_exit", due, self._door, text)

    def _check_toilet(self, s: float, night: int) -> list[Alert]:
        limit = self._toilet_limit()
        n = self._night_toilet[night]
        if limit is None or n <= limit or self.learning:
            return []
        lo = int(self.profile.toilet_usual or 0)
        hi = int(math.ceil(self.profile.toilet_high or 0))
        usual = f"{lo}" if lo == hi else f"{lo}-{hi}"
        text = f"{n} toilet visits tonight (since {int(self.settings.night_start_hour):02d}:00); usually {usual}"
        return self._raise("toilet_surge", s, night * DAY - (24 - self.settings.night_start_hour) * 3600, text)
