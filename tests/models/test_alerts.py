"""Behaviour of the per-resident alert rules on a plain routine: what a care manager would notice."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from models.alerts import AlertSettings, ResidentMonitor

ROLES = {"BED": "bed", "BATH": "toilet", "KITCHEN": "kitchen", "LIVING": "living", "HALL": "motion",
         "DOOR": "front_door", "T001": "other"}
DAY0 = datetime(2024, 3, 1)


def routine_day(d: int, *, up: float = 7.0, bed: float = 22.5, toilets: int = 1, until: float | None = None):
    """One ordinary day: in bed until `up`, moving every 10 minutes, a night toilet visit, to bed."""
    day = DAY0 + timedelta(days=d)
    at = lambda h: day + timedelta(hours=h)  # noqa: E731
    ev = [(at(q / 2 + 1 / 600), "T001", "20.5") for q in range(48)]
    for i in range(toilets):
        t = 2.0 + i * 0.5
        ev += [(at(t), "BED", "OFF"), (at(t + 0.01), "BATH", "ON"), (at(t + 0.05), "BATH", "OFF"),
               (at(t + 0.07), "BED", "ON")]
    ev.append((at(up), "BED", "OFF"))
    rooms = ("HALL", "KITCHEN", "LIVING", "BATH")
    h, k = up + 0.02, 0
    while h < bed - 0.1 and (until is None or h < until):
        ev += [(at(h), rooms[k % 4], "ON"), (at(h + 0.01), rooms[k % 4], "OFF")]
        h, k = h + 1 / 6, k + 1
    if until is None:
        ev.append((at(bed), "BED", "ON"))
    return sorted(ev)


def feed(mon: ResidentMonitor, events) -> list:
    out = []
    for t, s, v in events:
        out += mon.observe(t, s, v)
    return out


def learned(days: int = 20, **settings) -> ResidentMonitor:
    mon = ResidentMonitor("R1", ROLES, AlertSettings(**settings), epoch=DAY0)
    for d in range(days):
        assert feed(mon, routine_day(d)) == []
    return mon


def test_no_alert_during_the_learning_period_even_when_still_for_hours():
    mon = ResidentMonitor("R1", ROLES, AlertSettings(learning_days=14), epoch=DAY0)
    alerts = []
    for d in range(10):
        alerts += feed(mon, routine_day(d, until=10.0 if d == 8 else None))
    assert mon.learning and alerts == []


def test_a_fall_in_the_morning_raises_no_movement_within_the_usual_stillness():
    mon = learned()
    alerts = feed(mon, routine_day(20, until=10.0))
    alerts += mon.advance(DAY0 + timedelta(days=20, hours=14))
    falls = [a for a in alerts if a.kind == "no_movement"]
    assert len(falls) == 1
    delay = falls[0].at - falls[0].since
    assert timedelta(minutes=15) <= delay <= timedelta(minutes=30)
    assert falls[0].text.startswith(f"no movement since {falls[0].since:%H:%M}")
    assert "usually still for at most" in falls[0].text


def test_still_in_bed_past_the_usual_time_raises_not_up_worded_with_the_usual_time():
    mon = learned()
    ev = [e for e in routine_day(20) if e[0] < DAY0 + timedelta(days=20, hours=7) or e[1] == "T001"]
    alerts = feed(mon, [e for e in ev if e[0] < DAY0 + timedelta(days=20, hours=9)])
    assert [a.kind for a in alerts] == ["not_up"]
    assert alerts[0].text == "still in bed at 07:30; usually up by 07:00"


def test_leaving_by_the_front_door_in_the_day_is_not_a_fall_but_a_night_exit_is_an_alert():
    mon = learned()
    day = DAY0 + timedelta(days=20)
    ev = [e for e in routine_day(20) if e[0] < day + timedelta(hours=11)]
    ev += [(day + timedelta(hours=11, minutes=1), "DOOR", "OPEN"), (day + timedelta(hours=11, minutes=2), "DOOR", "CLOSE")]
    assert feed(mon, ev) + mon.advance(day + timedelta(hours=15)) == []

    mon = learned()
    day = DAY0 + timedelta(days=20)
    ev = [e for e in routine_day(20) if e[0] < day + timedelta(hours=2.5)]
    ev += [(day + timedelta(hours=2, minutes=40), "BED", "OFF"), (day + timedelta(hours=2, minutes=41), "HALL", "ON"),
           (day + timedelta(hours=2, minutes=42), "DOOR", "OPEN"), (day + timedelta(hours=2, minutes=43), "DOOR", "CLOSE")]
    alerts = feed(mon, ev) + mon.advance(day + timedelta(hours=4))
    assert [a.kind for a in alerts] == ["night_exit"]
    assert alerts[0].text == "front door opened at 02:43 and no movement at home since"


def test_away_mode_and_a_silent_gateway_raise_nothing():
    mon = learned()
    day = DAY0 + timedelta(days=20)
    mon.set_away(day, day + timedelta(days=1))
    assert feed(mon, routine_day(20, until=10.0)) + mon.advance(day + timedelta(hours=14)) == []

    # the gateway goes silent at 10:00: nothing raised for the time it was down, and stillness
    # counts again from when it is back
    mon = learned(offline_minutes=12)
    ev = [e for e in routine_day(20, until=10.0) if e[0] < day + timedelta(hours=9, minutes=55)]
    assert feed(mon, ev) + mon.advance(day + timedelta(hours=12)) == []
    assert mon.observe(day + timedelta(hours=12), "T001", "20.4") == []
    assert mon.observe(day + timedelta(hours=12, minutes=10), "T001", "20.4") == []
    late = mon.advance(day + timedelta(hours=12, minutes=20))
    assert [(a.kind, a.since) for a in late] == [("no_movement", day + timedelta(hours=12))]


def test_a_toilet_surge_in_quiet_hours_is_held_until_they_end():
    mon = learned(quiet_end_hour=7.0)
    alerts = feed(mon, routine_day(20, toilets=8))
    surge = [a for a in alerts if a.kind == "toilet_surge"]
    assert len(surge) == 1
    assert surge[0].at == DAY0 + timedelta(days=20, hours=7)
    n, usual = surge[0].text.split(" toilet visits tonight (since 22:00); usually ")
    assert int(n) > int(usual.split("-")[-1]) + 2
    assert surge[0].since == DAY0 + timedelta(days=19, hours=22)


def test_false_alarm_ratings_make_that_residents_alerts_wait_longer():
    mon = learned()
    before = mon.stillness_limit("kitchen", 10 * 3600.0)
    assert mon.rate("no_movement", real=False) == pytest.approx(1.25)
    after = mon.stillness_limit("kitchen", 10 * 3600.0)
    assert after == pytest.approx(before * 1.25)
    for _ in range(20):
        mon.rate("no_movement", real=False)
    assert mon.tuning["no_movement"] == 3.0  # capped
    assert mon.tuning["not_up"] == 1.0  # other kinds untouched
    with pytest.raises(ValueError):
        mon.rate("burglary", real=True)
