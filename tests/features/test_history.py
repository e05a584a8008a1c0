"""Loading the history: only the needed tables and columns, cut at `end` when asked."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from features.pipeline import COLUMNS, build_features, load_history


def test_load_history_reads_only_feature_columns_and_never_truth(small_twin, tmp_path):
    copy = tmp_path / "history"
    shutil.copytree(small_twin, copy)
    shutil.rmtree(copy / "truth")
    (copy / "truth").write_text("not a directory: feature code must not look here")
    history = load_history(copy)
    for name, df in history.tables().items():
        assert list(df.columns) == list(COLUMNS[name]), name


def test_history_cut_at_the_as_of_date_gives_the_same_features(small_twin):
    """Replaying the past: features at D from a history that ends at D equal those from the full one."""
    as_of = pd.Timestamp("2024-07-01")
    full = build_features(load_history(small_twin), [as_of])
    cut = build_features(load_history(small_twin, end=as_of), [as_of])
    pd.testing.assert_frame_equal(full, cut)
    assert load_history(small_twin, end=as_of).sensor_days["date"].max() < as_of


def test_load_history_refuses_a_directory_without_residents(tmp_path):
    with pytest.raises(FileNotFoundError, match="no residents table"):
        load_history(tmp_path)
