"""A community whose history has no planted causes (a real one) learns its cause reader from a
reference twin's, judged on that twin's held-out rows; a folder without planted causes is refused
by name."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from training.cli import app

pytestmark = pytest.mark.slow


def test_a_community_without_planted_causes_has_its_cause_reader_judged_on_a_reference_twin(small_twin, tmp_path):
    """A community's history has no planted causes: the reader learns the reference twin's and is
    judged on that twin's held-out residents against the largest SHAP sum. This twin is too small
    for the reader to show it does better (a handful of held-out rows), so it is not served: the
    version names causes by the SHAP sums, and says why."""
    from models.base import BoosterParams
    from models.registry import default_tracking_uri, load_card, load_version
    from training.config import TrainParams
    from training.tracking import run_of
    from training.train import train

    history = tmp_path / "history"
    shutil.copytree(small_twin, history, ignore=shutil.ignore_patterns("truth"))
    uri = default_tracking_uri(tmp_path / "w")
    summary = train("fall-risk", history, uri, TrainParams(booster=BoosterParams(num_trees=40)), cause_twin=small_twin)
    naming = summary.headline()["explanation_check"]["naming"]
    assert naming["judged_on"] == str(small_twin)
    assert naming["reader_kept"] is False and naming["named_by"] == "largest_attribution"
    assert "cause reader not kept" in naming["note"]
    assert load_version("fall_risk", uri, version=summary.version).cause_reader is None
    mv, run = run_of(uri, "fall_risk", summary.version)
    assert "cause_reader_sha256" not in mv.tags
    # its figures say they were measured on the reference twin, not on this community
    assert "cause_named_right" not in run.data.metrics and "cause_twin_named_right" in run.data.metrics
    assert "not served (the interval reaches zero)" in load_card("fall_risk", uri, summary.version)


def test_a_cause_twin_without_planted_causes_is_refused_by_name(small_twin, tmp_path):
    history = tmp_path / "history"
    shutil.copytree(small_twin, history, ignore=shutil.ignore_patterns("truth"))
    res = CliRunner().invoke(app, ["train", "fall-risk", "--history", str(history), "--tracking-uri",
                                   f"sqlite:///{tmp_path / 'm.db'}", "--cause-twin", str(history)])
    assert res.exit_code == 2
    said = " ".join(res.output.replace("│", " ").split())  # the error box, unwrapped
    assert "--cause-twin" in said and "has no truth/causes.parquet" in said
