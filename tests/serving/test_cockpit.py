"""The care manager's cockpit: sign-in sessions, the cockpit routes on the real app, and the pure
pieces behind them (trends, newly high, usual ranges, data gaps, timeline, heat map)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from serving import cockpit
from serving.auth import SESSION_COOKIE, Principal, SessionBook
from serving.store import ScoreRecord
from tests.serving.test_api import H, api, serving_home  # noqa: F401  (fixtures: trained workdir, client)

# ---------------------------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------------------------


def test_a_session_ends_at_its_expiry_and_at_sign_out():
    now = [1000.0]
    book = SessionBook(ttl_seconds=60, clock=lambda: now[0])
    token, session = book.open(Principal("cm", "care_manager"))
    assert book.find(token).principal.name == "cm" and session.expires_at == 1060.0
    now[0] = 1059.0
    assert book.find(token) is not None
    now[0] = 1060.0
    assert book.find(token) is None  # expired
    token2, _ = book.open(Principal("cm", "care_manager"))
    assert book.close(token2) and book.find(token2) is None
    assert book.find("made-up") is None and not book.close(None)


def test_sign_in_sets_a_strict_httponly_cookie_that_signs_later_requests(api):  # noqa: F811
    client, keys, _ = api
    client.cookies.clear()
    assert client.get("/cockpit/meta").status_code == 401
    r = client.post("/session", headers=H(keys, "care_manager"))
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=1800" in cookie and "Path=/" in cookie
    assert keys["care_manager"] not in cookie and keys["care_manager"] not in r.text
    assert r.json()["role"] == "care_manager" and r.json()["expires_at"]
    token = client.cookies.get(SESSION_COOKIE)
    me = client.get("/session")  # the cookie alone
    assert me.status_code == 200 and me.json()["name"] == "demo-care-manager" and me.json()["expires_at"]
    assert client.get("/cockpit/meta").status_code == 200
    assert client.post("/session").status_code == 400  # a session cannot mint another
    out = client.post("/session/end")
    assert out.status_code == 200 and out.json() == {"signed_out": True}
    assert SESSION_COOKIE in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
    client.cookies.clear()
    replay = client.get("/cockpit/meta", headers={"Cookie": f"{SESSION_COOKIE}={token}"})
    assert replay.status_code == 401 and "sign in again" in replay.json()["error"]


def test_sign_in_refuses_a_wrong_key_and_a_wrong_role(api):  # noqa: F811
    client, keys, _ = api
    client.cookies.clear()
    assert client.post("/session", headers={"X-API-Key": "tc_wrong"}).status_code == 401
    r = client.post("/session", headers=H(keys, "timebank"))
    assert r.status_code == 403 and "set-cookie" not in r.headers
    client.cookies.clear()


# ---------------------------------------------------------------------------------------------
# Cockpit routes on the real app
# ---------------------------------------------------------------------------------------------


def test_cockpit_routes_answer_the_page(api):  # noqa: F811
    client, keys, _ = api
    client.cookies.clear()
    h = H(keys, "care_manager")
    meta = client.get("/cockpit/meta", headers=h).json()
    names = [m["name"] for m in meta["models"]]
    assert all(m["kind"] == "local" and m["version"] for m in meta["models"])  # what serves, said on the page
    assert names and meta["grids"] and set(meta["panels_not_available"]) == {"alerts", "what_if"}

    ranked = client.get("/cockpit/at-risk", headers=h, params={"model": names[0], "limit": 20}).json()
    probs = [i["probability"] for i in ranked["items"]]
    assert probs == sorted(probs, reverse=True) and len(probs) == 20
    assert [i["rank"] for i in ranked["items"]] == list(range(1, 21))
    grid = ranked["items"][0]["grid_id"]
    only = client.get("/cockpit/at-risk", headers=h, params={"grid": grid, "limit": 500}).json()
    assert only["items"] and {i["grid_id"] for i in only["items"]} == {grid}
    needle = ranked["items"][0]["resident_id"][-3:]
    found = client.get("/cockpit/at-risk", headers=h, params={"q": needle, "limit": 500}).json()
    assert found["items"] and all(needle in i["resident_id"] for i in found["items"])
    high = client.get("/cockpit/at-risk", headers=h, params={"band": "high", "limit": 500}).json()
    assert all(i["band"] == "high" for i in high["items"])

    rid = ranked["items"][0]["resident_id"]
    page = client.get(f"/cockpit/residents/{rid}", headers=h).json()
    assert [r["model"] for r in page["risks"]] == names
    assert {r["kind"] for r in page["risks"]} == {"local"}
    for r in page["risks"]:
        signs = {x["direction"] for x in r["reasons"]}
        assert r["reasons"] and signs <= {"raises", "lowers"}
        sizes = [abs(x["contribution"]) for x in r["reasons"]]
        assert sizes == sorted(sizes, reverse=True)
        assert all((x["contribution"] > 0) == (x["direction"] == "raises") for x in r["reasons"])
        assert r["trend"][-1]["as_of"] == page["as_of_date"]
    assert {s["signal"] for s in page["sensors"]} == set(cockpit.TREND_SIGNALS)
    assert all(s["points"] for s in page["sensors"])
    assert isinstance(page["missing_data"], list) and isinstance(page["timeline"], list)
    assert client.get("/cockpit/residents/R-nobody", headers=h).status_code == 404

    board = client.get("/cockpit/tasks", headers=h).json()
    assert {"open", "claimed", "completed"} <= set(board["columns"])
    grids = client.get("/cockpit/grids", headers=h).json()
    heat = grids["heatmap"]
    assert len(heat["dates"]) == 14 and heat["grids"] and heat["categories"]
    for cat in heat["categories"]:
        assert np.asarray(heat["requests"][cat]).shape == (len(heat["grids"]), 14)
    assert {g["grid_id"] for g in grids["grids"]} >= set(meta["grids"])
    assert client.get("/cockpit/grids", headers=H(keys, "timebank")).status_code == 403


# ---------------------------------------------------------------------------------------------
# Pure pieces
# ---------------------------------------------------------------------------------------------


def _rec(day: date, p: float, band: str) -> ScoreRecord:
    return ScoreRecord("R1", "fall_risk", "1", day, p, band)


def test_newly_high_compares_with_the_score_a_week_before():
    d = date(2026, 11, 23)
    trend = cockpit.score_trend([_rec(d - timedelta(days=14), .1, "low"), _rec(d - timedelta(days=7), .2, "medium"), _rec(d, .5, "high")])
    assert [p["band"] for p in trend] == ["low", "medium", "high"] and cockpit.newly_high(trend)
    was_high = cockpit.score_trend([_rec(d - timedelta(days=7), .6, "high"), _rec(d, .5, "high")])
    assert not cockpit.newly_high(was_high)
    only_now = cockpit.score_trend([_rec(d, .5, "high")])
    assert not cockpit.newly_high(only_now)  # nothing known a week before: not "new"
    rescored = cockpit.score_trend([_rec(d, .1, "low"), _rec(d, .2, "medium")])
    assert len(rescored) == 1 and rescored[0]["band"] == "medium"  # the latest scoring of a day


def _days(n: int, end: date, **cols) -> pd.DataFrame:
    dates = [end - timedelta(days=n - i) for i in range(n)]
    return pd.DataFrame({"resident_id": "R1", "date": pd.to_datetime(dates), **{k: v(np.arange(n)) for k, v in cols.items()}})


def test_sensor_trends_show_the_recent_change_against_the_usual_range():
    end = date(2026, 11, 26)
    n = 200
    gait = lambda i: np.where(i >= n - 14, 0.6, 1.0 + 0.01 * (i % 5))  # noqa: E731 - slowed in the last 14 days
    days = _days(n, end, gait_speed=gait, steps=lambda i: np.full(len(i), 4000.0),
                 night_toilet_visits=lambda i: np.ones(len(i)), time_out_of_home=lambda i: np.full(len(i), np.nan),
                 sleep_hours=lambda i: np.full(len(i), 7.0))
    by = {s["signal"]: s for s in cockpit.sensor_trends(days, end)}
    g = by["gait_speed"]
    assert 1.0 <= g["usual_low"] <= g["usual_high"] <= 1.04 and g["recent_mean"] == pytest.approx(0.6)
    assert "below the usual" in g["change"] and len(g["points"]) == cockpit.TREND_DAYS
    assert "within the usual" in by["steps"]["change"]
    assert by["time_out_of_home"]["usual_low"] is None and "no" in by["time_out_of_home"]["change"]


def test_missing_data_notes_name_the_silent_sensors_apart_from_reasons():
    end = date(2026, 11, 26)
    days = _days(60, end, steps=lambda i: np.full(len(i), 3000.0),
                 resting_heart_rate=lambda i: np.where(i < 20, 70.0, np.nan))
    notes = cockpit.missing_data_notes(days, end)
    heart = [n for n in notes if "resting heart rate" in n]
    assert heart and heart[0].startswith("no resting heart rate data for 30 days (last on ")
    assert not any("steps walked" in n for n in notes)
    assert cockpit.missing_data_notes(days.iloc[:0], end) == ["no sensor data at all for 30 days"]


def test_signed_reasons_keep_sign_and_order_and_words():
    contrib = np.array([0.05, -0.4, 0.3, 0.0])
    names = ["falls_365d", "lives_alone", "age_years", "walking_aid"]
    out = cockpit.signed_reasons(contrib, names, {"falls_365d": 2.0, "lives_alone": 0.0, "age_years": 84.0, "walking_aid": 1.0}, k=8)
    assert [r["feature"] for r in out] == ["lives_alone", "age_years", "falls_365d"]
    assert [r["direction"] for r in out] == ["lowers", "raises", "raises"]
    assert out[0]["text"] == "lives with others" and out[1]["text"] == "is 84 years old"


def test_timeline_puts_everything_on_one_list_newest_first():
    from serving.store import Task

    a = pd.DataFrame({"date": pd.to_datetime(["2026-03-01"]), "tug_seconds": [14.2], "loneliness_score": [7],
                      "fear_of_falling": [True], "steadi_unsteady": [None], "steadi_fell_past_year": [False]})
    e = pd.DataFrame({"date": pd.to_datetime(["2026-05-02"]), "type": ["fall"], "injury": [True]})
    v = pd.DataFrame({"date": pd.to_datetime(["2026-06-03"]), "kind": ["walk"], "source": ["timebank"], "hours": [1.0]})
    t = Task("T1", "R1", "G1", "walk", "fall_risk", datetime(2026, 7, 4, 9), date(2026, 7, 6), "open", None, 1.5,
             None, None, None, "high", 1.0, "fall_risk", "1", .5, "high", None, [], "x", {})
    items = cockpit.timeline(a, e, v, [t])
    assert [i["kind"] for i in items] == ["task", "visit", "fall", "assessment"]
    assert items[2]["text"] == "fall with injury"
    assert "Timed Up and Go 14.2 s" in items[3]["text"] and "loneliness score 7 of 9" in items[3]["text"]
    assert cockpit.is_overdue(t, date(2026, 7, 7)) and not cockpit.is_overdue(t, date(2026, 7, 6))


def test_heatmap_sets_requests_per_category_against_daily_supply():
    days = pd.date_range("2026-11-27", periods=3)
    fc = pd.DataFrame({
        "series_id": ["G1:meals"] * 3 + ["G1:household"] * 3 + ["G2:meals"] * 3,
        "date": list(days) * 3, "horizon": [1, 2, 3] * 3, "forecast": [1, 2, 3, 1, 1, 1, 4, 4, -1],
    })
    vols = pd.DataFrame({"grid_id": ["G1", "G1"], "weekly_hours": [7.0, 14.0]})
    h = cockpit.demand_heatmap(fc, vols)
    assert h["grids"] == ["G1", "G2"] and h["categories"] == ["household", "meals"] and len(h["dates"]) == 3
    assert h["requests"]["meals"] == [[1, 2, 3], [4, 4, 0]]  # a negative forecast counts as none
    assert h["requests"]["household"] == [[1, 1, 1], [0, 0, 0]]
    assert h["demand_hours"][0] == [3.0, 4.0, 5.0]  # meals 1 h + household 2 h per request
    assert h["supply_hours"] == [3.0, 0.0]
    assert h["hours_per_request"] == {"household": 2.0, "meals": 1.0}
