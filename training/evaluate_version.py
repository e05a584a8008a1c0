"""Evaluate a registered version on the frozen test window of its training run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from features.demand import count_panel
from features.pipeline import build_features, load_history
from models.registry import get_spec, load_version
from models.spec import ForecastSpec
from training import evaluate as ev
from training.backtest import BacktestConfig, rolling_origin
from training.data import attach_labels, risk_spec, slice_columns
from training.promote import frozen_test_dates
from training.tracking import CHAMPION, alias_version, run_of
from training.train import history_counts, model_name


def evaluate_version(model: str, tracking_uri: str, version: str | None = None,
                     history_dir: str | None = None, capacity_share: float = 0.05) -> dict[str, Any]:
    """Metrics of `version` (default @champion) on its run's test window."""
    name = model_name(model)
    version = version or alias_version(tracking_uri, name, CHAMPION)
    if version is None:
        raise LookupError(f"{name} has no @champion; pass --version")
    loaded = load_version(name, tracking_uri, version=version)
    _, run = run_of(tracking_uri, name, version)
    history_dir = history_dir or run.data.tags.get("history_dir")
    if not history_dir or not Path(history_dir).exists():
        raise LookupError(f"history {history_dir!r} is not available; pass --history")
    window = run.data.tags.get("test_window", "")
    out: dict[str, Any] = {"model": name, "version": version, "test_window": window}
    if isinstance(get_spec(name), ForecastSpec):
        cfg = BacktestConfig(test_days=int(float(run.data.params.get("backtest.test_days", 56))),
                             step=int(float(run.data.params.get("backtest.step", 7))))
        bt, _ = rolling_origin(count_panel(history_counts(history_dir)), config=cfg, loaded=loaded)
        out["backtest"] = bt
        return out
    history = load_history(history_dir)
    rows = attach_labels(name, history, build_features(history, frozen_test_dates(window)))
    rows = rows[rows["label"].notna()].reset_index(drop=True)
    rows = rows.join(slice_columns(history.residents, rows))
    p = risk_spec(name).predict_proba(loaded, rows)
    y = rows["label"].to_numpy(int)
    out["metrics"] = ev.binary_metrics(y, p)
    out["metrics"]["recall_at_capacity"] = ev.recall_at_capacity(rows, p, capacity_share)
    out["metrics"]["calibration_error"] = ev.calibration_error(ev.reliability(y, p))
    out["slices"] = ev.sliced(rows, p)
    return out
