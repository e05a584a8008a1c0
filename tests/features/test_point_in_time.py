"""Leakage property: whatever happens on or after the as-of date changes nothing at it.

For every table that feeds features, the rows recorded on or after the as-of date are replaced by
arbitrary other rows (changed, added, or removed altogether), including rows exactly at 00:00 of
the as-of date; the feature rows at that date (and at an earlier one) must be identical.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from features.pipeline import History, build_features
from tests.features.conftest import SIGNAL_COLUMNS, residents, table
from twin.schema import (
    EVENT_TYPES,
    REQUEST_CATEGORIES,
    TABLES,
    TASK_KINDS,
    TASK_STATUSES,
    VISIT_SOURCES,
)

START = pd.Timestamp("2023-11-01")
BASE_AS_OF = pd.Timestamp("2024-03-04")
IDS = ["R000", "R001", "R002"]
TIME_COLUMN = {"sensor_days": "date", "assessments": "date", "events": "date", "visits": "date",
               "service_requests": "timestamp", "tasks": "created_at"}


def _when(rng: np.random.Generator, lo: pd.Timestamp, hi: pd.Timestamp, with_time: bool) -> pd.Timestamp:
    """A random day in [lo, hi) (often exactly lo), at midnight or a random time of day."""
    span = max(1, (hi - lo).days)
    d = lo + pd.Timedelta(days=0 if rng.random() < 0.2 else int(rng.integers(0, span)))
    if with_time and rng.random() < 0.7:
        d += pd.Timedelta(seconds=int(rng.integers(0, 86_400)))
    return d


def _signal_value(rng, name: str):
    col = TABLES["sensor_days"].column(name)
    if rng.random() < 0.15:
        return None
    return float(np.round(rng.uniform(col.min, col.max), 3))


def random_rows(name: str, rng: np.random.Generator, lo: pd.Timestamp, hi: pd.Timestamp, n: int, tag: str) -> pd.DataFrame:
    """`n` schema-valid rows of table `name` recorded in [lo, hi)."""
    rows = []
    if name == "sensor_days":
        days = pd.date_range(lo, hi - pd.Timedelta(days=1), freq="D")
        for rid in IDS:
            for d in days:
                if rng.random() < 0.15:
                    continue
                rows.append({"resident_id": rid, "date": d, **{c: _signal_value(rng, c) for c in SIGNAL_COLUMNS}})
        return table(name, rows)
    for i in range(n):
        rid = IDS[int(rng.integers(0, len(IDS)))]
        if name == "assessments":
            rows.append({"resident_id": rid, "date": _when(rng, lo, hi, False),
                         "tug_seconds": None if rng.random() < .3 else float(np.round(rng.uniform(3, 120), 1)),
                         "fear_of_falling": None if rng.random() < .3 else bool(rng.random() < .5),
                         "steadi_fell_past_year": None if rng.random() < .3 else bool(rng.random() < .5),
                         "steadi_unsteady": None if rng.random() < .3 else bool(rng.random() < .5),
                         "loneliness_score": None if rng.random() < .3 else float(rng.integers(3, 10))})
        elif name == "events":
            kind = EVENT_TYPES[int(rng.integers(0, len(EVENT_TYPES)))]
            rows.append({"event_id": f"E{tag}{i}", "resident_id": rid, "date": _when(rng, lo, hi, False),
                         "type": kind, "injury": bool(rng.random() < .4) if kind == "fall" else None})
        elif name == "visits":
            rows.append({"visit_id": f"V{tag}{i}", "resident_id": rid, "date": _when(rng, lo, hi, False),
                         "kind": TASK_KINDS[int(rng.integers(0, len(TASK_KINDS)))],
                         "source": VISIT_SOURCES[int(rng.integers(0, len(VISIT_SOURCES)))],
                         "hours": float(np.round(rng.uniform(0, 24), 2)), "task_id": None})
        elif name == "service_requests":
            rows.append({"request_id": f"Q{tag}{i}", "timestamp": _when(rng, lo, hi, True), "resident_id": rid,
                         "grid_id": "G1", "category": REQUEST_CATEGORIES[int(rng.integers(0, len(REQUEST_CATEGORIES)))]})
        elif name == "tasks":
            created = _when(rng, lo, hi, True)
            status = TASK_STATUSES[int(rng.integers(0, len(TASK_STATUSES)))]
            done = created + pd.Timedelta(hours=float(rng.uniform(0, 200))) if status == "completed" else None
            rows.append({"task_id": f"T{tag}{i}", "resident_id": rid, "grid_id": "G1", "kind": "walk",
                         "reason": "fall_risk", "created_at": created, "due_date": created.normalize(),
                         "status": status, "volunteer_id": "V1" if done is not None else None,
                         "credits": 1.0, "completed_at": done})
    if name == "assessments":
        rows = list({(r["resident_id"], r["date"]): r for r in rows}.values())
    return table(name, rows)


def history_of(parts: dict[str, pd.DataFrame]) -> History:
    return History(residents=residents(len(IDS)), **parts)


def base_parts(seed: int, as_of: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """A history up to 40 days past `as_of`, as separate tables."""
    rng = np.random.default_rng(seed)
    end = as_of + pd.Timedelta(days=40)
    return {name: random_rows(name, rng, START, end, 25, "b") for name in TIME_COLUMN}


def before(df: pd.DataFrame, name: str, as_of: pd.Timestamp) -> pd.DataFrame:
    return df[df[TIME_COLUMN[name]] < as_of]


def rewrite_unfinished(tasks: pd.DataFrame, as_of: pd.Timestamp, rng) -> pd.DataFrame:
    """Tasks opened before `as_of` but not completed before it: their later fate is future
    history, so give them another one (completed at or after 00:00 of `as_of`, or never)."""
    out = tasks.copy()
    late = ~(out["completed_at"].notna() & (out["completed_at"] < as_of))
    n = int(late.sum())
    finish = pd.Series([as_of + pd.Timedelta(hours=float(h)) for h in rng.choice([0.0, 5.0, 90.0], n)],
                       index=out.index[late], dtype="datetime64[ns]")
    done = rng.random(n) < 0.6
    out.loc[late, "status"] = np.where(done, "completed", "expired")
    out.loc[late, "completed_at"] = finish.where(done)
    return out


# No shrinking: a failing example is printed as found (shrinking one takes minutes here).
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


@settings(max_examples=40, deadline=None, phases=NO_SHRINK, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    future_seed=st.integers(0, 2**16),
    shift=st.integers(0, 60),
    tables=st.sets(st.sampled_from(sorted(TIME_COLUMN)), min_size=1),
    n_future=st.integers(0, 30),
)
def test_history_after_the_as_of_date_changes_nothing_at_it(seed, future_seed, shift, tables, n_future):
    as_of = BASE_AS_OF + pd.Timedelta(days=shift)
    earlier = as_of - pd.Timedelta(days=9)
    parts = base_parts(seed, as_of)
    changed = dict(parts)
    rng = np.random.default_rng(future_seed)
    for name in tables:
        future = random_rows(name, rng, as_of, as_of + pd.Timedelta(days=50), n_future, "f")
        kept = before(parts[name], name, as_of)
        if name == "tasks":
            kept = rewrite_unfinished(kept, as_of, rng)
        changed[name] = pd.concat([kept, future], ignore_index=True)

    original = build_features(history_of(parts), [earlier, as_of])
    altered = build_features(history_of(changed), [earlier, as_of])
    pd.testing.assert_frame_equal(original, altered)


@settings(max_examples=15, deadline=None, phases=NO_SHRINK)
@given(seed=st.integers(0, 2**16), extra=st.lists(st.integers(1, 200), min_size=1, max_size=4))
def test_a_row_does_not_depend_on_the_other_dates_asked_for(seed, extra):
    """The same (resident, date) row whether built alone or with other as-of dates (serving vs training)."""
    hist = history_of(base_parts(seed, BASE_AS_OF))
    alone = build_features(hist, [BASE_AS_OF])
    others = [BASE_AS_OF + pd.Timedelta(days=d) for d in extra] + [BASE_AS_OF - pd.Timedelta(days=d) for d in extra]
    together = build_features(hist, [BASE_AS_OF, *others])
    same = together[together["as_of_date"] == BASE_AS_OF].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, same)


def test_the_property_can_fail():
    """Sanity: a row on the day before the as-of date does change it (the test is not vacuous)."""
    parts = base_parts(3, BASE_AS_OF)
    a = build_features(history_of(parts), [BASE_AS_OF])
    sd = parts["sensor_days"].copy()
    last = sd["date"] == BASE_AS_OF - pd.Timedelta(days=1)
    sd.loc[last, "steps"] = 59_000.0
    b = build_features(history_of({**parts, "sensor_days": sd}), [BASE_AS_OF])
    assert not a["steps_7d"].equals(b["steps_7d"])
