"""Training and the registry on a PostgreSQL-backed MLflow store (the multi-machine set-up)."""

from __future__ import annotations

import pytest

from tests.postgres import postgres_database
from tests.training.twins import model_twin_dir

pytestmark = pytest.mark.e2e


def test_train_promote_and_load_champion_on_a_postgresql_tracking_store(tmp_path_factory, tmp_path, monkeypatch):
    from models.base import BoosterParams
    from models.registry import load_champion
    from models.spec import PromotionRule
    from training.config import PromotionMargins, TrainParams
    from training.promote import promote
    from training.train import train

    monkeypatch.setenv("TWINCARE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    twin = model_twin_dir(tmp_path_factory)
    params = TrainParams(booster=BoosterParams(num_trees=40),
                         promotion=PromotionMargins(models={"isolation": PromotionRule(auroc_over_baseline=-1.0, brier_under_baseline=-1.0)}))
    # a twin this small cannot show the margins; what is under test is the PostgreSQL store
    with postgres_database("twincare_mlflow") as uri:
        summary = train("isolation", twin, uri, params)
        decision = promote("isolation", uri, history_dir=str(twin), params=params)
        assert decision.promoted, decision.summary()
        loaded = load_champion("isolation", uri)
        assert loaded.version == summary.version
        assert (tmp_path / "artifacts" / "isolation").is_dir()
