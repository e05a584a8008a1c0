"""Steps hand artifacts on: a run records the fingerprint of the history it saw, training and the
promotion gate reuse the stored feature table of that very history instead of rebuilding it."""

from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.slow


def test_training_and_gate_reuse_the_feature_table_and_record_the_fingerprint(small_twin, tmp_path, monkeypatch):
    import features.pipeline as pipeline
    from features.pipeline import cached_features, load_history, weekly_as_of
    from models.base import BoosterParams
    from models.registry import default_tracking_uri
    from training.config import TrainParams
    from training.promote import promote
    from training.tracking import run_of
    from training.train import train
    from twin.store import HistoryStore

    history = tmp_path / "history"
    shutil.copytree(small_twin, history)
    features = tmp_path / "features"
    cached_features(history, weekly_as_of(load_history(history), warmup_days=90), features)  # `twincare features`

    real_build = pipeline.build_features

    def no_rebuild(history, dates, *args, **kwargs):
        # one date: the gate's behavioural checks score perturbed histories, which no table holds
        if len(dates) > 1:
            raise AssertionError("features were rebuilt although a stored table of this history covers them")
        return real_build(history, dates, *args, **kwargs)

    monkeypatch.setattr(pipeline, "build_features", no_rebuild)
    monkeypatch.setattr("training.data.build_features", no_rebuild)
    monkeypatch.setattr("training.promote.build_features", no_rebuild)

    uri = default_tracking_uri(tmp_path / "w")
    summary = train("isolation", history, uri, TrainParams(booster=BoosterParams(num_trees=20)), features_dir=features)
    _, run = run_of(uri, "isolation", summary.version)
    assert run.data.tags["history_fingerprint"] == HistoryStore(history).fingerprint()
    assert run.data.params["features_dir"] == str(features.resolve())

    decision = promote("isolation", uri, summary.version)
    assert decision.checks["history"]["same"] is True

    # the history moves on (a visit written back): the gate says so, and the stale table is not used
    monkeypatch.undo()
    visits = HistoryStore(history).read("visits")
    HistoryStore(history).append("visits", visits.head(1).assign(date=visits["date"].max()))
    decision = promote("isolation", uri, summary.version)
    assert decision.checks["history"]["same"] is False
    assert any("history has changed since training" in r for r in decision.reasons)
