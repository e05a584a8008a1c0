"""A community whose history has no planted causes (a real one) learns its cause reader from a
reference twin's, judged on that twin's held-out rows; a folder without planted causes is refused
by name."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from training.cli import app

pytestmark = pytest.mark.slow


def test_a_community_without_planted_causes_learns_its_cause_reader_from_a_reference_twin(small_twin, tmp_path):
    from models.base import BoosterParams
    from models.registry import default_tracking_uri, load_version
    from training.config import TrainParams
    from training.tracking import run_of
    from training.train import train

    history = tmp_path / "history"
    shutil.copytree(small_twin, history, ignore=shutil.ignore_patterns("truth"))
    uri = default_tracking_uri(tmp_path / "w")
    summary = train("fall-risk", history, uri, TrainParams(booster=BoosterParams(num_trees=40)), cause_twin=small_twin)
    naming = summary.headline()["explanation_check"]["naming"]
    # judged on the twin it learned from (this history has nothing to judge it on), against the
    # largest SHAP sum, with an interval; served because it names the causes better there
    assert naming["judged_on"] == str(small_twin) and naming["rows"] > 0
    assert naming["reader_right"] > naming["largest_attribution_right"]
    assert naming["reader_over_largest_attribution_lo"] > 0 and naming["reader_kept"]
    loaded = load_version("fall_risk", uri, version=summary.version)
    assert loaded.cause_reader is not None and loaded.cause_reader.trained_on["history"] == str(small_twin)
    mv, run = run_of(uri, "fall_risk", summary.version)
    assert len(mv.tags["cause_reader_sha256"]) == 64
    # its figures say they were measured on the reference twin, not on this community
    assert "cause_named_right" not in run.data.metrics
    assert run.data.metrics["cause_twin_named_right"] == pytest.approx(naming["reader_right"])


def test_a_cause_twin_without_planted_causes_is_refused_by_name(small_twin, tmp_path):
    history = tmp_path / "history"
    shutil.copytree(small_twin, history, ignore=shutil.ignore_patterns("truth"))
    res = CliRunner().invoke(app, ["train", "fall-risk", "--history", str(history), "--tracking-uri",
                                   f"sqlite:///{tmp_path / 'm.db'}", "--cause-twin", str(history)])
    assert res.exit_code == 2
    said = " ".join(res.output.replace("│", " ").split())  # the error box, unwrapped
    assert "--cause-twin" in said and "has no truth/causes.parquet" in said
