"""A stored feature table is reused only for the same history and feature code."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from features import pipeline
from features.pipeline import build_features, cached_features, load_history
from twin.store import HistoryStore

DATES = pd.to_datetime(["2024-06-03", "2024-07-01"])


@pytest.fixture
def history(small_twin, tmp_path):
    """A private copy of the small twin's history tables (tests here append to it)."""
    src, dst = HistoryStore(small_twin), HistoryStore(tmp_path / "history")
    for table in src.tables():
        for part in src.parts(table):
            dst.table_dir(table).mkdir(parents=True, exist_ok=True)
            (dst.table_dir(table) / part.name).write_bytes(part.read_bytes())
    return dst.root


def _no_rebuild(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("rebuilt although the stored table fits")

    monkeypatch.setattr(pipeline, "build_features", refuse)


def test_first_call_builds_and_stores_then_the_table_is_reused(history, tmp_path, monkeypatch):
    cache = tmp_path / "features"
    built = cached_features(history, DATES, cache)
    pd.testing.assert_frame_equal(built, build_features(load_history(history), DATES))
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["history_fingerprint"] == HistoryStore(history).fingerprint()
    assert set(manifest["schema_hash"]) == {"falls", "loneliness"}

    _no_rebuild(monkeypatch)
    pd.testing.assert_frame_equal(cached_features(history, DATES, cache), built)
    # a covered subset of the dates is read back too
    later = cached_features(history, DATES[1:], cache)
    pd.testing.assert_frame_equal(later, built[built["as_of_date"] == DATES[1]].reset_index(drop=True))


def test_the_output_of_twincare_features_is_reused(history, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from training.cli import app

    out = tmp_path / "features"
    res = CliRunner().invoke(app, ["features", "--history", str(history), "--as-of",
                                   "2024-06-03,2024-07-01", "--out", str(out)])
    assert res.exit_code == 0, res.output
    _no_rebuild(monkeypatch)
    table = cached_features(history, DATES, out)
    pd.testing.assert_frame_equal(table, pd.read_parquet(out / "features.parquet"))


def test_uncovered_dates_are_built(history, tmp_path):
    cache = tmp_path / "features"
    cached_features(history, DATES[:1], cache)
    both = cached_features(history, DATES, cache)
    assert set(both["as_of_date"]) == set(DATES)
    assert json.loads((cache / "manifest.json").read_text())["as_of"] == ["2024-06-03", "2024-07-01"]


def test_a_changed_history_is_never_served_from_the_old_table(history, tmp_path):
    cache = tmp_path / "features"
    before = cached_features(history, DATES, cache)
    store = HistoryStore(history)
    fall = store.read("events").iloc[:1].assign(
        event_id="E-new", resident_id=before["resident_id"].iloc[0], date=pd.Timestamp("2024-06-20"),
        type="fall", injury=False)
    store.append("events", fall)
    after = cached_features(history, DATES, cache)
    pd.testing.assert_frame_equal(after, build_features(load_history(history), DATES))
    assert not after.equals(before)
    changed = after["resident_id"] == fall["resident_id"].iloc[0]
    late = changed & (after["as_of_date"] == DATES[1])
    assert (after.loc[late, "falls_30d"].to_numpy() == before.loc[late, "falls_30d"].to_numpy() + 1).all()


def test_other_feature_code_rebuilds(history, tmp_path, monkeypatch):
    cache = tmp_path / "features"
    cached_features(history, DATES, cache)
    monkeypatch.setattr(pipeline, "table_schema_hash", lambda: "another-feature-code")
    calls = []
    real = pipeline.build_features
    monkeypatch.setattr(pipeline, "build_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    cached_features(history, DATES, cache)
    assert calls == [1]
