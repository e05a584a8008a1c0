"""`twincare retrain` trains, gates and promotes every model and writes each version's card;
`twincare monitor` judges every champion, flags a planted sensor drift and logs its report."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from models.registry import SPECS, risk_specs
from tests.training.twins import MODEL_TWIN, model_twin_dir
from twin.store import HistoryStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """Champions of every model trained by `retrain` on the model twin as known 9 weeks before its
    end (lenient gate: a twin this small cannot show the published margins; the plumbing is under
    test). Returns (uri, the whole history, retrain's outcome)."""
    from models.base import BoosterParams
    from models.registry import default_tracking_uri
    from models.spec import PromotionRule
    from training.config import PromotionMargins, TrainParams
    from training.monitor import default_as_of
    from training.retrain import retrain
    from training.tracking import CHAMPION, alias_version, set_alias
    from twin.scenarios import history_until

    root = tmp_path_factory.mktemp("monitor_home")
    history = root / "history"
    shutil.copytree(model_twin_dir(tmp_path_factory), history)
    # the champions learn from the history known 9 weeks ago; the monitor sees what came since
    past = history_until(history, root / "past", default_as_of(history) - pd.Timedelta(days=63))
    uri = default_tracking_uri(root)
    lenient = {n: PromotionRule(auroc_over_baseline=-1.0, brier_under_baseline=None) for n in risk_specs()}
    params = TrainParams(booster=BoosterParams(num_trees=40),
                         promotion=PromotionMargins(models=lenient, wape_under_naive=-10.0,
                                                    coverage_tolerance=1.0, behaviour_tolerance=1.0))
    out = retrain(past, uri, params, echo=lambda _: None)
    for name in SPECS:  # behaviour checks need a larger twin than this one
        if alias_version(uri, name, CHAMPION) is None:
            set_alias(uri, name, CHAMPION, out[name]["version"])
    return uri, history, out


def test_retrain_trains_every_model_and_logs_a_card_with_each_version(home):
    from models.registry import load_card

    uri, history, out = home
    assert list(out) == list(SPECS)
    for name, o in out.items():
        card = load_card(name, uri, o["version"])
        assert card.startswith(f"# Model card: {SPECS[name].title}")
        for section in ("## Intended use", "## Training data", "## Features", "## Promotion gate",
                        "## Known limits"):
            assert section in card, (name, section)
        assert ("promoted to @champion" in card) == o["promoted"]
        assert "history fingerprint" in card
        html = load_card(name, uri, o["version"], "html")
        assert html.startswith("<!doctype html>") and "<table>" in html
    fall = load_card("fall_risk", uri, out["fall_risk"]["version"])
    assert "## Test-window metrics against the baselines" in fall and "steadi" in fall.lower()
    assert "## Calibration" in fall and "platt" in fall
    assert "WAPE" in load_card("demand", uri, out["demand"]["version"])


def test_the_card_shows_the_history_fingerprint_when_the_run_records_one(home):
    from models.registry import load_card
    from training.model_card import log_model_card
    from training.tracking import log_to_run, run_of

    uri, _, out = home
    _, run = run_of(uri, "isolation", out["isolation"]["version"])
    log_to_run(uri, run.info.run_id, tags={"history_fingerprint": "sha256:abc123"})
    log_model_card("isolation", out["isolation"]["version"], uri)
    assert "sha256:abc123" in load_card("isolation", uri, out["isolation"]["version"])


def test_monitor_on_the_unchanged_twin_reports_every_champion_with_reasons(home):
    from training.monitor import monitor

    uri, history, _ = home
    r = monitor(uri, str(history))
    residents = HistoryStore(history).read("residents", ["resident_id"])
    assert len(residents) > MODEL_TWIN["residents"]
    assert list(r.models) == list(SPECS)
    for name, m in r.models.items():
        assert m["verdict"] in ("ok", "watch", "retrain") and m["reasons"], name
    for name in risk_specs():
        m = r.models[name]
        # two weekly as-of dates x every resident the history has had (the community is open)
        assert m["rows"]["current"] == 2 * len(residents) and m["rows"]["reference"] > m["rows"]["current"]
        assert m["feature_drift"]["features"] == len(SPECS[name].feature_names())
        chk = m["test_window_check"]
        assert 0.5 < chk["estimated_auroc"] < 1 and abs(chk["difference"]) < 0.1
        assert "feature_drift" not in " ".join(m["fired"])  # nothing planted, no input shift
    # the young history's year-long windows have filled since training: seen, not taken for drift
    lonely = {r["feature"]: r for r in r.models["isolation"]["feature_drift"]["per_feature"]}
    trend = lonely["loneliness_score_trend_365d"]
    assert trend["psi_full_history"] >= 0.25 and trend["depth_only"] and trend["psi"] < 0.25
    fall = r.models["fall_risk"]["realised"]  # the weeks since training have matured 30-day labels
    assert len(fall["weeks"]) >= 3 and fall["rows"] > 0 and fall["estimated_auroc"] is not None
    assert r.models["demand"]["current"]["rows"] > 0


def test_monitor_flags_doubled_step_counts_within_two_weeks(home, tmp_path):
    from training.monitor import default_as_of, monitor
    from twin.scenarios import apply_scenario

    uri, history, _ = home
    start = default_as_of(history) - pd.Timedelta(days=14)
    drifted = apply_scenario(history, tmp_path / "h", "step_firmware", start)
    r = monitor(uri, str(drifted))
    for name in risk_specs():
        m = r.models[name]
        # how far the verdict goes depends on how much the model leans on steps; it is never ok
        assert m["verdict"] in ("watch", "retrain"), (name, m["reasons"])
        assert any(f.startswith("feature_drift") for f in m["fired"]) and "steps" in m["reasons"][0]
        top = m["feature_drift"]["per_feature"][0]
        assert "steps" in top["feature"] and top["psi"] >= 0.25


def test_monitor_logs_its_report_beside_the_model_runs_and_the_cli_prints_verdicts(home, tmp_path):
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from training.cli import app

    uri, history, _ = home
    res = CliRunner().invoke(app, ["monitor", "--history", str(history), "--tracking-uri", uri,
                                   "--out", str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert set(summary["verdicts"]) == set(SPECS)
    page = (tmp_path / "report" / "monitor.html").read_text()
    assert "data:image/png;base64," in page and "Feature drift" in page
    client = MlflowClient(tracking_uri=uri)
    for name, run_id in summary["mlflow_runs"].items():
        run = client.get_run(run_id)
        assert run.data.tags["kind"] == "monitor" and run.data.tags["verdict"] == summary["verdicts"][name]
        assert client.get_experiment(run.info.experiment_id).name == name
        assert {a.path for a in client.list_artifacts(run_id)} >= {"monitor.html", "monitor.json"}
        assert "verdict_level" in run.data.metrics
