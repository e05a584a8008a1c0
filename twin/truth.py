"""What the twin's hidden truth says a perfect model could know at an as-of date.

Two kinds of "best possible" score per (resident, as-of) pair:
- knowable: built only from the hidden state at 00:00 of the as-of date (latent frailty and
  hazard, episodes already under way, the expected rate of new ones). It does not see the label
  window, so it is the honest ceiling of a model.
- path oracle: the realised 30-day fall hazard, which includes what happens inside the window
  (a fall raises the hazard after it); it sees the label and overstates the ceiling.

Scores are keyed by the truth's own model keys (`truth/causes.parquet` column `model`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from twin.dynamics import EPISODE_TAIL_DAYS, draw_episodes, episode_rate, episode_season
from twin.simulate import SimConfig

FALL_WINDOW_DAYS = 30


def _index(index: pd.DataFrame) -> pd.DataFrame:
    out = index[["resident_id", "as_of_date"]].copy()
    out["resident_id"] = out["resident_id"].astype(str)
    out["as_of_date"] = pd.to_datetime(out["as_of_date"]).astype("datetime64[ns]")
    return out.reset_index(drop=True)


def _weekly(truth_dir: Path, model: str, column: str, idx: pd.DataFrame) -> np.ndarray:
    causes = pd.read_parquet(truth_dir / "causes.parquet", columns=["resident_id", "date", "model", column])
    causes = causes.loc[causes["model"] == model, ["resident_id", "date", column]]
    causes["resident_id"] = causes["resident_id"].astype(str)
    causes["date"] = pd.to_datetime(causes["date"]).astype("datetime64[ns]")
    m = idx.merge(causes.rename(columns={"date": "as_of_date"}), how="left", on=["resident_id", "as_of_date"])
    return m[column].to_numpy(float)


def _expected_overlap(age: np.ndarray, started: np.ndarray, cfg: SimConfig, draws: int = 200_000) -> np.ndarray:
    """Expected days of the 30-day window an episode under way raises the hazard, given its age in
    days and whether its hazard has begun: averaged over the simulator's episode lags and lengths
    (`twin.dynamics.draw_episodes`, as the engine draws them) that agree with that state."""
    lag, length = draw_episodes(np.random.default_rng(0), draws, cfg)
    end = length + EPISODE_TAIL_DAYS
    out = np.zeros(len(age))
    for a in np.unique(age):
        hi = np.minimum(end, a + FALL_WINDOW_DAYS)
        days = np.clip(hi - np.maximum(lag, a), 0, None)
        alive = end > a
        for begun in (False, True):
            pick = (age == a) & (started == begun)
            if pick.any():
                like = alive & ((lag <= a) == begun)
                out[pick] = days[like].mean() if like.any() else 0.0
    return out


def _new_episode_days(cfg: SimConfig, draws: int = 200_000) -> np.ndarray:
    """Expected days of the window an episode starting on day k of it raises the hazard, k = 0..29
    (over the simulator's lags and lengths)."""
    lag, length = draw_episodes(np.random.default_rng(1), draws, cfg)
    k = np.arange(FALL_WINDOW_DAYS)[:, None]
    return np.clip(np.minimum(FALL_WINDOW_DAYS, k + length + EPISODE_TAIL_DAYS) - (k + lag), 0, None).mean(axis=1)


def knowable_fall_hazard(history_dir: str | Path, index: pd.DataFrame,
                         cfg: SimConfig | None = None) -> np.ndarray:
    """Expected falls in [as_of, as_of + 30 d) from what holds at 00:00 of the as-of date.

    The resident's latest daily hazard before the as-of date with its acute part taken out, times
    the days of the window, each day raised by the episodes already under way (their severity, over
    the days of the window they are expected to raise the hazard, given how old they are and
    whether their hazard has begun: when an episode will end is not known on the as-of date) and by
    the expected new episodes. Falls inside the window, and what they do to the hazard, are not seen.
    """
    cfg = cfg or SimConfig(residents=1, days=1)
    truth = Path(history_dir) / "truth"
    idx = _index(index)
    latent = pd.read_parquet(truth / "latent.parquet", columns=["resident_id", "date", "frailty", "fall_hazard"])
    latent["resident_id"] = latent["resident_id"].astype(str)
    latent["date"] = pd.to_datetime(latent["date"]).astype("datetime64[ns]")
    latent = latent.loc[latent["fall_hazard"] > 0].sort_values("date")  # 0: away or in hospital
    left = idx.assign(_row=np.arange(len(idx)), _day=idx["as_of_date"] - pd.Timedelta(days=1))
    m = pd.merge_asof(left.sort_values("_day"), latent.rename(columns={"date": "_seen"}),
                      left_on="_day", right_on="_seen", by="resident_id", direction="backward")
    m = m.sort_values("_row")
    hazard = m["fall_hazard"].to_numpy(float)
    frailty = m["frailty"].to_numpy(float)
    seen = m["_seen"].to_numpy("datetime64[ns]")
    as_of = idx["as_of_date"].to_numpy("datetime64[ns]")

    eps = pd.read_parquet(truth / "episodes.parquet", columns=["resident_id", "onset", "hazard_from", "end", "severity"])
    eps["resident_id"] = eps["resident_id"].astype(str)
    day = np.timedelta64(1, "D")
    acute_at_seen = np.zeros(len(idx))
    raised_days = np.zeros(len(idx))  # sum over window days of gain * severity of known episodes
    j = idx.assign(_row=np.arange(len(idx)), _seen=seen).merge(eps, on="resident_id", how="inner")
    if len(j):
        t0 = j["as_of_date"].to_numpy("datetime64[ns]")
        onset = j["onset"].to_numpy("datetime64[ns]")
        hf = j["hazard_from"].to_numpy("datetime64[ns]")
        end = j["end"].to_numpy("datetime64[ns]")
        known = (onset < t0) & (end > t0)  # under way at 00:00 of the as-of date
        sev = j["severity"].to_numpy(float)
        s = j["_seen"].to_numpy("datetime64[ns]")
        on_seen = known & (hf <= s) & (s < end)
        age = np.where(known, (t0 - onset) // day, 0).astype(np.int64)
        overlap = _expected_overlap(age, hf <= t0, cfg) * known
        rows = j["_row"].to_numpy()
        np.add.at(acute_at_seen, rows, np.where(on_seen, cfg.acute_hazard_gain * sev, 0.0))
        np.add.at(raised_days, rows, cfg.acute_hazard_gain * sev * overlap)
    base = hazard / (1 + acute_at_seen)
    # new episodes: one starting on day k of the window raises the hazard for _new_episode_days[k]
    # of its days, at the rate the resident's frailty, medicines and the calendar give that day
    # (an outbreak is not known in advance)
    residents = pd.read_parquet(Path(history_dir) / "residents", columns=["resident_id", "medication_count"])
    meds = idx[["resident_id"]].merge(residents.assign(resident_id=residents["resident_id"].astype(str)),
                                      how="left", on="resident_id")["medication_count"].to_numpy(float)
    doy = pd.DatetimeIndex((as_of[:, None] + np.arange(FALL_WINDOW_DAYS) * day).ravel()).dayofyear
    season = episode_season(doy.to_numpy().reshape(len(idx), FALL_WINDOW_DAYS))
    rate = episode_rate(cfg, np.nan_to_num(frailty, nan=0.2)[:, None], np.nan_to_num(meds)[:, None], season)
    new_days = cfg.acute_hazard_gain * (rate * _new_episode_days(cfg)).sum(axis=1)
    return base * (FALL_WINDOW_DAYS + raised_days + new_days)


def knowable_risk(history_dir: str | Path, model: str, index: pd.DataFrame) -> np.ndarray | None:
    """The best score knowable at the as-of date for the truth's model key; None when the twin
    keeps no such truth (real data, or a model the twin plants no truth for)."""
    truth = Path(history_dir) / "truth"
    if not (truth / "causes.parquet").exists():
        return None
    idx = _index(index)
    if model == "fall_risk":
        if not (truth / "latent.parquet").exists() or not (truth / "episodes.parquet").exists():
            return None
        return knowable_fall_hazard(history_dir, idx)
    if model == "isolation":
        # probability that a score taken on the as-of date reads lonely, from the latent state
        return _weekly(truth, model, "lonely_prob", idx)
    return None


def path_oracle(history_dir: str | Path, model: str, index: pd.DataFrame) -> np.ndarray | None:
    """The realised 30-day fall hazard (sees the label window); None for other models."""
    truth = Path(history_dir) / "truth"
    if model != "fall_risk" or not (truth / "causes.parquet").exists():
        return None
    return _weekly(truth, model, "fall_hazard_30d", _index(index))
