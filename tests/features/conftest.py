"""Small hand-made histories that satisfy twin/schema.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.pipeline import History
from twin.schema import TABLES, conform, empty_frame, require_valid

SIGNAL_COLUMNS = [c for c in TABLES["sensor_days"].column_names if c not in ("resident_id", "date")]


def table(name: str, rows: list[dict]) -> pd.DataFrame:
    """A schema-valid frame of `rows` (columns not given are null)."""
    schema = TABLES[name]
    if not rows:
        return empty_frame(schema)
    df = pd.DataFrame(rows)
    for col in schema.columns:
        if col.name not in df.columns:
            df[col.name] = None
        if col.kind in ("float", "int"):
            df[col.name] = pd.to_numeric(df[col.name].astype("object").where(df[col.name].notna(), np.nan))
    df = conform(df[schema.column_names], schema)
    return require_valid(df, schema)


def residents(n: int = 3) -> pd.DataFrame:
    return table("residents", [
        {
            "resident_id": f"R{i:03d}", "birth_year": 1940 + i, "sex": "F" if i % 2 == 0 else "M",
            "grid_id": "G1", "lives_alone": i % 2 == 0, "chronic_conditions": i,
            "medication_count": 2 * i, "vision_impairment": False, "cognitive_impairment": i == 1,
            "walking_aid": i == 2,
        }
        for i in range(n)
    ])


def sensor_days(resident_ids, start: str, days: int, seed: int = 0, missing: float = 0.1) -> pd.DataFrame:
    """Random but plausible daily sensor rows, some days missing and some nulls."""
    rng = np.random.default_rng(seed)
    rows = []
    for rid in resident_ids:
        for d in pd.date_range(start, periods=days, freq="D"):
            if rng.random() < missing:
                continue
            row = {
                "resident_id": rid, "date": d,
                "steps": float(rng.integers(500, 9000)), "gait_speed": round(rng.uniform(0.4, 1.3), 3),
                "night_toilet_visits": float(rng.integers(0, 5)), "sleep_hours": round(rng.uniform(4, 9), 2),
                "sleep_interruptions": float(rng.integers(0, 6)), "time_out_of_home": round(rng.uniform(0, 6), 2),
                "kitchen_activity": float(rng.integers(5, 80)), "longest_inactivity": round(rng.uniform(0.5, 5), 2),
                "visitors_detected": float(rng.integers(0, 3)), "phone_calls": float(rng.integers(0, 6)),
                "resting_heart_rate": float(rng.integers(55, 90)),
            }
            if rng.random() < 0.1:
                row["gait_speed"] = None
            rows.append(row)
    return table("sensor_days", rows)


@pytest.fixture
def small_history() -> History:
    """Three residents, 200 days from 2024-01-01, a few events, assessments, visits, tasks."""
    res = residents(3)
    ids = list(res["resident_id"])
    sd = sensor_days(ids, "2024-01-01", 200, seed=1)
    events = table("events", [
        {"event_id": "E1", "resident_id": "R000", "date": pd.Timestamp("2024-03-01"), "type": "fall", "injury": True},
        {"event_id": "E2", "resident_id": "R000", "date": pd.Timestamp("2024-05-20"), "type": "fall", "injury": False},
        {"event_id": "E3", "resident_id": "R001", "date": pd.Timestamp("2024-04-02"), "type": "hospitalisation", "injury": None},
        {"event_id": "E4", "resident_id": "R002", "date": pd.Timestamp("2024-02-10"), "type": "bereavement", "injury": None},
    ])
    assessments = table("assessments", [
        {"resident_id": "R000", "date": pd.Timestamp("2024-02-01"), "tug_seconds": 14.0, "fear_of_falling": True,
         "steadi_fell_past_year": False, "steadi_unsteady": True, "loneliness_score": 5.0},
        {"resident_id": "R000", "date": pd.Timestamp("2024-05-01"), "tug_seconds": 16.5, "loneliness_score": 7.0},
        {"resident_id": "R002", "date": pd.Timestamp("2024-03-15"), "loneliness_score": 8.0},
        {"resident_id": "R000", "date": pd.Timestamp("2024-05-25"), "loneliness_score": 9.0},
    ])
    visits = table("visits", [
        {"visit_id": "V1", "resident_id": "R000", "date": pd.Timestamp("2024-05-10"), "kind": "walk",
         "source": "timebank", "hours": 1.5, "task_id": "T1"},
        {"visit_id": "V2", "resident_id": "R000", "date": pd.Timestamp("2024-05-25"), "kind": "companionship",
         "source": "family", "hours": 2.0, "task_id": None},
    ])
    tasks = table("tasks", [
        {"task_id": "T1", "resident_id": "R000", "grid_id": "G1", "kind": "walk", "reason": "fall_risk",
         "created_at": pd.Timestamp("2024-05-08 09:00"), "due_date": pd.Timestamp("2024-05-12"),
         "status": "completed", "volunteer_id": "V001", "credits": 1.5,
         "completed_at": pd.Timestamp("2024-05-10 11:00")},
        {"task_id": "T2", "resident_id": "R001", "grid_id": "G1", "kind": "home_hazard_check",
         "reason": "after_fall", "created_at": pd.Timestamp("2024-03-01 09:00"),
         "due_date": pd.Timestamp("2024-03-08"), "status": "completed", "volunteer_id": "V001",
         "credits": 2.0, "completed_at": pd.Timestamp("2024-03-03 10:00")},
    ])
    requests = table("service_requests", [
        {"request_id": "Q1", "timestamp": pd.Timestamp("2024-05-15 10:30"), "resident_id": "R001",
         "grid_id": "G1", "category": "companionship"},
    ])
    return History(residents=res, sensor_days=sd, assessments=assessments, events=events, visits=visits,
                   service_requests=requests, tasks=tasks)
