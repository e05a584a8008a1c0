"""A moved @champion alias is served without a restart, after the same schema check as at
start-up; a version that fails it is not served and readiness says why. (/readyz and the model
card route are tested with the other routes in test_api.py, on the same running app.)"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.serving.test_api import serving_home  # noqa: F401  (session fixture: trained workdir)


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


@pytest.fixture
def runtime(serving_home, tmp_path):  # noqa: F811
    """The service's runtime on a private copy of the trained workdir (its registry is changed)."""
    from serving.config import ServingConfig
    from serving.runtime import build_runtime

    trained, _ = serving_home
    home = tmp_path / "home"
    home.mkdir()
    for name in ("mlflow.db", "online.db", "api_keys.json"):
        shutil.copy(trained / name, home / name)
    shutil.copytree(trained / "history", home / "history")
    rt = build_runtime(ServingConfig.from_env({"TWINCARE_HOME": str(home)}), need_keys=False)
    try:
        yield rt
    finally:
        rt.close()


def _fall_risk(rt) -> tuple[str, float]:
    s = rt.score_residents(["R000001"], ["fall_risk"], 3).by_model["fall_risk"]
    return s.version, float(s.probability[0])


def test_a_moved_champion_is_served_after_its_schema_check(runtime):
    from serving.runtime import ChampionWatcher
    from training.tracking import set_alias

    rt, uri = runtime, runtime.config.tracking_uri
    before, p1 = _fall_risk(rt)
    new = register_copy(uri, "fall_risk", before, shift=1.0)
    watcher = ChampionWatcher(rt, interval=1)
    assert watcher.check() == []  # the alias has not moved: nothing to do
    set_alias(uri, "fall_risk", "champion", new)
    swapped_to = []
    rt.on_swap.append(lambda versions: swapped_to.append(versions["fall_risk"]))
    assert watcher.check() == ["fall_risk"]

    version, p2 = _fall_risk(rt)
    assert version == new and p2 > p1  # the new version's calibration answers, not the old one's
    assert swapped_to == [new]  # what sets the served-version gauge of /metrics
    ok, detail = rt.readiness()
    assert ok and detail["models"]["fall_risk"] == new
    assert {k: detail["swaps"][-1][k] for k in ("model", "from", "to")} == {"model": "fall_risk", "from": before, "to": new}

    # a version trained on another feature schema is refused; the served one stays
    bad = register_copy(uri, "fall_risk", new, schema_hash="0" * 16)
    set_alias(uri, "fall_risk", "champion", bad)
    assert watcher.check() == []
    assert _fall_risk(rt)[0] == new
    ok, detail = rt.readiness()
    assert ok and detail["models"]["fall_risk"] == new
    assert "feature schema hash" in detail["not_swapped"]["fall_risk"] and f"v{bad}" in detail["not_swapped"]["fall_risk"]
    assert watcher.check() == []  # and is not retried on every check
