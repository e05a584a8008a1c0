"""Time splits never let a label window cross into a later split; typed params files."""

from __future__ import annotations

import pandas as pd
import pytest

from training.config import TrainParams, load_params
from training.data import SplitConfig, plan_splits


def _mondays(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-04-01", periods=n, freq="W-MON")


@pytest.mark.parametrize("horizon", [30, 90])
def test_label_windows_do_not_overlap_between_splits(horizon):
    plan = plan_splits(_mondays(90), horizon, SplitConfig())
    assert plan.mode == "time"
    gap = pd.Timedelta(days=horizon)
    assert plan.train.max() + gap <= plan.val.min()
    assert plan.val.max() + gap <= plan.test.min()
    assert plan.test.max() == _mondays(90).max()  # the latest window is the test window


def test_short_history_holds_out_residents_for_validation():
    ids = [f"R{i}" for i in range(100)]
    plan = plan_splits(_mondays(20), 90, SplitConfig(), ids)
    assert plan.mode == "resident"
    assert 5 < len(plan.val_residents) < 40
    assert plan.train.max() + pd.Timedelta(days=90) <= plan.test.min()


def test_too_short_history_is_a_clear_error():
    with pytest.raises(ValueError, match="too short"):
        plan_splits(_mondays(2), 30, SplitConfig())


def test_params_file_fills_typed_config(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[booster]\nnum_trees = 50\n[split]\ntest_weeks = 6\n[demand]\ncoverage = 0.9\n'
                 '[demand.booster]\nnum_leaves = 7\n[promotion.models.fall_risk]\nauroc_over_baseline = 0.02\n')
    p = load_params(f)
    assert isinstance(p, TrainParams)
    assert p.booster.num_trees == 50 and p.split.test_weeks == 6
    assert p.demand.coverage == 0.9 and p.demand.booster.num_leaves == 7
    assert p.promotion.models["fall_risk"].auroc_over_baseline == 0.02


def test_params_file_rejects_unknown_keys(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text("[booster]\ntrees = 50\n")
    with pytest.raises(ValueError, match="unknown booster parameter"):
        load_params(f)
    f.write_text("[boster]\nnum_trees = 50\n")
    with pytest.raises(ValueError, match="unknown table"):
        load_params(f)


def test_example_params_file_states_the_defaults():
    from pathlib import Path

    import training

    example = Path(training.__file__).parent / "params.example.toml"
    assert load_params(example) == TrainParams()
