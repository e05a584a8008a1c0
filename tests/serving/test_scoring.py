"""Scoring shared by /assess and the nightly batch: same numbers as the model code, reasons that
are the largest SHAP contributions, stored score history, and start-up refusal of bad champions."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from models.registry import risk_specs
from serving.config import ServingConfig
from tests.serving.test_api import serving_home  # noqa: F401  (session fixture: trained workdir)

RISK_MODELS = tuple(risk_specs())


@pytest.fixture(scope="module")
def runtime(serving_home):  # noqa: F811
    from serving.runtime import build_runtime

    home, _ = serving_home
    config = ServingConfig.from_env({"TWINCARE_HOME": str(home)})
    rt = build_runtime(config)
    yield rt
    rt.close()


def test_probability_and_reasons_agree_with_the_model_code(runtime):
    from features.registry import get_feature
    from models.explain import contributions
    from serving.scoring import score_chunk

    ids = runtime.online.resident_ids()[:60]
    feats = runtime.online.get(ids)
    chunk = score_chunk(runtime.champions, feats, RISK_MODELS, top_k=3)
    for m in RISK_MODELS:
        loaded = runtime.champions[m].loaded
        expected = risk_specs()[m].predict_proba(loaded, feats)
        np.testing.assert_allclose(chunk.by_model[m].probability, expected, rtol=1e-9, atol=1e-12)
        contrib = contributions(loaded, feats).drop(columns=["base_value"])
        for i in range(len(ids)):
            row = contrib.iloc[i]
            reasons = chunk.reasons(m, i)
            # the three largest contributions that raise the risk, strongest first (ties may pick
            # either feature): the rule the explanation check measures. Unknown values and
            # missing-data counts are missing-data reasons, never risk reasons.
            values = feats.iloc[i][row.index]
            missing = [get_feature(n).family == "missing" for n in row.index]
            risk = row.where(values.notna().to_numpy() & ~np.asarray(missing), 0.0)
            top = risk.sort_values(ascending=False).iloc[:3]
            assert [r["contribution"] for r in reasons] == pytest.approx(top[top > 0].tolist())
            assert [r["contribution"] for r in reasons] == pytest.approx(row[[r["feature"] for r in reasons]].tolist())
            assert all(isinstance(r["text"], str) and r["text"] for r in reasons)


def test_explicit_rows_refuse_unknown_names_and_non_finite_values():
    from serving.scoring import BadFeatures, rows_to_features

    with pytest.raises(BadFeatures, match="shoe_size"):
        rows_to_features([{"resident_id": "R1", "features": {"shoe_size": 1.0}}])
    with pytest.raises(BadFeatures, match="finite"):
        rows_to_features([{"resident_id": "R1", "features": {"falls_365d": float("inf")}}])
    frame = rows_to_features([{"resident_id": "R1", "features": {"falls_365d": 2.0, "gait_speed_30d": None}}])
    assert frame.loc[0, "falls_365d"] == 2.0 and np.isnan(frame.loc[0, "gait_speed_30d"])


def test_nightly_batch_stores_every_score_once_and_keeps_history(runtime):
    from serving.batch import score_all

    first = score_all(runtime, chunk_size=128)
    assert first.model_kinds == dict.fromkeys(RISK_MODELS, "local")  # what kind of model scored
    n = len(runtime.online.resident_ids())
    assert first.residents == n and first.scores_stored == n * len(RISK_MODELS)
    again = score_all(runtime, chunk_size=128)
    assert again.scores_stored == 0  # same night, same versions: nothing new
    assert again.tasks_opened == 0 and again.tasks_already_open >= first.tasks_opened
    top = runtime.store.latest_scores("fall_risk", limit=5)
    assert [s.probability for s in top] == sorted((s.probability for s in top), reverse=True)
    assert top[0].reasons and top[0].reasons[0]["text"]
    hist = runtime.store.score_history(top[0].resident_id)
    assert {h.model for h in hist} == set(RISK_MODELS)


def _copy_store(home, dest):
    dest.mkdir()
    for name in ("mlflow.db", "online.db", "api_keys.json"):
        shutil.copy(home / name, dest / name)
    return ServingConfig.from_env({"TWINCARE_HOME": str(dest), "TWINCARE_HISTORY": str(home / "history")})


def test_start_up_refuses_a_missing_champion(serving_home, tmp_path):  # noqa: F811
    from models.registry import ChampionError
    from serving.runtime import build_runtime
    from training.tracking import delete_alias

    home, _ = serving_home
    config = _copy_store(home, tmp_path / "w")
    delete_alias(config.tracking_uri, "isolation", "champion")
    with pytest.raises(ChampionError, match=r"isolation.*@champion"):
        build_runtime(config)


def test_start_up_refuses_a_champion_trained_on_other_features(serving_home, tmp_path):  # noqa: F811
    from models.registry import ChampionError, load_version
    from serving.runtime import build_runtime
    from training.tracking import log_model_run, set_alias

    home, _ = serving_home
    config = _copy_store(home, tmp_path / "w")
    old = load_version("fall_risk", config.tracking_uri)
    stale = replace(old, schema_hash="0" * 16)
    X = np.zeros((2, len(old.feature_names)))
    import pandas as pd

    info = log_model_run(
        tracking_uri=config.tracking_uri, loaded=stale, params={}, metrics={}, tags={}, json_artifacts={},
        input_example=pd.DataFrame(X, columns=old.feature_names), output_example=np.zeros(2),
    )
    set_alias(config.tracking_uri, "fall_risk", "champion", info["version"])
    with pytest.raises(ChampionError, match=rf"fall_risk.*version {info['version']}.*schema hash"):
        build_runtime(config)


def test_start_up_refuses_a_missing_online_store(serving_home, tmp_path):  # noqa: F811
    from serving.runtime import StartupError, build_runtime

    home, _ = serving_home
    config = _copy_store(home, tmp_path / "w")
    (tmp_path / "w" / "online.db").unlink()
    with pytest.raises(StartupError, match="materialise"):
        build_runtime(config)


def test_online_features_are_reloaded_when_the_store_is_rewritten(runtime):
    ids = runtime.features.ids[:2]
    before = runtime.features.stamp
    _, _, old = runtime.features.lookup(ids)
    runtime.online.put_counts(runtime.online.counts().head(1))  # any write to the store's files
    _, _, new = runtime.features.lookup(ids)
    assert runtime.features.stamp != before
    np.testing.assert_array_equal(old, new)  # same vectors: only the counts were rewritten
    with pytest.raises(KeyError, match="R-ghost"):
        runtime.features.lookup(["R-ghost"])


@pytest.mark.parametrize("kind", ["baseline", "reference"])
def test_a_baseline_or_reference_champion_is_served_as_such(runtime, kind):
    """A community served its baseline (or a reference community's model) sees that kind on
    every score of that model, as /assess answers it."""
    from models.base import LOCAL_KIND
    from serving.api.common import assessments_of
    from serving.scoring import score_chunk

    feats = runtime.online.get(runtime.online.resident_ids()[:5])
    m = RISK_MODELS[0]
    champion = runtime.champions[m]
    loaded = replace(champion.loaded, extra={**champion.loaded.extra, "kind": kind})
    champions = {**runtime.champions, m: replace(champion, loaded=loaded)}
    chunk = score_chunk(champions, feats, RISK_MODELS, top_k=3)
    assert chunk.by_model[m].kind == kind
    assert all(chunk.by_model[o].kind == LOCAL_KIND for o in RISK_MODELS if o != m)
    assert {a.model: a.kind for a in assessments_of(chunk, 0)}[m] == kind
