"""Serving and training call the same code: online vectors equal offline rows, exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.online import COUNT_DAYS, OnlineStore, OnlineStoreError, latest_as_of
from features.pipeline import build_features, load_history, weekly_as_of
from features.registry import table_schema_hash


@pytest.fixture(scope="module")
def twin_history(small_twin):
    return load_history(small_twin)


def test_online_vector_equals_the_training_row(twin_history, tmp_path):
    weekly = weekly_as_of(twin_history)
    as_of = weekly[-3]
    training = build_features(twin_history, weekly)  # the offline table, built for many dates
    store = OnlineStore(tmp_path / "online.db")
    n = store.materialise(twin_history, as_of)
    ids = sorted(training["resident_id"].unique())
    assert n == len(ids)
    assert store.as_of == as_of and store.schema_hash == table_schema_hash()
    online = store.get(ids)
    offline = training[training["as_of_date"] == as_of].reset_index(drop=True)
    pd.testing.assert_frame_equal(online, offline)  # exact, NaN included


def test_get_keeps_the_order_asked_and_names_unknown_ids(twin_history, tmp_path):
    store = OnlineStore(tmp_path / "online.db")
    store.materialise(twin_history)
    ids = store.resident_ids()
    assert store.as_of == latest_as_of(twin_history)
    picked = [ids[5], ids[0]]
    assert list(store.get(picked)["resident_id"]) == picked
    with pytest.raises(KeyError, match="NOPE-1.*NOPE-2"):
        store.get([ids[0], "NOPE-1", "NOPE-2"])


def test_store_refuses_a_different_feature_schema(twin_history, tmp_path):
    store = OnlineStore(tmp_path / "online.db")
    with pytest.raises(OnlineStoreError, match="empty"):
        store.get(["R1"])
    store.materialise(twin_history)
    import sqlite3

    with sqlite3.connect(store.path) as con:
        con.execute("UPDATE meta SET value = 'old' WHERE key = 'schema_hash'")
    with pytest.raises(OnlineStoreError, match="feature schema old"):
        store.get(store.resident_ids()[:1])


def test_materialise_keeps_a_year_of_demand_counts(twin_history, tmp_path):
    pytest.importorskip("features.demand")
    store = OnlineStore(tmp_path / "online.db")
    as_of = latest_as_of(twin_history)
    store.materialise(twin_history, as_of)
    counts = store.counts()
    assert len(counts) > 0
    first_request_day = twin_history.service_requests["timestamp"].min().normalize()
    assert counts["date"].min() == max(as_of - pd.Timedelta(days=COUNT_DAYS), first_request_day)
    assert counts["date"].max() == as_of - pd.Timedelta(days=1)
    one = counts["series_id"].iloc[0]
    assert set(store.counts([one])["series_id"]) == {one}


def test_put_counts_round_trip(tmp_path):
    store = OnlineStore(tmp_path / "online.db")
    df = pd.DataFrame({"series_id": ["g1:meals", "g1:meals"],
                       "date": pd.to_datetime(["2024-01-01", "2024-01-02"]), "count": [3.0, 0.0]})
    assert store.put_counts(df) == 2
    back = store.counts()
    pd.testing.assert_frame_equal(back, df.astype({"series_id": "str", "date": "datetime64[ns]"}))
    assert np.array_equal(store.counts(["other"])["count"], [])


def test_check_names_a_missing_or_empty_store_and_passes_a_materialised_one(twin_history, tmp_path):
    store = OnlineStore(tmp_path / "online.db")
    with pytest.raises(OnlineStoreError, match="does not exist"):
        store.check()
    store.put_counts(pd.DataFrame({"series_id": ["g1:meals"], "date": pd.to_datetime(["2024-01-01"]),
                                   "count": [1.0]}))
    with pytest.raises(OnlineStoreError, match="is empty"):
        store.check()
    store.materialise(twin_history, latest_as_of(twin_history))
    store.check()
