"""The Dask engine runs the same partition function: identical tables to the pandas engine."""

from __future__ import annotations

import pandas as pd

from features.pipeline import build_features, load_history, weekly_as_of


def test_pandas_and_dask_tables_are_identical(small_twin):
    history = load_history(small_twin)
    dates = weekly_as_of(history)[::4]
    pandas_table = build_features(history, dates, engine="pandas")
    dask_table = build_features(history, dates, engine="dask", n_partitions=3)
    assert len(pandas_table) == len(dates) * len(history.residents)
    pd.testing.assert_frame_equal(pandas_table, dask_table)


def test_dask_runs_on_a_given_scheduler(small_history):
    from dask.distributed import LocalCluster

    dates = ["2024-05-06", "2024-06-03"]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        remote = build_features(small_history, dates, engine="dask", scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(remote, build_features(small_history, dates))
