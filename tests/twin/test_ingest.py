"""Ingestion of real data: generic table files and raw smart-home sensor logs.

The sensor logs in tests/twin/data/ are written by hand; every expected number below was worked
out by hand from those lines (the arithmetic is kept in the expected values).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from tests.twin.test_schema import valid_frames
from training.cmd_ingest import register
from twin.ingest import ingest_table
from twin.ingest_events import SensorDayConfig, ingest_events, read_event_log, read_sensor_map
from twin.store import HistoryStore

DATA = Path(__file__).parent / "data"
NAN = np.nan
H = 3600.0  # seconds in an hour
MEASURES = ["night_toilet_visits", "sleep_hours", "sleep_interruptions", "time_out_of_home",
            "kitchen_activity", "longest_inactivity"]
NEVER_FROM_LOGS = ["steps", "gait_speed", "visitors_detected", "phone_calls", "resting_heart_rate"]


def read_log(name: str, fmt: str, sensor_map: str = "home_map.csv", **cfg):
    return read_event_log(DATA / name, fmt, read_sensor_map(DATA / sensor_map), "R1", SensorDayConfig(**cfg))


def assert_days(got: pd.DataFrame, dates: list[str], expected: dict[str, list[float]]) -> None:
    assert got["date"].dt.strftime("%Y-%m-%d").tolist() == dates
    assert (got["resident_id"] == "R1").all()
    for col, values in expected.items():
        np.testing.assert_allclose(got[col].to_numpy(), values, rtol=0, atol=1e-9, err_msg=col)
    for col in NEVER_FROM_LOGS:
        assert got[col].isna().all(), f"{col} must be null (not measurable), never 0"


# ---------------------------------------------------------------------------------------------
# sensor logs -> sensor_days, exact numbers
# ---------------------------------------------------------------------------------------------


def test_casas_clean_log():
    r = read_log("casas_clean.txt", "casas")
    assert_days(r.sensor_days, ["2010-11-03", "2010-11-04", "2010-11-05"], {
        # night of 3/4 Nov: bathroom 01:00-01:01 and 01:03 (merged, 2 min apart) + 03:00; 21:30 is before 22:00
        "night_toilet_visits": [NAN, 2, 1],
        # no bed sensor: quiet >= 30 min after bedroom/bathroom activity: 21:41-01:00, 01:04-03:00, 03:02-06:30
        "sleep_hours": [NAN, (199 + 116 + 208) / 60, NAN],  # 5 Nov: sleep window runs past the log's end
        "sleep_interruptions": [NAN, 2, NAN],
        "time_out_of_home": [0, (2 * H + 30) / H, 0],  # door 09:05:00 -> living room 11:05:30; 13:00 trip is 2 min
        "kitchen_activity": [1, 3, 1],  # 20:46:30 starts 30 s after 20:46:00 ends: one activation
        "longest_inactivity": [44.5 / 60, (4 * 60 + 57) / 60, 1.0],  # 4 Nov: 13:03 -> 18:00
    })
    rep = r.report
    assert (rep.lines, rep.events, rep.malformed, rep.duplicates, rep.repeated_states, rep.stuck_on) == (44, 44, 0, 0, 0, 0)
    assert rep.numeric_readings == 2 and rep.annotations == 6
    assert rep.partial_days == ["2010-11-03 (4.0 h observed)", "2010-11-05 (8.0 h observed)"]
    assert r.annotations["annotation"].tolist()[:2] == ["Meal_Preparation begin", "Meal_Preparation end"]
    assert r.annotations["line"].tolist() == [4, 7, 10, 18, 24, 28]


def test_casas_messy_log_is_cleaned_and_every_oddity_reported():
    r = read_log("casas_messy.txt", "casas")
    assert_days(r.sensor_days, ["2010-11-10", "2010-11-13"], {
        "kitchen_activity": [2, 1],  # 09:30-09:40 (duplicate and repeated ON dropped) and the stuck 13:00 one
        "longest_inactivity": [5.0, (29 * 60 + 40) / H],  # stuck kitchen capped at 15:00 -> next motion 20:00
        "night_toilet_visits": [NAN, NAN],
        "time_out_of_home": [NAN, NAN],
        "sleep_hours": [NAN, NAN],
    })
    rep = r.report
    assert rep.lines == 25 and rep.comment_lines == 1
    assert rep.malformed == 3
    assert [e.split(" ")[1] for e in rep.malformed_examples] == ["5", "15", "16"]
    assert rep.out_of_order == 1
    assert rep.duplicates == 1 and rep.duplicate_examples[0].startswith("line 7 M003")
    assert rep.repeated_states == 2
    assert rep.repeated_state_examples == ["line 4 M003 OFF while off", "line 8 M003 ON while on"]
    assert rep.stuck_on == 1 and "M003 on from 2010-11-10 13:00:00 for 5.0 h (capped at 2 h)" in rep.stuck_on_examples[0]
    assert rep.still_on_at_end == 1
    assert rep.unrecognised_values == {"ONc": 1}
    assert rep.unmapped_sensors == {"M099": 1}
    assert rep.outages == ["2010-11-10 20:00:30 to 2010-11-13 09:00:00 (61.0 h)"]
    assert rep.days_without_events == 2  # 11 and 12 Nov: no row, not a row of zeros
    assert rep.partial_days == ["2010-11-10 (12.0 h observed)", "2010-11-13 (0.7 h observed)"]
    assert r.coverage["partial"].tolist() == [True, True]
    np.testing.assert_allclose(r.coverage["observed_hours"], [(12 * H + 30) / H, 40 / 60], atol=1e-9)  # 08:00-20:00:30, 09:00-09:40
    assert rep.unmeasured["time_out_of_home"] == "the front door sensor never fired"
    text = str(rep)
    for phrase in ("malformed lines skipped: 3", "line 5", "out of time order", "stuck on", "M099", "outages"):
        assert phrase in text


def test_casas_absences_split_over_midnight_and_long_trips_are_not_outages():
    r = read_log("casas_away.txt", "casas")
    assert_days(r.sensor_days, ["2010-11-20", "2010-11-21", "2010-11-22", "2010-11-24"], {
        "time_out_of_home": [6.0, (10 * H + 30) / H, 15.0, (12 * 60 + 1) / 60],
        "kitchen_activity": [0, 1, 1, 0],
        # away the whole night before 21 and 24 Nov: null, not zero
        "night_toilet_visits": [NAN, NAN, 1, NAN],
        "sleep_hours": [NAN, NAN, (5 * H + 59 * 60 + 50 + 5 * H + 58 * 60) / H, NAN],
        "sleep_interruptions": [NAN, NAN, 1, NAN],
        "longest_inactivity": [(9 * H + 58 * 60 + 50) / H, (8 * 60 + 55) / 60, (2 * 60 + 59) / 60, (7 * H + 58 * 60 + 50) / H],
    })
    assert r.report.outages == []  # 51 h from door to door is a trip away
    assert r.report.days_without_events == 1
    assert r.report.partial_days == ["2010-11-20 (16.0 h observed)", "2010-11-24 (20.0 h observed)"]
    assert r.coverage["partial"].tolist() == [True, False, False, True]


def test_intervals_clean_log_with_bed_sensor():
    r = read_log("intervals_clean.txt", "intervals", "kasteren_map.csv")
    assert_days(r.sensor_days, ["2008-02-25", "2008-02-26", "2008-02-27"], {
        "night_toilet_visits": [NAN, 1, 0],  # 02:03 flush; 06:10 on 27 Feb is after the night window
        # bed 22:31-02:00 and 02:10-07:00 (06:30-06:31 gap under 2 min closed); 21:01-06:00
        "sleep_hours": [NAN, (209 + 290) / 60, (8 * 60 + 59) / 60],
        "sleep_interruptions": [NAN, 1, 0],
        "time_out_of_home": [0, 121 / 60, 0],  # front door 08:00 -> living room 10:01
        "kitchen_activity": [2, 2, 1],
        "longest_inactivity": [2.75, (8 * 60 + 50) / 60, (3 * 60 + 25) / 60],
    })
    assert r.report.comment_lines == 1 and r.report.malformed == 0
    assert r.report.partial_days == ["2008-02-25 (5.0 h observed)", "2008-02-27 (10.5 h observed)"]


def test_intervals_messy_log():
    r = read_log("intervals_messy.txt", "intervals", "kasteren_map.csv")
    assert_days(r.sensor_days, ["2008-03-01", "2008-03-04"], {
        "kitchen_activity": [2, 1],  # overlapping fridge intervals merged; microwave stuck 6 h capped at 2 h
        "longest_inactivity": [(5 * H + 10) / H, (59 * 60 + 40) / H],
        "sleep_hours": [NAN, NAN],
    })
    rep = r.report
    assert rep.malformed == 3
    assert [e.split(" ")[1] for e in rep.malformed_examples] == ["7", "9", "10"]
    assert "ends before it starts" in rep.malformed_examples[0]
    assert (rep.duplicates, rep.overlaps_merged, rep.inactive_interval_lines, rep.out_of_order, rep.stuck_on) == (1, 1, 1, 1, 1)
    assert rep.unmapped_sensors == {"99": 1}
    assert len(rep.outages) == 1 and rep.days_without_events == 2


def test_json_sensor_map_with_role_aliases_gives_the_same_days():
    by_csv = read_log("casas_clean.txt", "casas", "home_map.csv").sensor_days
    by_json = read_log("casas_clean.txt", "casas", "home_map.json").sensor_days
    pd.testing.assert_frame_equal(by_csv, by_json)
    assert read_sensor_map(DATA / "home_map.json")["D001"] == "front_door"


def test_json_sensor_map_as_an_object(tmp_path):
    m = tmp_path / "map.json"
    m.write_text(json.dumps({"sensors": {"M1": "WC", "D1": "entrance", "B1": "bed"}}))
    assert read_sensor_map(m) == {"M1": "toilet", "D1": "front_door", "B1": "bed"}


def test_a_role_missing_from_the_map_gives_nulls_never_zeros(tmp_path):
    m = tmp_path / "no_door.csv"
    m.write_text("\n".join(line for line in (DATA / "home_map.csv").read_text().splitlines() if "D001" not in line))
    r = read_event_log(DATA / "casas_clean.txt", "casas", read_sensor_map(m), "R1")
    assert r.sensor_days["time_out_of_home"].isna().all()
    assert r.report.unmeasured["time_out_of_home"] == "no front door sensor in the map"
    assert r.report.unmapped_sensors == {"D001": 6}


def test_night_window_and_thresholds_are_configurable():
    # a 3-minute merge splits 01:00-01:01 and 01:03 into two visits on 4 Nov
    r = read_log("casas_clean.txt", "casas", toilet_merge_minutes=1.5)
    assert r.sensor_days["night_toilet_visits"].tolist()[1] == 3
    with pytest.raises(ValueError, match="over midnight"):
        SensorDayConfig(night_start_hour=1.0)


def test_sensor_map_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="unknown role 'garage'"):
        read_sensor_map(DATA / "bad_role_map.csv")
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps([{"sensor": "M1", "role": "kitchen"}, {"sensor": "M1", "role": "bed"}]))
    with pytest.raises(ValueError, match="two roles"):
        read_sensor_map(twice)
    with pytest.raises(FileNotFoundError):
        read_sensor_map(tmp_path / "missing.csv")


def test_events_are_appended_through_the_store_all_or_nothing(tmp_path):
    out = tmp_path / "history"
    first = ingest_events(DATA / "casas_clean.txt", "casas", DATA / "home_map.csv", "R1", out)
    assert first.report.ok and first.report.written
    stored = HistoryStore(out).read("sensor_days")
    pd.testing.assert_frame_equal(stored, first.sensor_days)
    again = ingest_events(DATA / "casas_clean.txt", "casas", DATA / "home_map.csv", "R1", out)
    assert not again.report.ok and again.report.written is None
    v = again.report.validation.violations[0]
    assert (v.rule, v.count, v.examples[0]) == ("key already in the history", 3, "R1/2010-11-03")
    assert len(list((out / "sensor_days").glob("*.parquet"))) == 1


def test_rows_that_break_the_schema_are_not_written(tmp_path):
    # 501 kitchen activations in one day: above the schema's maximum of 500
    lines = []
    for i in range(501):
        t = pd.Timestamp("2011-01-01 00:00:00") + pd.Timedelta(minutes=2 * i)
        lines += [f"{t} M003 ON", f"{t + pd.Timedelta(seconds=10)} M003 OFF"]
    log = tmp_path / "busy.txt"
    log.write_text("\n".join(lines) + "\n")
    r = ingest_events(log, "casas", DATA / "home_map.csv", "R1", tmp_path / "h")
    assert not r.report.ok and r.report.written is None
    v = r.report.validation.violations[0]
    assert (v.column, v.rule, v.examples) == ("kitchen_activity", "above maximum 500", ["R1/2011-01-01"])
    assert not (tmp_path / "h" / "sensor_days").exists()


# ---------------------------------------------------------------------------------------------
# generic tables
# ---------------------------------------------------------------------------------------------


def test_table_csv_is_parsed_exactly_and_appended(tmp_path):
    r = ingest_table(DATA / "sensor_days_ok.csv", "sensor_days", tmp_path)
    assert r.ok and r.written is not None
    got = HistoryStore(tmp_path).read("sensor_days")
    assert got["resident_id"].tolist() == ["007", "007", "012"]  # leading zeros kept
    assert np.isnan(got["steps"].iat[1]) and np.isnan(got["phone_calls"].iat[1])  # "" and "NA" are nulls
    assert got["steps"].tolist()[2] == 2500.5 and got["date"].dtype == "datetime64[ns]"

    again = ingest_table(DATA / "sensor_days_ok.csv", "sensor_days", tmp_path)
    assert not again.ok and again.written is None
    v = again.report.violations[0]
    assert (v.column, v.rule, v.count) == ("resident_id+date", "key already in the history", 3)
    assert v.examples == ["007/2024-03-01", "007/2024-03-02", "012/2024-03-01"]


def test_table_bad_csv_reports_every_rule_and_writes_nothing(tmp_path):
    r = ingest_table(DATA / "sensor_days_bad.csv", "sensor_days", tmp_path)
    assert not r.ok and r.written is None
    got = {(v.column, v.rule): (v.count, v.examples) for v in r.report.violations}
    assert got == {
        ("date", "not an ISO date/time without zone"): (1, ["012/NaT ('2024-03-0x')"]),
        ("steps", "not a number"): (1, ["012/NaT ('many')"]),
        ("date", "date with a time of day"): (1, ["007/2024-03-02 08:00:00"]),
        ("sleep_hours", "above maximum 16"): (1, ["013/2024-03-01"]),
    }  # the unparseable date is not reported a second time as a null
    assert not (tmp_path / "sensor_days").exists()


def test_table_ledger_must_balance(tmp_path):
    r = ingest_table(DATA / "ledger_unbalanced.csv", "ledger", tmp_path)
    assert [(v.rule, v.count, v.examples) for v in r.report.violations] == [
        ("transfer does not sum to zero", 2, ["L3", "L4"])]


def test_table_text_is_never_guessed_into_types(tmp_path):
    r = ingest_table(DATA / "residents_bad.csv", "residents", tmp_path)
    got = {(v.column, v.rule): v.examples for v in r.report.violations}
    assert got == {
        ("birth_year", "not a number"): ["R003 ('nineteen')"],
        ("lives_alone", "not a boolean (true/false/1/0)"): ["R002 ('yes')"],
        ("medication_count", "not a number"): ["R004 ('abc')"],
        ("birth_year", "not a whole number"): ["R002"],
        ("sex", "not one of F, M"): ["R003"],
        ("chronic_conditions", "null in a required column"): ["R003"],
    }


def test_table_parquet(tmp_path):
    good = tmp_path / "residents.parquet"
    valid_frames()["residents"].to_parquet(good)
    assert ingest_table(good, "residents", tmp_path / "h").ok
    bad = tmp_path / "bad.parquet"
    valid_frames()["residents"].assign(birth_year=[1940.0, 1950.5]).to_parquet(bad)
    r = ingest_table(bad, "residents", tmp_path / "h")
    assert [(v.column, v.rule, v.examples) for v in r.report.violations] == [
        ("birth_year", "not a whole number", ["R002"]),
        ("resident_id", "key already in the history", ["R001", "R002"]),
    ]
    assert len(HistoryStore(tmp_path / "h").read("residents")) == 2


def test_table_bad_requests(tmp_path):
    with pytest.raises(KeyError, match="unknown table"):
        ingest_table(DATA / "sensor_days_ok.csv", "sensorday", tmp_path)
    with pytest.raises(ValueError, match="expected a .csv"):
        ingest_table(DATA / "casas_clean.txt", "sensor_days", tmp_path)
    with pytest.raises(FileNotFoundError):
        ingest_table(tmp_path / "none.csv", "sensor_days", tmp_path)


# ---------------------------------------------------------------------------------------------
# the CLI, end to end
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def cli():
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["ingest", *map(str, args)])


def test_cli_table(cli, tmp_path):
    out = tmp_path / "h"
    res = cli("table", DATA / "sensor_days_ok.csv", "--table", "sensor_days", "--out", out)
    assert res.exit_code == 0, res.output
    assert "appended 3 rows" in res.output
    res = cli("table", DATA / "sensor_days_ok.csv", "--table", "sensor_days", "--out", out)
    assert res.exit_code == 1 and "key already in the history" in res.output and "nothing written" in res.output
    res = cli("table", DATA / "sensor_days_bad.csv", "--table", "sensor_days", "--out", out, "--json")
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert report["ok"] is False and {v["rule"] for v in report["violations"]} >= {"not a number", "above maximum 16"}
    assert len(HistoryStore(out).read("sensor_days")) == 3
    res = cli("table", DATA / "sensor_days_ok.csv", "--table", "nope", "--out", out)
    assert res.exit_code == 2 and "unknown table" in res.output


def test_cli_events(cli, tmp_path):
    out, notes = tmp_path / "h", tmp_path / "annotations.csv"
    args = ["events", DATA / "casas_messy.txt", "--format", "casas", "--sensor-map", DATA / "home_map.csv",
            "--resident", "R77", "--out", out]
    res = cli(*args, "--dry-run")
    assert res.exit_code == 0 and "malformed lines skipped: 3" in res.output
    assert not out.exists()
    res = cli(*args)
    assert res.exit_code == 0, res.output
    assert "written:" in res.output
    got = HistoryStore(out).read("sensor_days", residents=["R77"])
    assert got["kitchen_activity"].tolist() == [2.0, 1.0]
    res = cli(*args)
    assert res.exit_code == 1 and "key already in the history" in res.output

    res = cli("events", DATA / "casas_clean.txt", "--format", "casas", "--sensor-map", DATA / "home_map.json",
              "--resident", "R78", "--out", out, "--annotations", notes, "--json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["days"] == 3
    assert len(pd.read_csv(notes)) == 6

    res = cli("events", DATA / "intervals_clean.txt", "--format", "xml", "--sensor-map", DATA / "kasteren_map.csv",
              "--resident", "R79", "--out", out)
    assert res.exit_code == 2
    res = cli("events", DATA / "intervals_clean.txt", "--format", "intervals", "--sensor-map", DATA / "bad_role_map.csv",
              "--resident", "R79", "--out", out)
    assert res.exit_code == 2 and "garage" in res.output
    assert set(HistoryStore(out).read("sensor_days")["resident_id"]) == {"R77", "R78"}


@pytest.mark.parametrize(("name", "fmt", "sensor_map"), [
    ("casas_clean.txt", "casas", "home_map.csv"),
    ("casas_away.txt", "casas", "home_map.csv"),
    ("intervals_clean.txt", "intervals", "kasteren_map.csv"),
])
def test_shuffled_and_repeated_lines_give_the_same_days(tmp_path, name, fmt, sensor_map):
    lines = (DATA / name).read_text().splitlines()
    header, body = (lines[:1], lines[1:]) if fmt == "intervals" else ([], lines)
    rng = np.random.default_rng(3)
    messy = [body[i] for i in rng.permutation(len(body))] + [body[i] for i in rng.choice(len(body), 5, replace=False)]
    log = tmp_path / name
    log.write_text("\n".join(header + messy) + "\n")
    clean = read_log(name, fmt, sensor_map)
    shuffled = read_event_log(log, fmt, read_sensor_map(DATA / sensor_map), "R1")
    pd.testing.assert_frame_equal(shuffled.sensor_days, clean.sensor_days)
    assert shuffled.report.duplicates == 5 and shuffled.report.out_of_order > 0


def test_interval_arithmetic_matches_a_grid():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from twin.ingest_events import _intersect, _subtract, _total, _union

    spans = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 8)).map(lambda t: (float(t[0]), float(t[0] + t[1]))), max_size=8)

    def grid(s) -> np.ndarray:  # half-unit cells covered by the spans
        g = np.zeros(100, dtype=bool)
        for a, b in s:
            g[int(2 * a):int(2 * b)] = True
        return g

    @settings(max_examples=200, deadline=None)
    @given(spans, spans)
    def check(a, b):
        ua, ub = _union(a), _union(b)
        assert all(x[1] < y[0] for x, y in zip(ua, ua[1:], strict=False))  # sorted, disjoint
        assert np.array_equal(grid(ua), grid(a))
        assert np.array_equal(grid(_subtract(ua, ub)), grid(a) & ~grid(b))
        assert np.array_equal(grid(_intersect(ua, ub)), grid(a) & grid(b))
        assert _total(_subtract(ua, ub)) + _total(_intersect(ua, ub)) == pytest.approx(_total(ua))

    check()
