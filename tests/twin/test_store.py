"""The history store: appends never rewrite the past; reads select columns, time ranges, residents."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from tests.twin.test_schema import valid_frames
from twin.schema import TABLES, SchemaError
from twin.store import HistoryStore


def sensor_days(resident: str, start: str, days: int, steps0: float = 1000.0) -> pd.DataFrame:
    df = valid_frames()["sensor_days"].iloc[[0] * days].reset_index(drop=True)
    df["resident_id"] = resident
    df["date"] = pd.date_range(start, periods=days, freq="D")
    df["steps"] = steps0 + np.arange(days, dtype="float64")
    return df


def fingerprint(folder) -> dict[str, tuple[int, str]]:
    """name -> (mtime_ns, sha256) of every part file."""
    return {
        p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.glob("*.parquet"))
    }


@pytest.fixture
def store(tmp_path) -> HistoryStore:
    s = HistoryStore(tmp_path / "history")
    s.append("sensor_days", sensor_days("R001", "2024-01-01", 10))
    s.append("sensor_days", sensor_days("R002", "2024-01-01", 10, steps0=5000.0))
    return s


def test_append_writes_a_new_part_and_never_touches_existing_ones(store):
    folder = store.table_dir("sensor_days")
    before = fingerprint(folder)
    assert len(before) == 2
    new = store.append("sensor_days", sensor_days("R001", "2024-01-11", 5))
    after = fingerprint(folder)
    assert set(after) == set(before) | {new.name}
    assert {k: after[k] for k in before} == before  # same bytes, same mtime
    assert not list(folder.glob(".*"))  # no temp file left behind
    assert len(store.read("sensor_days")) == 25


def test_a_refused_append_writes_nothing(store):
    folder = store.table_dir("sensor_days")
    before = fingerprint(folder)
    bad = sensor_days("R003", "2024-01-01", 3)
    bad.loc[1, "sleep_hours"] = 17.0
    with pytest.raises(SchemaError) as err:
        store.append("sensor_days", bad)
    v = err.value.report.violations[0]
    assert (v.table, v.column, v.rule, v.count, v.examples) == (
        "sensor_days", "sleep_hours", "above maximum 16", 1, ["R003/2024-01-02"])
    assert fingerprint(folder) == before


def test_extra_or_missing_columns_are_refused_not_dropped(store):
    with pytest.raises(SchemaError, match="column not in schema"):
        store.append("sensor_days", sensor_days("R003", "2024-01-01", 2).assign(mood=1.0))
    with pytest.raises(SchemaError, match="column missing"):
        store.append("sensor_days", sensor_days("R003", "2024-01-01", 2).drop(columns=["steps"]))
    assert len(store.read("sensor_days")) == 20


def test_reads_return_parts_in_the_order_they_were_appended(store):
    got = store.read("sensor_days", columns=["resident_id", "steps"])
    assert got["resident_id"].tolist() == ["R001"] * 10 + ["R002"] * 10
    assert got["steps"].tolist() == [1000.0 + i for i in range(10)] + [5000.0 + i for i in range(10)]


def test_column_selective_read(store):
    got = store.read("sensor_days", columns=["date", "steps"])
    assert list(got.columns) == ["date", "steps"] and len(got) == 20
    with pytest.raises(KeyError, match="mood"):
        store.read("sensor_days", columns=["steps", "mood"])


def test_time_range_is_start_inclusive_end_exclusive(store):
    got = store.read("sensor_days", start="2024-01-03", end="2024-01-06")
    assert sorted(got["date"].dt.day.unique()) == [3, 4, 5]
    assert len(got) == 6
    assert len(store.read("sensor_days", start="2024-01-10")) == 2
    assert len(store.read("sensor_days", end="2024-01-01")) == 0


def test_resident_filter_and_both_filters(store):
    got = store.read("sensor_days", residents=["R002"])
    assert set(got["resident_id"]) == {"R002"} and len(got) == 10
    got = store.read("sensor_days", ["resident_id", "date", "steps"], start="2024-01-09", residents=["R001", "R404"])
    assert got["steps"].tolist() == [1008.0, 1009.0]
    assert len(store.read("sensor_days", residents=[])) == 0


def test_types_survive_the_round_trip(store):
    got = store.read("sensor_days")
    assert got["date"].dtype == "datetime64[ns]"
    assert pd.api.types.is_string_dtype(got["resident_id"])
    assert (got["date"] == got["date"].dt.normalize()).all()
    assert got["gait_speed"].isna().sum() == 0 and got["steps"].dtype == "float64"


def test_nullable_columns_read_back_across_parts(tmp_path):
    s = HistoryStore(tmp_path)
    a = valid_frames()["assessments"]
    s.append("assessments", a.assign(loneliness_score=[4, 5]))  # int64 part
    s.append("assessments", a.assign(date=a["date"] + pd.Timedelta(days=30)))  # float64 part with NaN
    got = s.read("assessments")
    assert got["loneliness_score"].tolist()[:3] == [4.0, 5.0, 7.0] and np.isnan(got["loneliness_score"].iat[3])
    assert got["fear_of_falling"].isna().sum() == 2


def test_empty_table_reads_give_typed_zero_rows(tmp_path):
    s = HistoryStore(tmp_path / "nothing-here")
    assert not s.has("events") and s.tables() == []
    got = s.read("events")
    assert list(got.columns) == TABLES["events"].column_names and len(got) == 0
    assert got["date"].dtype == "datetime64[ns]"
    got = s.read("sensor_days", columns=["resident_id", "steps"], start="2024-01-01", residents=["R1"])
    assert list(got.columns) == ["resident_id", "steps"] and len(got) == 0


def test_write_replaces_a_table(store):
    store.write("sensor_days", sensor_days("R009", "2024-02-01", 3))
    got = store.read("sensor_days")
    assert set(got["resident_id"]) == {"R009"} and len(got) == 3
    assert store.tables() == ["sensor_days"]


def test_bad_requests_say_what_was_wrong(store):
    with pytest.raises(KeyError, match="unknown table 'sensors'"):
        store.read("sensors")
    with pytest.raises(ValueError, match="volunteers has no time column"):
        store.read("volunteers", start="2024-01-01")
    with pytest.raises(ValueError, match="ledger has no resident_id"):
        store.read("ledger", residents=["R001"])
    with pytest.raises(KeyError, match="unknown table"):
        store.append("sensors", sensor_days("R001", "2024-01-01", 1))


def test_fingerprint_is_stable_while_nothing_changes(store, tmp_path):
    fp = store.fingerprint()
    assert fp == store.fingerprint() == HistoryStore(store.root).fingerprint()
    # truth/ and the manifest are not part of the recorded history
    (store.root / "truth").mkdir()
    (store.root / "truth" / "latent.parquet").write_bytes(b"hidden")
    (store.root / "manifest.json").write_text("{}")
    assert store.fingerprint() == fp


def test_fingerprint_changes_when_a_part_is_appended_replaced_or_edited(store):
    fp = store.fingerprint()
    store.append("sensor_days", sensor_days("R003", "2024-01-01", 3))
    appended = store.fingerprint()
    assert appended != fp

    part = sorted(store.table_dir("sensor_days").glob("*.parquet"))[0]
    size = part.stat().st_size
    data = bytearray(part.read_bytes())
    data[size // 2] ^= 0xFF  # same name, same size, other bytes
    part.write_bytes(bytes(data))
    assert store.fingerprint() not in (fp, appended)

    store.write("sensor_days", sensor_days("R001", "2024-01-01", 10))
    assert store.fingerprint() not in (fp, appended)
