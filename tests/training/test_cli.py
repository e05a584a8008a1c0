"""The forecast and backtest commands on a plain CSV count table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from training.cli import app


def _csv(tmp_path):
    rng = np.random.default_rng(3)
    frames = []
    for i in range(3):
        dates = pd.date_range("2024-01-01", periods=150 - 30 * i)  # later series start later
        lam = (2 + i) * (1 + 0.5 * (dates.day_of_week.to_numpy() == 0))
        frames.append(pd.DataFrame({"series_id": f"bank{i}", "date": dates.strftime("%Y-%m-%d"),
                                    "count": rng.poisson(lam)}))
    df = pd.concat(frames)
    df = df[~df["date"].isin(["2024-03-01", "2024-03-02"])]  # a gap
    path = tmp_path / "exchanges.csv"
    df.to_csv(path, index=False)
    return path


def test_forecast_command_prints_forecasts_with_intervals_and_a_backtest(tmp_path):
    path = _csv(tmp_path)
    params = tmp_path / "fast.toml"
    params.write_text("[demand]\ncalibration_days = 21\n[demand.booster]\nnum_trees = 30\n")
    res = CliRunner().invoke(app, ["forecast", "--series", str(path), "--horizon", "7", "--json",
                                   "--params", str(params)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["method"] == "lightgbm_global"
    assert len(out["forecasts"]) == 3 * 7
    first = out["forecasts"][0]
    assert first["lower"] <= first["forecast"] <= first["upper"]
    assert {"wape", "wape_naive", "coverage", "mase"} <= set(out["backtest"])


def test_forecast_command_explains_a_bad_table(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("series,day,n\na,2024-01-01,1\n")
    res = CliRunner().invoke(app, ["forecast", "--series", str(path)])
    assert res.exit_code != 0
    assert "series_id" in res.output


def test_forecast_command_spreads_a_weekly_logging_batch_when_asked_for_requests_as_they_arise(tmp_path):
    """A bank that enters each week's exchanges on Monday: `--basis occurring` forecasts the
    requests each day at the rate they arise; an unknown basis is refused by name."""
    days = pd.date_range("2024-01-01", periods=180)  # a Monday
    counts = np.where(days.day_of_week == 0, 21.0, 0.0)  # 3 a day, logged on Mondays
    path = tmp_path / "weekly.csv"
    pd.DataFrame({"series_id": "bank", "date": days.strftime("%Y-%m-%d"), "count": counts}).to_csv(path, index=False)
    params = tmp_path / "fast.toml"
    params.write_text("[demand]\ncalibration_days = 21\n[demand.booster]\nnum_trees = 30\n")
    res = CliRunner().invoke(app, ["forecast", "--series", str(path), "--horizon", "7", "--json",
                                   "--params", str(params), "--basis", "occurring"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["basis"] == "occurring"
    assert [f["forecast"] for f in out["forecasts"]] == [3.0] * 7
    res = CliRunner().invoke(app, ["forecast", "--series", str(path), "--basis", "weekly"])
    assert res.exit_code != 0 and "--basis" in res.output
