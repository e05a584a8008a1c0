"""Intra-day sensor events of the twin: what each home's gateway would send, minute by minute.

`simulate_events(residents, sensor_days, seed=...)` turns each resident's `sensor_days` rows into
raw CASAS-style events (time, sensor, value) of one home fitted with the sensors of `SENSOR_MAP`
(the armchair's occupancy sensor `CHAIR` only in a share of the homes, `chair_share`, and the
bedroom chair's `BEDROOM_CHAIR` in a share drawn apart, `bedroom_chair_share`).
A day is built around its own measures: in bed from bedtime to waking with the night's toilet
visits, an outing as long as the day's time out of home, the day's kitchen activations, its
longest stillness (reading or dozing in the living room's armchair) and its visitors; a day without
a row is a day the gateway was offline (no events). In between the resident moves about the home
(short gaps, 20-60 minute sits in the living room and the bedroom), resumes as soon as an outing, a
nap or the long sit ends, and walks back to the seat after a kitchen activation in the middle of a
sit; a nap ends before what follows it. A temperature reading every 30 minutes shows
the gateway is alive. Where the home has a chair sensor it is occupied while the resident sits in
the armchair: the day's longest stillness and the 20-60 minute sits in the living room; where it
has a bedroom chair sensor, during the 20-60 minute sits in the bedroom (the bedroom's motion sensor,
like any PIR, sees the resident sit down and then nothing while they sit still). Whether a home has
either is drawn from a random stream of its own, so a home's other events are the same with or
without them (`chair_share` 0 and `bedroom_chair_share` 0 give the motion-only homes).

Planted incidents (true start times in `incidents`, the truth):
- `fall_long_lie`: a fall during an activity (day, or a night-time toilet trip); nothing of the
  resident's moves until someone arrives hours later, unless `fall_stir_share` has some of them stir
  (one to three motion events in the room they lie in within the first hour);
- `not_up`: acute illness, still in bed hours after the usual time (start = the planned wake time);
- `night_exit`: a resident with cognitive impairment leaves by the front door at night;
- `toilet_surge`: a night with many more toilet visits than usual (start = its first visit).

Confounders (in `confounders`): naps in bed, visitors, outings whose door events were missed,
whole-home dropouts, a sensor with a flat battery for days (the chair's too), a second person at
home, late-evening walks with the door.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SENSOR_MAP: dict[str, str] = {
    "BED": "bed",
    "CHAIR": "chair",
    "BEDROOM_CHAIR": "chair",
    "BATH": "toilet",
    "KITCHEN": "kitchen",
    "LIVING": "living",
    "BEDROOM": "bedroom",
    "HALL": "motion",
    "DOOR": "front_door",
}
HEARTBEAT = "T001"
INCIDENT_KINDS = ("fall_long_lie", "not_up", "night_exit", "toilet_surge")
_FILLER_ROOMS = ("LIVING", "HALL", "BEDROOM", "BATH")
_FILLER_WEIGHTS = np.array([0.45, 0.25, 0.15, 0.15])


@dataclass(frozen=True)
class EventTwinConfig:
    """Rates of planted incidents and confounders (per resident-day unless said otherwise)."""

    fall_rate: float = 0.01
    night_fall_share: float = 0.2
    not_up_rate: float = 0.008
    night_exit_rate: float = 0.04  # residents with cognitive impairment only
    toilet_surge_rate: float = 0.008
    missed_door_rate: float = 0.05  # per outing
    dropout_rate: float = 0.02
    battery_rate: float = 0.004
    late_walker_share: float = 0.08  # residents who often step out late in the evening
    partner_home_rate: float = 0.85  # days a second person is at home, when not living alone
    fall_stir_share: float = 0.0  # falls after which the resident stirs in view of a motion sensor
    chair_share: float = 0.5  # homes with an occupancy sensor on the living room's armchair
    bedroom_chair_share: float = 0.0  # homes with an occupancy sensor on the bedroom's chair


@dataclass
class EventTwin:
    """Raw events of every home, their truth and the sensor map of the homes."""

    events: pd.DataFrame  # resident_id, event_id, time, sensor, value (sorted by resident, time)
    incidents: pd.DataFrame  # resident_id, kind, start, end, room
    confounders: pd.DataFrame  # resident_id, kind, start, end
    sensor_map: dict[str, str]
    chair_homes: frozenset[str] = frozenset()  # residents whose home has the chair sensor
    bedroom_chair_homes: frozenset[str] = frozenset()  # ... the bedroom chair's sensor

    def casas_lines(self, resident_id: str) -> list[str]:
        """One resident's events as CASAS log lines (`date time sensor value`)."""
        ev = self.events[self.events["resident_id"] == resident_id]
        stamps = ev["time"].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        return [f"{t} {s} {v}" for t, s, v in zip(stamps, ev["sensor"], ev["value"], strict=True)]


H = 3600.0
M = 60.0


def _num(row: pd.Series, col: str, default: float) -> float:
    v = row.get(col)
    return default if v is None or pd.isna(v) else float(v)


class _Home:
    """Events of one home being built (times in seconds since the twin's first midnight)."""

    def __init__(self) -> None:
        self.ev: list[tuple[float, str, str, int]] = []  # time, sensor, value, who (0, 5 resident; 1 visitor; 2 helper; 3 partner; 4 gateway; 6 the fallen resident stirring)

    def fire(self, t: float, sensor: str, who: int = 0, dur: float = 40.0) -> None:
        on, off = ("OPEN", "CLOSE") if sensor == "DOOR" else ("ON", "OFF")
        self.ev.append((t, sensor, on, who))
        self.ev.append((t + dur, sensor, off, who))


def _free_times(rng, busy: list[tuple[float, float]], lo: float, hi: float, n: int) -> np.ndarray:
    """n random times in [lo, hi) outside the busy spans."""
    if n <= 0 or hi <= lo:
        return np.empty(0)
    cand = rng.uniform(lo, hi, size=n * 4 + 8)
    ok = np.ones(len(cand), dtype=bool)
    for a, b in busy:
        ok &= ~((cand >= a) & (cand < b))
    return np.sort(cand[ok][:n])


def _resident_events(rid: str, rows: pd.DataFrame, day0: pd.Timestamp, res: pd.Series,
                     rng: np.random.Generator, cfg: EventTwinConfig):
    home = _Home()
    incidents: list[tuple] = []
    confounders: list[tuple] = []
    wake_mean = float(np.clip(rng.normal(7.3, 0.6), 5.5, 9.5)) * H
    wake_sd = float(rng.uniform(0.1, 0.35)) * H
    nap_rate = float(rng.uniform(0.0, 0.5))
    late_walker = rng.random() < cfg.late_walker_share
    walk_rng, stir_rng = rng.spawn(2)  # walks back to a sit, stirs after a fall: streams of their own

    def stir(room: str, start: float, lie: float) -> None:
        """A share of the fallen (`fall_stir_share`) try to get up or crawl within the lie's first
        hour, and the motion sensor of the room they lie in sees it once to three times."""
        if stir_rng.random() < cfg.fall_stir_share:
            for t in np.sort(stir_rng.uniform(2 * M, min(60 * M, lie - 10 * M), int(stir_rng.integers(1, 4)))):
                home.fire(start + float(t), room, who=6)
    partner = not bool(res.get("lives_alone", True))
    cognitive = bool(res.get("cognitive_impairment", False))
    by_day = {int((pd.Timestamp(r["date"]) - day0).days): r for r in rows.to_dict("records")}
    if not by_day:
        return home, incidents, confounders, []
    first, last = min(by_day), max(by_day)
    n_days = last - first + 2
    wake = {d: d * 86400.0 + wake_mean + rng.normal(0, wake_sd) for d in range(first, first + n_days)}
    sleep = {d: _num(by_day[d], "sleep_hours", 7.0) if d in by_day else 7.0 for d in wake}
    toilets = {d: int(round(_num(by_day[d], "night_toilet_visits", 1.0))) if d in by_day else 1 for d in wake}
    bed_start = {}
    for d in wake:
        lo, hi = d * 86400.0 - 3.5 * H, d * 86400.0 + 5 * H  # 20:30 the evening before .. 05:00 (short nights)
        bed_start[d] = float(np.clip(wake[d] - sleep[d] * H - toilets[d] * 5 * M, lo, hi))
    remove: list[tuple[float, float, frozenset[int]]] = []  # spans whose events are deleted, by who

    for d in range(first, last + 1):
        if d not in by_day:
            continue
        row = by_day[d]
        midnight = d * 86400.0
        day_first_event = len(home.ev)
        kind = None
        u = rng.random()
        rates = [("fall_long_lie", cfg.fall_rate), ("not_up", cfg.not_up_rate),
                 ("night_exit", cfg.night_exit_rate if cognitive else 0.0), ("toilet_surge", cfg.toilet_surge_rate)]
        acc = 0.0
        for k, p in rates:
            acc += p
            if u < acc:
                kind = k
                break

        # -- the night ending this morning: in bed with toilet visits
        b0, w = bed_start[d], wake[d]
        home.ev.append((b0, "BED", "ON", 0))
        n = toilets[d] + (int(rng.integers(4, 10)) if kind == "toilet_surge" else 0)
        t_lo, t_hi = max(b0 + 20 * M, midnight - 2 * H), min(w - 15 * M, midnight + 6 * H)
        visits = np.sort(rng.uniform(t_lo, t_hi, size=n)) if n and t_hi > t_lo else np.empty(0)
        if len(visits) > 1:  # at least 9 minutes apart, so each is its own visit
            visits = t_lo + np.arange(len(visits)) * min(9 * M, (t_hi - t_lo) / len(visits)) + \
                np.sort(rng.uniform(0, max(t_hi - t_lo - len(visits) * 9 * M, 0), size=len(visits)))
        night_fall = kind == "fall_long_lie" and len(visits) and rng.random() < cfg.night_fall_share
        fall_visit = int(rng.integers(len(visits))) if night_fall else -1
        for i, tv in enumerate(visits):
            dur = float(rng.uniform(2, 4)) * M
            home.ev.append((tv, "BED", "OFF", 0))
            home.fire(tv + 30, "BATH", dur=dur)
            if i == fall_visit:
                lie = float(rng.uniform(2, 8)) * H
                incidents.append((rid, "fall_long_lie", tv + 30 + dur, tv + 30 + dur + lie, "BATH"))
                stir("BATH", tv + 30 + dur, lie)
                remove.append((tv + 30 + dur + 1, tv + 30 + dur + lie, frozenset({0})))
                home.fire(tv + 30 + dur + lie, "DOOR", who=2)
                home.fire(tv + 30 + dur + lie + 60, "HALL", who=2)
                break
            home.ev.append((tv + dur + 60, "BED", "ON", 0))
        if kind == "toilet_surge" and len(visits):
            incidents.append((rid, "toilet_surge", float(visits[0]), midnight + 6 * H, "BATH"))
        if kind == "night_exit":
            t = float(rng.uniform(midnight + 0.5 * H, midnight + 4.5 * H))
            if b0 < t < w - H:
                out = float(rng.uniform(20, 120)) * M
                remove.append((t - 60, t + out, frozenset({0})))
                home.ev.append((t, "BED", "OFF", 5))
                home.fire(t + 60, "HALL", who=5)
                home.fire(t + 120, "DOOR", who=5, dur=15)
                home.fire(t + 120 + out, "DOOR", dur=15)
                home.fire(t + 150 + out, "HALL")
                home.ev.append((t + 240 + out, "BED", "ON", 0))
                incidents.append((rid, "night_exit", t + 120, t + 120 + out, "DOOR"))
        up = w  # when the day up and about begins
        if kind == "not_up":
            getup = up = w + float(rng.uniform(2.5, 6)) * H
            incidents.append((rid, "not_up", w, getup, "BED"))
            remove.append((w - 1, getup, frozenset({0})))
            home.ev.append((getup, "BED", "OFF", 0))
            home.fire(getup + 60, "BATH")
        home.ev.append((w, "BED", "OFF", 0))

        # -- the day, awake at home from waking (an ill resident: getting up late) to the next bedtime
        day_end = bed_start[d + 1] - 60
        busy: list[tuple[float, float]] = []
        out_end = min(day_end, midnight + 23 * H)
        out_h = min(_num(row, "time_out_of_home", 0.0), max((out_end - up) / H - 1.1, 0.0))
        if out_h >= 0.2:
            s = float(rng.uniform(up + 0.5 * H, out_end - out_h * H - 0.5 * H))
            e = s + out_h * H
            busy.append((s - 60, e + 60))
            home.fire(s - 60, "HALL")
            if rng.random() < cfg.missed_door_rate:
                confounders.append((rid, "missed_door", s, e))
            else:
                home.fire(s, "DOOR", dur=15)
            home.fire(e, "DOOR", dur=15)
            home.fire(e + 30, "HALL")
        still = _num(row, "longest_inactivity", 2.5) * H
        free_span = [(up + 0.5 * H, day_end - 0.5 * H - still)]
        s = _free_times(rng, [(a - still, b) for a, b in busy], *free_span[0], 1)
        armchair: list[float] = []  # when the resident sat down in the armchair
        if len(s):
            s = float(s[0])
            home.fire(s - 60, "LIVING")
            home.fire(s + still, "LIVING")
            busy.append((s - 30, s + still))
            armchair.append(s - 30)
        if rng.random() < nap_rate:
            ns = _free_times(rng, busy, midnight + 13 * H, midnight + 16 * H, 1)
            if len(ns):
                ns = float(ns[0])
                nd = float(rng.uniform(30, 90)) * M
                # up from the nap in time for what comes next (an outing, the day's long sit)
                nd = min([nd] + [a - ns - 5 * M for a, _ in busy if a > ns])
                if nd >= 15 * M:
                    home.ev.append((ns, "BED", "ON", 0))
                    home.ev.append((ns + nd, "BED", "OFF", 0))
                    busy.append((ns, ns + nd))
                    confounders.append((rid, "nap", ns, ns + nd))
        if late_walker and rng.random() < 0.3:
            t = midnight + float(rng.uniform(22.5, 24.3)) * H
            walk = float(rng.uniform(15, 40)) * M
            if t + walk + 10 * M < day_end:  # a walk before bedtime, not out of bed
                home.fire(t - 60, "HALL")
                home.fire(t, "DOOR", dur=15)
                home.fire(t + walk, "DOOR", dur=15)
                home.fire(t + walk + 30, "HALL")
                busy.append((t - 60, t + walk + 30))
                confounders.append((rid, "late_walk", t, t + walk))
        for _ in range(int(round(_num(row, "visitors_detected", 0.0)))):
            vs = _free_times(rng, busy, up + H, day_end - 2 * H, 1)
            if not len(vs):
                continue
            vs, vd = float(vs[0]), float(rng.uniform(30, 120)) * M
            home.fire(vs, "DOOR", who=1, dur=15)
            for t in np.arange(vs + 60, vs + vd, rng.exponential(4 * M) + 60):
                home.fire(float(t), ("LIVING", "KITCHEN", "HALL")[int(rng.integers(3))], who=1)
            home.fire(vs + vd, "DOOR", who=1, dur=15)
            confounders.append((rid, "visitor", vs, vs + vd))
        k = int(round(_num(row, "kitchen_activity", 30.0)))
        meals = np.concatenate([up + H + rng.normal(0, 0.6 * H, 2 * k + 2),
                                midnight + 12.5 * H + rng.normal(0, 0.8 * H, 2 * k + 2),
                                midnight + 18 * H + rng.normal(0, 0.8 * H, 2 * k + 2)])
        meals = np.sort(meals[(meals > up + 60) & (meals < min(day_end, midnight + 22 * H) - 60)])
        for a, b in busy:
            meals = meals[~((meals >= a - 120) & (meals < b + 120))]
        spaced: list[float] = []
        for t in meals.tolist():
            if not spaced or t - spaced[-1] > 150:
                spaced.append(t)
        kept = sorted(rng.choice(spaced, size=min(k, len(spaced)), replace=False).tolist()) if spaced else []
        for t in kept:
            home.fire(t, "KITCHEN", dur=float(rng.uniform(20, 50)))
        # moving about: short gaps, longer ones only sitting in the living room or bedroom
        cap = max(still * 0.8, 20 * M)
        rooms = rng.choice(4, size=300, p=_FILLER_WEIGHTS)
        sits = (rooms <= 0) | (rooms == 2)
        sat = sits & (rng.random(300) < 0.15)
        gaps = np.where(sat, rng.uniform(20 * M, 60 * M, 300), rng.exponential(5 * M, 300))
        # out, napping or in the day's long sit the resident makes none of these moves, and
        # moves about again as soon as that ends
        steps, times, t = np.minimum(gaps, cap) + 60, [], up + 60
        spans = sorted(busy)
        for step in steps.tolist():
            for a, b in spans:
                if a - 60 <= t < b + 60:
                    t = b + 60
            if t >= day_end:
                break
            times.append(t)
            t += step
        ts, rooms, sat = np.array(times), rooms[:len(times)], sat[:len(times)]
        armchair += (ts[sat & (rooms == 0)] + 45).tolist()
        bedroom_chair = (ts[sat & (rooms == 2)] + 45).tolist()  # the sits in the bedroom
        late = ts >= midnight + 22 * H  # night-time bathroom visits are the night's toilet visits
        rooms[late & (rooms == 3)] = 1
        for t, r in zip(ts.tolist(), rooms.tolist(), strict=True):
            home.fire(t, _FILLER_ROOMS[r])
        # a kitchen activation in the middle of a sit: the resident walks back and sits down again
        # (in view of the room's motion sensor and the chair's), a minute or three later
        sit_end = np.append(ts[1:], day_end)
        for a, _ in busy:  # ... and the sit ends where an outing, a nap or the long sit begins
            sit_end = np.where((ts < a) & (sit_end > a - 60), a - 60, sit_end)
        for j, t in enumerate(kept):
            i = int(np.searchsorted(ts, t, side="right")) - 1
            if i >= 0 and sat[i] and t + 4 * M < sit_end[i]:
                back = t + float(walk_rng.uniform(1, 3)) * M
                if j + 1 < len(kept) and kept[j + 1] < back + 60:
                    continue  # still in the kitchen: they walk back after the next activation
                home.fire(back, _FILLER_ROOMS[rooms[i]])
                (armchair if rooms[i] == 0 else bedroom_chair).append(back + 45)
        partner_home = partner and rng.random() < cfg.partner_home_rate
        if partner_home:
            ts = midnight + 7.5 * H + np.cumsum(rng.exponential(12 * M, 120) + 60)
            ts = ts[ts < midnight + 22.5 * H]
            rooms = rng.integers(4, size=len(ts))
            for t, r in zip(ts.tolist(), rooms.tolist(), strict=True):
                home.fire(t, ("LIVING", "KITCHEN", "HALL", "BATH")[r], who=3)
            confounders.append((rid, "second_person", midnight + 7.5 * H, midnight + 22.5 * H))

        lying: list[tuple[float, float]] = []
        if kind == "fall_long_lie" and not night_fall and not partner_home:  # a partner would find them
            own = [(t, s) for t, s, v, who in home.ev[day_first_event:]
                   if who == 0 and up + 0.5 * H < t < day_end - H and v in ("ON", "OPEN") and s not in ("BED", "DOOR", "CHAIR")
                   and not any(a <= t < b for a, b in busy)]
            if own:
                t, room = own[int(rng.integers(len(own)))]
                lie = float(rng.uniform(1.5, 8)) * H
                incidents.append((rid, "fall_long_lie", t + 40, t + 40 + lie, room))
                stir(room, t + 40, lie)
                remove.append((t + 41, t + 40 + lie, frozenset({0})))
                lying.append((t, t + 40 + lie))
                home.fire(t + 40 + lie, "DOOR", who=2, dur=15)
                home.fire(t + 100 + lie, "HALL", who=2)

        # in a chair until the resident is seen anywhere else (or goes to bed)
        own = sorted(t for t, s, v, who in home.ev[day_first_event:] if who == 0 and v in ("ON", "OPEN"))
        for sensor, sits in (("CHAIR", armchair), ("BEDROOM_CHAIR", bedroom_chair)):
            for a in sits:
                if any(f < a < g for f, g in lying):  # the resident fell before sitting down
                    continue
                i = int(np.searchsorted(own, a, side="right"))
                b = min(own[i] if i < len(own) else day_end, day_end)
                if b - 30 > a:
                    home.ev.append((a, sensor, "ON", 0))
                    home.ev.append((b - 30, sensor, "OFF", 0))

        if rng.random() < cfg.dropout_rate:
            s = midnight + float(rng.uniform(0, 20)) * H
            e = s + float(rng.uniform(2, 8)) * H
            remove.append((s, e, frozenset({0, 1, 2, 3, 4, 6})))
            confounders.append((rid, "dropout", s, e))
        if rng.random() < cfg.battery_rate:
            sensor = ("BATH", "KITCHEN", "HALL", "LIVING")[int(rng.integers(4))]
            e = midnight + float(rng.uniform(2, 7)) * 86400.0
            confounders.append((rid, f"battery_{sensor}", midnight, e))

    for d in sorted(by_day):
        temps = 20.5 + rng.normal(0, 0.3, 48)
        home.ev.extend((d * 86400.0 + q * 1800.0 + 5, HEARTBEAT, f"{temps[q]:.1f}", 4) for q in range(48))
    return home, incidents, confounders, remove


def simulate_events(residents: pd.DataFrame, sensor_days: pd.DataFrame, *, seed: int = 0,
                    resident_ids=None, config: EventTwinConfig | None = None) -> EventTwin:
    """Raw events, planted incidents and confounders for the residents' days in `sensor_days`."""
    cfg = config or EventTwinConfig()
    sd = sensor_days.sort_values(["resident_id", "date"], kind="stable")
    if resident_ids is not None:
        wanted = set(map(str, resident_ids))
        sd = sd[sd["resident_id"].astype(str).isin(wanted)]
    if sd.empty:
        raise ValueError("no sensor_days rows for the residents asked")
    day0 = pd.Timestamp(sd["date"].min()).normalize()
    res = residents.set_index(residents["resident_id"].astype(str))
    frames, incs, confs = [], [], []
    chair_homes: set[str] = set()
    bedroom_chair_homes: set[str] = set()
    for idx, (rid, rows) in enumerate(sd.groupby(sd["resident_id"].astype(str), sort=True)):
        rng = np.random.default_rng(np.random.SeedSequence([seed, idx, 0x5E75]))
        r = res.loc[rid] if rid in res.index else pd.Series(dtype=object)
        home, inc, conf, remove = _resident_events(rid, rows, day0, r, rng, cfg)
        ev = pd.DataFrame(home.ev, columns=["t", "sensor", "value", "who"])
        # each chair sensor has its own random stream: the home's other events do not depend on it
        for sensor, share, stream, fitted in (("CHAIR", cfg.chair_share, 0xC4A1, chair_homes),
                                              ("BEDROOM_CHAIR", cfg.bedroom_chair_share, 0xBEDC, bedroom_chair_homes)):
            chair_rng = np.random.default_rng(np.random.SeedSequence([seed, idx, stream]))
            if chair_rng.random() < share:
                fitted.add(rid)
                for d in sorted({int((pd.Timestamp(x) - day0).days) for x in rows["date"]}):
                    if chair_rng.random() < cfg.battery_rate:
                        e = d * 86400.0 + float(chair_rng.uniform(2, 7)) * 86400.0
                        conf.append((rid, f"battery_{sensor}", d * 86400.0, e))
            else:
                ev = ev[ev["sensor"] != sensor]
        keep = np.ones(len(ev), dtype=bool)
        t, who = ev["t"].to_numpy(), ev["who"].to_numpy()
        for a, b, whos in remove:
            keep &= ~((t >= a) & (t < b) & np.isin(who, list(whos)))
        for _, kind, a, b in conf:
            if kind.startswith("battery_"):
                keep &= ~((t >= a) & (t < b) & (ev["sensor"].to_numpy() == kind.removeprefix("battery_")))
        ev = ev[keep].sort_values("t", kind="stable")
        last_day = (pd.Timestamp(rows["date"].max()) - day0).days
        # a day without a row is a day the gateway was offline: no events at all
        row_days = (pd.DatetimeIndex(rows["date"]).normalize() - day0).days.to_numpy()
        first_day = int(row_days.min())
        ev_day = np.floor(ev["t"].to_numpy() / 86400.0).astype(int)
        ev = ev[(np.isin(ev_day, row_days) | ((ev_day == first_day - 1) & (ev["t"].to_numpy() >= first_day * 86400.0 - 4 * H)))
                & (ev_day <= last_day)]
        ev.insert(0, "resident_id", rid)
        ev["event_id"] = [f"{rid}-{i:07d}" for i in range(len(ev))]
        frames.append(ev.drop(columns="who"))
        incs.extend(inc)
        confs.extend(conf)
    events = pd.concat(frames, ignore_index=True)
    events["time"] = day0 + pd.to_timedelta(np.round(events.pop("t").to_numpy() * 1e6), unit="us")
    events = events[["resident_id", "event_id", "time", "sensor", "value"]]
    incidents = pd.DataFrame(incs, columns=["resident_id", "kind", "start", "end", "room"])
    confounders = pd.DataFrame(confs, columns=["resident_id", "kind", "start", "end"])
    for df in (incidents, confounders):
        for c in ("start", "end"):
            df[c] = day0 + pd.to_timedelta(np.round(df[c].to_numpy(dtype="float64") * 1e6), unit="us")
    return EventTwin(events=events, incidents=incidents, confounders=confounders, sensor_map=dict(SENSOR_MAP),
                     chair_homes=frozenset(chair_homes), bedroom_chair_homes=frozenset(bedroom_chair_homes))
