"""A community names a reference: the reference's champion becomes a candidate, the best passing
candidate serves and says so, and a reference on another feature schema is refused by name."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from models.base import BASELINE_KIND, LOCAL_KIND, REFERENCE_KIND
from models.spec import PromotionRule
from training.candidates import choose, passes

SURE = {"auroc": 0.80, "auroc_gain": 0.06, "auroc_gain_lo": 0.01, "auroc_gain_hi": 0.11,
        "brier_gain": 0.01, "brier_gain_lo": 0.002, "brier_gain_hi": 0.02}


def test_a_candidate_passes_on_the_margin_at_the_point_and_a_gain_that_is_not_noise():
    rule = PromotionRule(auroc_over_baseline=0.05)
    assert passes(rule, SURE)
    assert not passes(rule, {**SURE, "auroc_gain": 0.04})  # below the margin
    assert not passes(rule, {**SURE, "auroc_gain_lo": -0.01})  # the gain may be noise
    brier = PromotionRule(auroc_over_baseline=0.0, brier_under_baseline=0.0)
    assert passes(brier, SURE)
    assert not passes(brier, {**SURE, "brier_gain_lo": -0.001})  # the Brier reduction may be noise


def test_the_best_passing_candidate_serves_else_the_baseline():
    rule = PromotionRule(auroc_over_baseline=0.05)
    better = {**SURE, "auroc": 0.84}
    choice = choose(rule, {LOCAL_KIND: SURE, REFERENCE_KIND: better})
    assert choice.passing == [REFERENCE_KIND, LOCAL_KIND] and choice.best == REFERENCE_KIND
    # a higher AUROC does not serve when its gain over the baseline may be noise
    noisy = {**better, "auroc_gain_lo": -0.02}
    assert choose(rule, {LOCAL_KIND: SURE, REFERENCE_KIND: noisy}).best == LOCAL_KIND
    assert choose(rule, {LOCAL_KIND: {**SURE, "auroc_gain": 0.01}}).best == BASELINE_KIND


def test_a_reference_folder_without_a_registry_is_refused_by_name(tmp_path):
    from training.reference import ReferenceRefused, reference_uri

    with pytest.raises(ReferenceRefused, match="no mlflow.db"):
        reference_uri(tmp_path)
    assert reference_uri("sqlite:///x/mlflow.db") == "sqlite:///x/mlflow.db"


# ---------------------------------------------------------------------------------------------
# on the small twin: a reference community's isolation model against a weak local one
# ---------------------------------------------------------------------------------------------

MODEL = "isolation"


@pytest.fixture(scope="module")
def reference(small_twin, tmp_path_factory) -> dict:
    """A reference work directory whose isolation champion was trained on the same kind of
    community with a full booster; a features folder shared by the tests."""
    from models.base import BoosterParams
    from models.registry import default_tracking_uri
    from training.config import TrainParams
    from training.tracking import set_alias
    from training.train import train

    root = tmp_path_factory.mktemp("reference")
    features = root / "features"
    uri = default_tracking_uri(root / "ref")
    s = train(MODEL, small_twin, uri, TrainParams(booster=BoosterParams(num_trees=30)), features_dir=features)
    set_alias(uri, MODEL, "champion", s.version)
    return {"dir": root / "ref", "uri": uri, "version": s.version, "features": features}


@pytest.mark.slow
def test_a_reference_that_beats_the_local_model_is_promoted_and_served_as_a_reference(small_twin, reference,
                                                                                         tmp_path):
    from features.pipeline import build_features, load_history
    from models.base import BoosterParams
    from models.registry import default_tracking_uri, get_spec, load_champion, load_version
    from serving.api.common import assessments_of
    from serving.scoring import Champion, score_chunk
    from training.config import PromotionMargins, TrainParams
    from training.retrain import retrain
    from training.tracking import model_version_tags

    uri = default_tracking_uri(tmp_path)
    # a small community's weak local model (one stump), judged by a rule both candidates can pass
    lenient = PromotionMargins(models={MODEL: PromotionRule(auroc_over_baseline=-1.0)})
    out = retrain(small_twin, uri, TrainParams(booster=BoosterParams(num_trees=1, num_leaves=2), promotion=lenient),
                  models=[MODEL], echo=lambda _: None, features_dir=reference["features"],
                  reference=reference["dir"])[MODEL]
    ref = out["reference_version"]
    assert ref["test"]["auroc"] > out["test"]["auroc"]  # the premise: the reference is better here
    assert out["passing"][0] == REFERENCE_KIND and ref["promoted"] and not out["promoted"]
    assert out["champion"] == {"version": ref["version"], "kind": REFERENCE_KIND}

    served = load_champion(MODEL, uri)
    source = load_version(MODEL, reference["uri"])
    assert served.extra["kind"] == REFERENCE_KIND
    assert served.calibration == source.calibration  # its calibration kept
    tags = model_version_tags(uri, MODEL, served.version)
    assert tags["kind"] == REFERENCE_KIND and tags["reference"] == reference["uri"]
    assert tags["reference_version"] == reference["version"]

    # what /assess answers: every score of that model says it comes from the reference
    history = load_history(small_twin)
    feats = build_features(history, [pd.Timestamp(history.sensor_days["date"].max())]).head(5)
    chunk = score_chunk({MODEL: Champion(get_spec(MODEL), served)}, feats, [MODEL], top_k=3)
    assert {a.kind for i in range(len(chunk)) for a in assessments_of(chunk, i)} == {REFERENCE_KIND}


@pytest.mark.slow
def test_a_reference_on_another_feature_schema_is_refused_by_name_and_the_baseline_still_serves(
        small_twin, reference, tmp_path):
    from typer.testing import CliRunner

    from models.registry import default_tracking_uri, load_version
    from training.cli import app
    from training.tracking import log_model_run, set_alias

    # a reference trained before the code's feature set changed
    old = tmp_path / "old_reference"
    old_uri = default_tracking_uri(old)
    champion = load_version(MODEL, reference["uri"])
    stale = replace(champion, schema_hash="0123456789abcdef")
    example = pd.DataFrame([[0.0] * len(stale.feature_names)], columns=stale.feature_names)
    logged = log_model_run(tracking_uri=old_uri, loaded=stale, params={}, metrics={}, tags={}, json_artifacts={},
                           input_example=example, output_example=[0.5])
    set_alias(old_uri, MODEL, "champion", logged["version"])

    home = tmp_path / "home"
    params = tmp_path / "params.toml"
    params.write_text("[booster]\nnum_trees = 30\n")
    r = CliRunner().invoke(app, ["retrain", "--history", str(small_twin), "--tracking-uri",
                                 default_tracking_uri(home), "--model", MODEL, "--params", str(params),
                                 "--reference", str(old), "--features", str(reference["features"])])
    assert r.exit_code == 0, r.output
    assert "reference refused" in r.output
    out = json.JSONDecoder().raw_decode(r.output[r.output.index("\n{\n") + 1:])[0][MODEL]
    assert out["reference_refused"].startswith(f"{MODEL}:") and "feature schema hash" in out["reference_refused"]
    # the local and baseline candidates were judged as without a reference: a champion is served
    assert out["champion"]["kind"] in (LOCAL_KIND, BASELINE_KIND) and out["champion"]["version"]
    assert Path(home / "mlflow.db").exists()
