"""The history schema: every rule reports table, column, rule, count and example keys; nothing is
silently dropped or coerced."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twin.schema import (
    EVENT_TYPES,
    REQUEST_CATEGORIES,
    TABLES,
    TASK_KINDS,
    SchemaError,
    conform,
    empty_frame,
    require_valid,
    validate,
)

D = pd.Timestamp


def valid_frames() -> dict[str, pd.DataFrame]:
    """Two or three valid rows of every table."""
    return {
        "residents": pd.DataFrame({
            "resident_id": ["R001", "R002"], "birth_year": [1940, 1952], "sex": ["F", "M"],
            "grid_id": ["G01", "G02"], "lives_alone": [True, False], "chronic_conditions": [2, 0],
            "medication_count": [6, 1], "vision_impairment": [False, True],
            "cognitive_impairment": [False, False], "walking_aid": [True, False],
        }),
        "sensor_days": pd.DataFrame({
            "resident_id": ["R001", "R001", "R002"],
            "date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-01"]),
            "steps": [3200.0, np.nan, 5400.0], "gait_speed": [0.8, np.nan, 1.1],
            "night_toilet_visits": [2.0, 3.0, np.nan], "sleep_hours": [7.5, 6.0, 8.0],
            "sleep_interruptions": [1.0, 2.0, 0.0], "time_out_of_home": [1.5, 0.0, 3.0],
            "kitchen_activity": [12.0, 9.0, 20.0], "longest_inactivity": [3.0, 4.5, 2.0],
            "visitors_detected": [0.0, 1.0, np.nan], "phone_calls": [2.0, np.nan, 1.0],
            "resting_heart_rate": [68.0, 70.0, np.nan],
        }),
        "assessments": pd.DataFrame({
            "resident_id": ["R001", "R002"], "date": pd.to_datetime(["2024-02-01", "2024-02-03"]),
            "tug_seconds": [14.2, np.nan], "fear_of_falling": pd.array([True, None], dtype="boolean"),
            "steadi_fell_past_year": pd.array([False, True], dtype="boolean"),
            "steadi_unsteady": pd.array([True, None], dtype="boolean"), "loneliness_score": [7.0, np.nan],
        }),
        "events": pd.DataFrame({
            "event_id": ["E1", "E2"], "resident_id": ["R001", "R002"],
            "date": pd.to_datetime(["2024-03-01", "2024-03-04"]), "type": ["fall", "bereavement"],
            "injury": pd.array([True, None], dtype="boolean"),
        }),
        "service_requests": pd.DataFrame({
            "request_id": ["Q1", "Q2"], "timestamp": pd.to_datetime(["2024-01-01 09:30", "2024-01-02 14:00"]),
            "resident_id": ["R001", "R002"], "grid_id": ["G01", "G02"], "category": ["meals", "transport"],
        }),
        "visits": pd.DataFrame({
            "visit_id": ["V1"], "resident_id": ["R001"], "date": pd.to_datetime(["2024-01-05"]),
            "kind": ["walk"], "source": ["timebank"], "hours": [1.5], "task_id": ["T1"],
        }),
        "volunteers": pd.DataFrame({
            "volunteer_id": ["U1"], "grid_id": ["G01"], "joined_on": pd.to_datetime(["2023-06-01"]),
            "weekly_hours": [4.0],
        }),
        "tasks": pd.DataFrame({
            "task_id": ["T1", "T2"], "resident_id": ["R001", "R002"], "grid_id": ["G01", "G02"],
            "kind": ["walk", "meals"], "reason": ["fall risk high", "isolation high"],
            "created_at": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 11:00"]),
            "due_date": pd.to_datetime(["2024-01-03", "2024-01-09"]), "status": ["completed", "open"],
            "volunteer_id": ["U1", None], "credits": [1.5, 2.0],
            "completed_at": pd.to_datetime(["2024-01-02 15:00", None]),
        }),
        "ledger": pd.DataFrame({
            "entry_id": ["L1", "L2", "L3", "L4"], "transfer_id": ["X1", "X1", "X2", "X2"],
            "timestamp": pd.to_datetime(["2024-01-02 15:00"] * 2 + ["2024-01-03 09:00"] * 2),
            "account": ["fund:community", "volunteer:U1", "fund:community", "volunteer:U2"],
            "amount": [-1.5, 1.5, -0.25, 0.25], "memo": ["task T1", "task T1", "task T3", "task T3"],
        }),
    }


def only(report, rule: str):
    found = [v for v in report.violations if v.rule == rule]
    assert len(found) == 1, f"expected one {rule!r} violation, got {report}"
    return found[0]


@pytest.mark.parametrize("table", list(TABLES))
def test_every_table_accepts_valid_rows_and_its_empty_frame(table):
    df = conform(valid_frames()[table], table)
    assert validate(df, TABLES[table]).ok, validate(df, TABLES[table])
    empty = empty_frame(table)
    assert list(empty.columns) == TABLES[table].column_names
    assert len(empty) == 0 and validate(empty, TABLES[table]).ok


def test_the_fixture_covers_every_table():
    assert set(valid_frames()) == set(TABLES)


# (table, column, bad value, rule, example key) — one row broken, the rule must name it
RULES = [
    ("residents", "birth_year", 1890, "below minimum 1900", "R002"),
    ("residents", "medication_count", 31, "above maximum 30", "R002"),
    ("residents", "birth_year", 1950.5, "not a whole number", "R002"),
    ("residents", "sex", "X", "not one of F, M", "R002"),
    ("residents", "grid_id", "", "empty string", "R002"),
    ("residents", "grid_id", None, "null in a required column", "R002"),
    ("sensor_days", "steps", np.inf, "not finite", "R001/2024-01-02"),
    ("sensor_days", "gait_speed", 3.0, "above maximum 2.5", "R001/2024-01-02"),
    ("sensor_days", "night_toilet_visits", -1.0, "below minimum 0", "R001/2024-01-02"),
    ("sensor_days", "date", D("2024-01-02 12:00"), "date with a time of day", "R001/2024-01-02 12:00:00"),
    ("assessments", "loneliness_score", 10.0, "above maximum 9", "R002/2024-02-03"),
    ("assessments", "fear_of_falling", 0.5, "not a boolean", "R002/2024-02-03"),
    ("events", "type", "burglary", f"not one of {', '.join(EVENT_TYPES)}", "E2"),
    ("service_requests", "category", "laundry", f"not one of {', '.join(REQUEST_CATEGORIES)}", "Q2"),
    ("tasks", "kind", "gardening", f"not one of {', '.join(TASK_KINDS)}", "T2"),
    ("tasks", "credits", -1.0, "below minimum 0", "T2"),
    ("volunteers", "weekly_hours", 81.0, "above maximum 80", "U1"),
    ("visits", "hours", np.nan, "null in a required column", "V1"),
]


@pytest.mark.parametrize(("table", "column", "bad", "rule", "key"), RULES, ids=[f"{r[0]}.{r[1]}:{r[3]}" for r in RULES])
def test_each_rule_fires_with_table_column_count_and_keys(table, column, bad, rule, key):
    df = valid_frames()[table]
    row = min(1, len(df) - 1)
    if isinstance(bad, float) and pd.api.types.is_integer_dtype(df[column]):
        df[column] = df[column].astype("float64")
    try:
        df.loc[row, column] = bad
    except (TypeError, ValueError):  # e.g. 0.5 into a boolean array: hold it as objects
        df[column] = df[column].astype(object)
        df.loc[row, column] = bad
    before = df.copy()
    report = validate(df, TABLES[table])
    v = only(report, rule)
    assert (v.table, v.column, v.count) == (table, column, 1)
    assert v.examples == [key]
    assert rule in str(report) and table in str(report)
    pd.testing.assert_frame_equal(df, before)  # validate never modifies
    with pytest.raises(SchemaError) as err:
        require_valid(df, table)
    assert err.value.report.violations == report.violations


def test_missing_and_extra_columns_are_reported_not_dropped():
    df = valid_frames()["events"].drop(columns=["injury"]).assign(note="x")
    report = validate(df, TABLES["events"])
    assert only(report, "column missing").column == "injury"
    assert only(report, "column not in schema").column == "note"


def test_a_column_of_the_wrong_kind_is_reported_with_example_keys():
    df = valid_frames()["residents"]
    df["chronic_conditions"] = ["two", "none"]
    v = only(validate(df, TABLES["residents"]), "expected int, got str")
    assert v.count == 2 and v.examples == ["R001", "R002"]


def test_non_strings_in_a_text_column_are_reported():
    df = valid_frames()["residents"]
    df["grid_id"] = pd.Series(["G01", 7], dtype=object)
    v = only(validate(df, TABLES["residents"]), "not a string")
    assert v.count == 1 and v.examples == ["R002"]


def test_duplicate_keys_count_every_copy():
    df = valid_frames()["sensor_days"]
    df.loc[2, ["resident_id", "date"]] = ["R001", D("2024-01-02")]
    v = only(validate(df, TABLES["sensor_days"]), "duplicate key")
    assert v.column == "resident_id+date" and v.count == 2
    assert v.examples == ["R001/2024-01-02", "R001/2024-01-02"]


def test_ledger_transfers_must_sum_to_zero():
    df = valid_frames()["ledger"]
    assert validate(df, TABLES["ledger"]).ok
    df.loc[3, "amount"] = 0.5  # X2 now books -0.25 and +0.5
    v = only(validate(df, TABLES["ledger"]), "transfer does not sum to zero")
    assert v.column == "amount" and v.count == 2 and v.examples == ["L3", "L4"]


def test_ledger_sum_tolerates_float_rounding_only():
    df = valid_frames()["ledger"]
    df["amount"] = [-0.3, 0.1 + 0.2, -1.0, 1.0 + 1e-6]
    v = only(validate(df, TABLES["ledger"]), "transfer does not sum to zero")
    assert v.examples == ["L3", "L4"]


def test_zone_aware_times_are_rejected_not_converted():
    df = valid_frames()["service_requests"]
    df["timestamp"] = df["timestamp"].dt.tz_localize("Europe/Madrid")
    out = conform(df, "service_requests")
    assert str(out["timestamp"].dtype).endswith("Europe/Madrid]")
    assert not validate(out, TABLES["service_requests"]).ok


class TestConformCastsOnlyWhereExact:
    def test_whole_floats_become_ints_and_fractions_stay_for_validate(self):
        df = valid_frames()["residents"]
        df["birth_year"] = [1940.0, 1952.0]
        assert conform(df, "residents")["birth_year"].dtype == "int64"
        df["birth_year"] = [1940.0, 1952.5]
        out = conform(df, "residents")
        assert out["birth_year"].tolist() == [1940.0, 1952.5]  # not truncated to 1952
        assert only(validate(out, TABLES["residents"]), "not a whole number").examples == ["R002"]

    def test_text_is_never_read_as_a_boolean(self):
        df = valid_frames()["residents"]
        df["lives_alone"] = ["no", "yes"]  # astype(bool) would make both True
        out = conform(df, "residents")
        assert out["lives_alone"].tolist() == ["no", "yes"]
        assert not validate(out, TABLES["residents"]).ok

    def test_zero_one_become_booleans_and_other_numbers_do_not(self):
        df = valid_frames()["residents"]
        df["walking_aid"] = [0, 1]
        assert conform(df, "residents")["walking_aid"].tolist() == [False, True]
        df["walking_aid"] = [0, 2]
        out = conform(df, "residents")
        assert out["walking_aid"].tolist() == [0, 2]
        assert only(validate(out, TABLES["residents"]), "expected bool, got int64").examples == ["R002"]

    def test_numbers_are_not_dates(self):
        df = valid_frames()["events"]
        df["date"] = [20240301, 20240304]
        out = conform(df, "events")
        assert out["date"].tolist() == [20240301, 20240304]
        assert only(validate(out, TABLES["events"]), "expected date, got int64").count == 2

    def test_iso_text_becomes_datetime(self):
        df = valid_frames()["events"]
        df["date"] = ["2024-03-01", "2024-03-04"]
        out = conform(df, "events")
        assert out["date"].dtype == "datetime64[ns]" and validate(out, TABLES["events"]).ok

    def test_nullable_columns_get_nullable_dtypes(self):
        df = valid_frames()["assessments"]
        df["loneliness_score"] = [7, None]
        df["fear_of_falling"] = pd.Series([True, None], dtype=object)
        out = conform(df, "assessments")
        assert out["loneliness_score"].dtype == "float64"
        assert str(out["fear_of_falling"].dtype) == "boolean"
        assert validate(out, TABLES["assessments"]).ok

    def test_integer_ids_become_text_but_fractions_do_not(self):
        df = valid_frames()["residents"]
        df["grid_id"] = [101, 102]
        assert conform(df, "residents")["grid_id"].tolist() == ["101", "102"]
        df["grid_id"] = [1.5, 2.0]
        out = conform(df, "residents")
        assert out["grid_id"].dtype == "float64"
        assert not validate(out, TABLES["residents"]).ok

    def test_conform_keeps_rows_and_columns(self):
        df = valid_frames()["tasks"].assign(extra=1)
        out = conform(df, "tasks")
        assert len(out) == len(df) and list(out.columns) == list(df.columns)


def test_columns_without_values_take_their_canonical_dtype():
    tasks = pd.DataFrame({c: [] for c in TABLES["tasks"].column_names})  # empty lists are float64
    assert validate(conform(tasks, "tasks"), TABLES["tasks"]).ok
    df = valid_frames()["tasks"]
    df["volunteer_id"] = [None, None]
    df["completed_at"] = [None, None]
    out = conform(df, "tasks")
    assert pd.api.types.is_string_dtype(out["volunteer_id"]) and out["completed_at"].dtype == "datetime64[ns]"
    assert validate(out, TABLES["tasks"]).ok
    res = valid_frames()["residents"]
    res["walking_aid"] = [None, None]  # never turned into False
    out = conform(res, "residents")
    assert out["walking_aid"].isna().all()
    assert only(validate(out, TABLES["residents"]), "null in a required column").count == 2
