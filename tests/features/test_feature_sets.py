"""Feature sets: named for what they describe, hashed as before, and a feature declared once."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import explain, pipeline, registry
from features.explain import reason_text
from features.pipeline import COMPUTE_GROUPS, build_features
from features.registry import (
    FEATURE_SETS,
    FEATURES,
    RESIDENT_SETS,
    SERIES_FEATURES,
    SERIES_GROUPS,
    Feature,
    Wording,
    feature_names,
    features_of,
    schema_hash,
    table_schema_hash,
)

# Today's schema hashes. Changed on purpose when the loneliness history, bereavement, hospital
# and home-check recency, long personal baselines and the weekly median of requests were added
# (was falls cb9ebdbc8e5ed7a5, loneliness 0b66868eb6793ed9, requests 7a9ea643e43c3438, table
# 64033f4e7d31c789), when requests learned to read batch-logged counts (was d14951db729874c3),
# when loneliness gained a year and two of companionship requests (was a3953aa8ebff6293, table
# 4df46813c8a5e71f), and when requests gained the community's logging cycle (was
# e770f3d8cf18eac8), and when falls gained the last 3 days' change against the own baseline (was
# d51bd9ece4352ff3, table 3ec3a4e66ae6b1aa): models trained before must be retrained before they are served.
HASHES_BEFORE_SETS = {"falls": "d7ba5f56b7fcbf93", "loneliness": "2758cac03e862e61", "requests": "4fd8f7ad4fe3046d"}
TABLE_HASH_BEFORE_SETS = "b7c53211846a6db7"


def test_schema_hashes_are_the_ones_models_were_trained_with():
    assert {s: schema_hash(s) for s in FEATURE_SETS} == HASHES_BEFORE_SETS
    assert table_schema_hash() == TABLE_HASH_BEFORE_SETS


def test_sets_name_what_they_describe_and_list_their_members_in_registry_order():
    assert list(FEATURE_SETS) == ["falls", "loneliness", "requests"]
    assert RESIDENT_SETS == ("falls", "loneliness")
    for name, s in FEATURE_SETS.items():
        assert s.description
        table = FEATURES if s.entity == "resident" else SERIES_FEATURES
        assert feature_names(name) == [n for n in table if name in table[n].sets]
        assert [f.name for f in features_of(name)] == feature_names(name)


def test_model_names_stay_out_of_the_feature_code():
    """Only the frozen schema labels (which keep old models loading) spell a model's name."""
    for path in Path(registry.__file__).parent.glob("*.py"):
        for line in path.read_text().splitlines():
            if re.search(r"\"(fall_risk|isolation|demand)\"", line):
                assert "schema_label=" in line, f"{path.name}: {line.strip()}"


def test_every_declared_feature_names_a_compute_group_the_code_has():
    assert {f.compute for f in FEATURES.values()} == set(COMPUTE_GROUPS)
    assert {f.compute for f in SERIES_FEATURES.values()} == set(SERIES_GROUPS)


def test_a_new_feature_is_one_declaration(small_history, monkeypatch):
    """Declared once (compute group, window, wording, sets): computed, hashed and worded."""
    new = Feature("falls_90d", "int", "90d", "events", "falls in the last 90 days", ("falls",),
                  ("previous_fall",), "falls", "count", "fall", compute="events",
                  words=Wording("fell", "no falls in the last 90 days", "in the last 90 days"))
    feats = {**FEATURES, new.name: new}
    for module in (registry, pipeline):
        monkeypatch.setattr(module, "FEATURES", feats)
    assert "falls_90d" in feature_names("falls") and "falls_90d" not in feature_names("loneliness")
    assert schema_hash("falls") != HASHES_BEFORE_SETS["falls"]
    assert schema_hash("loneliness") == HASHES_BEFORE_SETS["loneliness"]

    dates = pd.to_datetime(["2024-03-04", "2024-04-01"])
    table = build_features(small_history, dates)
    f30, f365, f90 = (table[c].to_numpy() for c in ("falls_30d", "falls_365d", "falls_90d"))
    assert np.all((f30 <= f90) & (f90 <= f365)) and f90.sum() > 0
    assert reason_text("falls_90d", {"falls_90d": 2.0}) == "fell twice in the last 90 days"
    assert explain.get_feature("falls_90d") is new


def test_unknown_sets_and_groups_are_refused():
    base = dataclasses.asdict(FEATURES["falls_30d"]) | {"words": Wording()}
    with pytest.raises(ValueError, match="feature set"):
        Feature(**{**base, "sets": ("fall_risk",)})
    with pytest.raises(ValueError, match="compute group"):
        Feature(**{**base, "compute": "elsewhere"})
    with pytest.raises(KeyError, match="unknown feature set"):
        schema_hash("isolation")
