"""A bad model file is refused by name and never crashes the process: truncated, edited in place
(same length), or registered without a checksum and unreadable."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.config import ServingConfig
from tests.serving.test_api import serving_home  # noqa: F401  (session fixture: trained workdir)


def _registered_copy(home: Path, dest: Path) -> tuple[ServingConfig, Path, str]:
    """A copy of the serving home whose fall-risk champion is a fresh version logged into the
    copy (so its booster file lives under the copy); returns the config, that file and version."""
    from models.registry import load_version
    from training.tracking import log_model_run, set_alias

    dest.mkdir()
    for name in ("mlflow.db", "online.db", "api_keys.json"):
        shutil.copy(home / name, dest / name)
    config = ServingConfig.from_env({"TWINCARE_HOME": str(dest), "TWINCARE_HISTORY": str(home / "history")})
    old = load_version("fall_risk", config.tracking_uri)
    X = pd.DataFrame(np.zeros((2, len(old.feature_names))), columns=old.feature_names)
    info = log_model_run(tracking_uri=config.tracking_uri, loaded=old, params={}, metrics={}, tags={},
                         json_artifacts={}, input_example=X, output_example=np.zeros(2))
    set_alias(config.tracking_uri, "fall_risk", "champion", info["version"])
    # the experiment keeps its artifact folder, so the new version's file sits beside the
    # original's: it is the one written last
    files = [p for root in (dest, home) for p in (root / "mlartifacts").rglob("model.lgb")]
    return config, max(files, key=lambda p: p.stat().st_mtime_ns), info["version"]


def test_a_truncated_booster_is_refused_by_name(serving_home, tmp_path):  # noqa: F811
    from models.registry import ChampionError
    from serving.runtime import build_runtime

    config, booster, version = _registered_copy(serving_home[0], tmp_path / "w")
    data = booster.read_bytes()
    booster.write_bytes(data[: len(data) // 3])
    with pytest.raises(ChampionError, match=rf"fall_risk.*version {version}.*model.lgb.*checksum"):
        build_runtime(config)


def test_a_booster_edited_in_place_is_refused(serving_home, tmp_path):  # noqa: F811
    from models.registry import ChampionError
    from serving.runtime import build_runtime

    config, booster, _ = _registered_copy(serving_home[0], tmp_path / "w")
    text = booster.read_text()
    i = text.index("leaf_value=") + len("leaf_value=")
    flipped = text[:i] + ("-" if text[i] != "-" else "0") + text[i + 1:]  # same length, one sign flipped
    booster.write_text(flipped)
    with pytest.raises(ChampionError, match="changed or truncated"):
        build_runtime(config)


def test_an_unverifiable_garbage_booster_is_refused_without_crashing(serving_home, tmp_path):  # noqa: F811
    from mlflow.tracking import MlflowClient

    from models.registry import CHECKSUM_TAG, ChampionError
    from serving.runtime import build_runtime

    config, booster, version = _registered_copy(serving_home[0], tmp_path / "w")
    MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri).delete_model_version_tag("fall_risk", version, CHECKSUM_TAG)
    data = booster.read_bytes()
    booster.write_bytes(data[: len(data) // 2])  # a truncated file makes LightGBM's loader crash
    with pytest.raises(ChampionError, match=rf"fall_risk.*version {version}.*not a valid booster"):
        build_runtime(config)


def test_a_cause_reader_edited_after_registration_is_refused_by_name(serving_home, tmp_path):  # noqa: F811
    from models.registry import ChampionError
    from serving.runtime import build_runtime

    config, _, version = _registered_copy(serving_home[0], tmp_path / "w")
    files = [p for root in (tmp_path / "w", serving_home[0]) for p in (root / "mlartifacts").rglob("cause_reader.json")]
    reader = max(files, key=lambda p: p.stat().st_mtime_ns)  # the copy's version's, written last
    reader.write_text(reader.read_text().replace('"small-twin"', '"other-twin"'))
    with pytest.raises(ChampionError, match=rf"fall_risk.*version {version}.*cause_reader.json.*changed or truncated"):
        build_runtime(config)
