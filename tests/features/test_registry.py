"""The feature registry: declared once, valid, ordered, fingerprinted."""

from __future__ import annotations

import pytest

from features import registry
from features.registry import FEATURE_SETS, FEATURES, Feature, feature_names, schema_hash
from twin.schema import FALL_CAUSES, ISOLATION_CAUSES, TABLES


def test_every_feature_is_fully_declared():
    for name, f in FEATURES.items():
        assert f.name == name
        assert f.source in TABLES, name
        assert f.description and f.sets, name
        assert set(f.sets) <= {"falls", "loneliness"}, name
        if f.companion:
            assert f.companion in FEATURES, name


def test_feature_sets_follow_registry_order_and_measure_their_causes():
    order = list(FEATURES)
    for model, causes in (("falls", FALL_CAUSES), ("loneliness", ISOLATION_CAUSES)):
        names = feature_names(model)
        assert names == sorted(names, key=order.index)
        assert len(names) <= 80  # kept small: SHAP cost grows with the model
        measured = {c for n in names for c in FEATURES[n].causes}
        # Every planted cause of this model has at least one feature that measures it.
        assert set(causes) <= measured, f"{model}: no feature measures {set(causes) - measured}"


def test_deviation_features_have_their_baseline_companion():
    for model in ("falls", "loneliness"):
        names = set(feature_names(model))
        for n in names:
            f = FEATURES[n]
            if f.family == "deviation":
                assert f.companion in names and f"{f.basis}_7d" in names


def test_schema_hash_is_stable_and_changes_with_the_feature_set(monkeypatch):
    h = schema_hash("falls")
    assert h == schema_hash("falls") and h != schema_hash("loneliness")
    changed = dict(FEATURES)
    first = next(iter(changed))
    changed[first] = Feature(**{**changed[first].__dict__, "window": "30d"})
    monkeypatch.setattr(registry, "FEATURES", changed)
    assert schema_hash("falls") != h


def test_demand_features_come_from_the_demand_module():
    demand = pytest.importorskip("features.demand")
    assert feature_names("requests") == [f.name for f in demand.DEMAND_FEATURES]
    assert registry.get_feature(feature_names("requests")[0]).sets == ("requests",)


def test_bad_declarations_and_names_are_refused():
    with pytest.raises(ValueError, match="dtype"):
        Feature("x", "str", "7d", "sensor_days", "x", ("falls",))
    with pytest.raises(ValueError, match="cause"):
        Feature("x", "float", "7d", "sensor_days", "x", ("falls",), ("bad_luck",))
    with pytest.raises(ValueError, match="feature set"):
        Feature("x", "float", "7d", "sensor_days", "x", ("fall_risk",))
    with pytest.raises(KeyError, match="unknown feature set"):
        feature_names("churn")
    with pytest.raises(KeyError, match="unknown feature"):
        registry.get_feature("nope")


def test_each_feature_measures_one_cause_of_each_model():
    """Attributions are summed per cause: a feature counts for one cause of a model, and a signal
    that mixes a slow cause with an episode names the slow one for its long view and the episode
    for its short view."""
    for name, f in FEATURES.items():
        for s in f.sets:
            assert len([c for c in f.causes if c in FEATURE_SETS[s].causes]) <= 1, (name, s)
    assert FEATURES["steps_90d"].causes == ("frailty", "low_mobility")
    assert FEATURES["steps_z7v90"].causes == ("acute_episode", "low_mobility")
    assert FEATURES["gait_speed_baseline_90d"].causes == ("gait_balance",)
    assert FEATURES["gait_speed_trend_30d"].causes == ("acute_episode",)
    with pytest.raises(ValueError, match="one cause"):
        Feature("steps_mixed", "float", "7d", "sensor_days", "steps", ("falls",), ("frailty", "acute_episode"))
