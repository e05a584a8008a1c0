"""Model-input tables with labels and honest, time-based splits (no overlapping label windows)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.pipeline import History, build_features, weekly_as_of
from models.registry import risk_specs
from models.spec import RiskSpec
from training.config import SplitConfig

SPLITS = ("train", "val", "test")


@dataclass
class SplitPlan:
    """Which as-of dates go where; `mode` says how validation was held out."""

    train: pd.DatetimeIndex
    val: pd.DatetimeIndex
    test: pd.DatetimeIndex
    mode: str  # "time" or "resident"
    horizon_days: int
    val_residents: frozenset[str] = field(default_factory=frozenset)

    def describe(self) -> dict[str, Any]:
        def span(d):
            return [str(d.min().date()), str(d.max().date())] if len(d) else []

        return {
            "mode": self.mode,
            "horizon_days": self.horizon_days,
            "train_as_of": span(self.train),
            "val_as_of": span(self.val),
            "test_as_of": span(self.test),
            "train_dates": len(self.train),
            "val_dates": len(self.val),
            "test_dates": len(self.test),
        }


def labelled_as_of_dates(history: History, horizon_days: int, warmup_days: int) -> pd.DatetimeIndex:
    """Weekly as-of dates whose whole label window lies inside the recorded history."""
    dates = weekly_as_of(history, warmup_days=warmup_days)
    last_day = history.sensor_days["date"].max()
    return dates[dates + pd.Timedelta(days=horizon_days) <= last_day + pd.Timedelta(days=1)]


def plan_splits(dates: pd.DatetimeIndex, horizon_days: int, cfg: SplitConfig,
                residents: list[str] | None = None) -> SplitPlan:
    """Test = latest dates; validation before it; train earliest; gaps >= the label horizon."""
    dates = pd.DatetimeIndex(sorted(dates))
    gap = pd.Timedelta(days=horizon_days)
    n_test = min(cfg.test_weeks, max(2, len(dates) // 4))
    if len(dates) < n_test + 2:
        raise ValueError(
            f"only {len(dates)} labelled weekly as-of dates; the history is too short for a "
            f"{horizon_days}-day label with {cfg.warmup_days} warm-up days"
        )
    test = dates[-n_test:]
    pool = dates[dates + gap <= test[0]]
    if len(pool) == 0:
        raise ValueError(
            f"no as-of date ends its {horizon_days}-day label window before the test window "
            f"starting {test[0].date()}; the history is too short"
        )
    n_val = min(cfg.val_weeks, max(1, len(pool) // 4))
    if n_val > 0 and len(pool) >= n_val + cfg.min_train_weeks:
        val = pool[-n_val:]
        train = pool[pool + gap <= val[0]]
        if len(train) >= cfg.min_train_weeks:
            return SplitPlan(train, val, test, "time", horizon_days)
    # too short for a time gap twice: hold out residents (grouped) within the training period
    rng = np.random.default_rng(cfg.seed)
    ids = np.array(sorted(residents or []))
    held = frozenset(ids[rng.random(len(ids)) < cfg.val_resident_share].tolist())
    return SplitPlan(pool, pool, test, "resident", horizon_days, held)


def age_band(age: np.ndarray) -> np.ndarray:
    return np.where(age >= 85, "85_plus", np.where(age >= 75, "75_84", "under_75"))


def slice_columns(residents: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    """Age band, sex and living alone per (resident, as-of) pair, from the residents table."""
    r = residents.assign(resident_id=residents["resident_id"].astype(str)).set_index("resident_id")
    rid = index["resident_id"].astype(str)
    year = pd.to_datetime(index["as_of_date"]).dt.year.to_numpy()
    age = year - r["birth_year"].reindex(rid).to_numpy(dtype=float)
    return pd.DataFrame({
        "slice_age_band": age_band(age),
        "slice_sex": r["sex"].reindex(rid).astype(str).to_numpy(),
        "slice_lives_alone": np.where(r["lives_alone"].reindex(rid).astype(bool).to_numpy(), "alone", "with_others"),
    }, index=index.index)


def moved_in_before(history: History, index: pd.DataFrame) -> np.ndarray:
    """True for (resident, as-of) pairs whose resident lived in the community before the as-of
    date: no row for a newcomer before the day they moved in (a `move_in` event)."""
    ev = history.events
    if ev is None or ev.empty:
        return np.ones(len(index), bool)
    arrived = ev[ev["type"].astype(str) == "move_in"].groupby(ev["resident_id"].astype(str))["date"].min()
    on = pd.to_datetime(index["resident_id"].astype(str).map(arrived))
    return ~(on.to_numpy() >= pd.to_datetime(index["as_of_date"]).to_numpy())


@dataclass
class RiskDataset:
    """Rows (resident x as-of) with features, label, baseline inputs, slices and split."""

    model: str
    frame: pd.DataFrame
    feature_names: list[str]
    plan: SplitPlan

    def part(self, split: str) -> pd.DataFrame:
        if split not in SPLITS:
            raise KeyError(f"split must be one of {SPLITS}")
        return self.frame[self.frame["split"] == split]


def risk_spec(model: str) -> RiskSpec:
    spec = risk_specs().get(model)
    if spec is None:
        raise KeyError(f"not a risk model: {model!r}; risk models are {', '.join(risk_specs())}")
    return spec


def moved_before(history: History, index: pd.DataFrame) -> np.ndarray:
    """For each (resident, as-of) pair: has the resident left the community before the as-of date?"""
    events = history.events
    if events is None or events.empty:
        return np.zeros(len(index), dtype=bool)
    moves = events.loc[events["type"].astype(str) == "move"]
    first = (moves.assign(resident_id=moves["resident_id"].astype(str))
             .groupby("resident_id")["date"].min())
    when = pd.to_datetime(index["resident_id"].astype(str).map(first)).to_numpy()
    as_of = pd.to_datetime(index["as_of_date"]).to_numpy()
    return (~pd.isna(when)) & (when < as_of)


def attach_labels(model: str, history: History, feats: pd.DataFrame) -> pd.DataFrame:
    """Add `label` and the baseline inputs the model's spec declares to a feature table; rows
    of a resident after they left or before they moved in get no label (dropped downstream)."""
    spec = risk_spec(model)
    idx = feats[["resident_id", "as_of_date"]]
    out = feats.copy()
    label = np.asarray(spec.label(history, idx), dtype=float)
    # a resident who has moved away is no longer at risk here: no label, not a negative;
    # nor is a newcomer before the day they moved in
    label[moved_before(history, idx) | ~moved_in_before(history, idx)] = np.nan
    out["label"] = label
    for column, values in spec.baseline_columns(history, idx).items():
        out[column] = values
    return out


def risk_dataset(model: str, history: History, cfg: SplitConfig, engine: str = "pandas",
                 scheduler: str | None = None,
                 features: Callable[[pd.DatetimeIndex], pd.DataFrame] | None = None) -> RiskDataset:
    """Features at every weekly as-of date, labels, baselines and the split of each row.

    `features(dates)`, when given, supplies the feature table (e.g. a stored table of the same
    history, `features.pipeline.cached_features`) instead of building it here.
    """
    spec = risk_spec(model)
    dates = labelled_as_of_dates(history, spec.horizon_days, cfg.warmup_days)
    plan = plan_splits(dates, spec.horizon_days, cfg, history.residents["resident_id"].astype(str).tolist())
    used = plan.train.union(plan.val).union(plan.test)
    feats = (features(used) if features is not None
             else build_features(history, used, engine=engine, scheduler=scheduler))
    frame = attach_labels(model, history, feats)
    frame = frame[frame["label"].notna()].reset_index(drop=True)
    frame = pd.concat([frame, slice_columns(history.residents, frame)], axis=1)
    split = np.full(len(frame), "", dtype=object)
    d = frame["as_of_date"]
    split[d.isin(plan.test).to_numpy()] = "test"
    if plan.mode == "time":
        split[d.isin(plan.train).to_numpy()] = "train"
        split[d.isin(plan.val).to_numpy()] = "val"
    else:
        in_pool = d.isin(plan.train).to_numpy()
        held = frame["resident_id"].isin(plan.val_residents).to_numpy()
        split[in_pool & held] = "val"
        split[in_pool & ~held] = "train"
    frame["split"] = split
    frame = frame[frame["split"] != ""].reset_index(drop=True)
    return RiskDataset(model, frame, spec.feature_names(), plan)
