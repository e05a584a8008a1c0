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
    """Replaying the past: features at D from a history that ends at D equal those from the full
    one, for everyone who lived in the community then; who moves in later is not in it yet."""
    as_of = pd.Timestamp("2024-07-01")
    full_history = load_history(small_twin)
    ev = full_history.events
    later = set(ev.loc[(ev["type"].astype(str) == "move_in") & (ev["date"] >= as_of), "resident_id"].astype(str))
    assert later  # the open community: some residents move in after the cut
    full = build_features(full_history, [as_of])
    cut_history = load_history(small_twin, end=as_of)
    cut = build_features(cut_history, [as_of])
    assert not later & set(cut_history.residents["resident_id"].astype(str))
    present = full[~full["resident_id"].astype(str).isin(later)].reset_index(drop=True)
    pd.testing.assert_frame_equal(present, cut.reset_index(drop=True), check_categorical=False)
    assert cut_history.sensor_days["date"].max() < as_of


def test_load_history_refuses_a_directory_without_residents(tmp_path):
    with pytest.raises(FileNotFoundError, match="no residents table"):
        load_history(tmp_path)
