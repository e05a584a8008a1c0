"""A moved @champion alias is served without a restart, after the same schema check as at
start-up; a version that fails it is not served and readiness says why."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.serving.test_api import H, service_env, serving_home  # noqa: F401  (session fixture)


def register_copy(uri: str, name: str, version: str, *, shift: float = 0.0, schema_hash: str | None = None) -> str:
    """Register a new version of `name`: the booster of `version`, its calibration moved by `shift`
    (so its probabilities differ), optionally claiming another feature schema."""
    from models.registry import load_version
    from training.tracking import log_model_run

    old = load_version(name, uri, version=version)
    cal = dict(old.calibration)
    if "intercept" in cal:
        cal["intercept"] = float(cal["intercept"]) + shift
    new = dataclasses.replace(old, calibration=cal, schema_hash=schema_hash or old.schema_hash)
    example = pd.DataFrame(np.zeros((3, len(old.feature_names))), columns=old.feature_names)
    return log_model_run(tracking_uri=uri, loaded=new, params={}, metrics={}, tags={}, json_artifacts={},
                         input_example=example, output_example=np.zeros(3))["version"]


@pytest.fixture(scope="module")
def client_home(serving_home, tmp_path_factory):  # noqa: F811
    """One service per module (BentoML's metrics can be registered once per process)."""
    from starlette.testclient import TestClient

    from serving.service import TwinCare

    trained, keys = serving_home
    home = tmp_path_factory.mktemp("hot_swap") / "home"
    home.mkdir()
    for name in ("mlflow.db", "online.db", "api_keys.json"):
        shutil.copy(trained / name, home / name)
    shutil.copytree(trained / "history", home / "history")
    with service_env(home, TWINCARE_MODEL_POLL_SECONDS="0"), \
            TestClient(TwinCare.to_asgi(), raise_server_exceptions=False) as client:
        yield client, keys, home


def test_a_moved_champion_is_served_after_its_schema_check(client_home):
    from models.registry import default_tracking_uri
    from serving.api.app import app as http_app
    from serving.runtime import ChampionWatcher
    from training.tracking import set_alias

    client, keys, home = client_home
    uri = default_tracking_uri(home)
    rt = http_app.state.runtime
    before = rt.model_versions["fall_risk"]
    body = {"resident_ids": ["R000001"], "act": False, "models": ["fall_risk"]}
    first = client.post("/assess", json=body, headers=H(keys, "care_manager")).json()
    assert first["model_versions"] == {"fall_risk": before}

    new = register_copy(uri, "fall_risk", before, shift=1.0)
    watcher = ChampionWatcher(rt, interval=1)
    assert watcher.check() == []  # the alias has not moved: nothing to do
    set_alias(uri, "fall_risk", "champion", new)
    assert watcher.check() == ["fall_risk"]

    second = client.post("/assess", json=body, headers=H(keys, "care_manager")).json()
    assert second["model_versions"] == {"fall_risk": new}
    p1 = first["results"][0]["assessments"][0]["probability"]
    p2 = second["results"][0]["assessments"][0]["probability"]
    assert p2 > p1  # the new version's calibration answers, not the old one's
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["models"]["fall_risk"] == new
    assert ready.json()["swaps"][-1] == {**ready.json()["swaps"][-1], "model": "fall_risk", "from": before, "to": new}

    # a version trained on another feature schema is refused; the served one stays
    bad = register_copy(uri, "fall_risk", new, schema_hash="0" * 16)
    set_alias(uri, "fall_risk", "champion", bad)
    assert watcher.check() == []
    assert rt.model_versions["fall_risk"] == new
    detail = client.get("/readyz").json()
    assert detail["models"]["fall_risk"] == new
    assert "feature schema hash" in detail["not_swapped"]["fall_risk"]
    assert f"v{bad}" in detail["not_swapped"]["fall_risk"]


def test_admins_read_the_card_of_a_served_model_and_others_may_not(client_home):
    from models.registry import default_tracking_uri
    from training.model_card import log_model_card

    client, keys, home = client_home
    uri = default_tracking_uri(home)
    from serving.api.app import app as http_app

    version = http_app.state.runtime.model_versions["isolation"]
    r = client.get("/models/isolation/card", headers=H(keys, "admin"))
    assert r.status_code == 404 and "no card" in r.json()["error"]
    log_model_card("isolation", version, uri)
    r = client.get("/models/isolation/card", headers=H(keys, "admin"))
    assert r.status_code == 200 and r.text.startswith("# Model card: Isolation")
    assert r.headers["content-type"].startswith("text/markdown")
    r = client.get(f"/models/isolation/card?version={version}&format=html", headers=H(keys, "admin"))
    assert r.status_code == 200 and r.text.startswith("<!doctype html>")
    assert client.get("/models/isolation/card", headers=H(keys, "care_manager")).status_code == 403
    assert client.get("/models/nope/card", headers=H(keys, "admin")).status_code == 404
    assert client.get("/models/isolation/card?format=pdf", headers=H(keys, "admin")).status_code == 422
