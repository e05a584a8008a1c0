"""The knowable fall ceiling uses only what holds at 00:00 of the as-of date."""

from __future__ import annotations

import pandas as pd

from twin.truth import knowable_fall_hazard

AS_OF = pd.Timestamp("2025-03-03")


def _truth(tmp_path, episodes: list[dict], as_of: pd.Timestamp = AS_OF, medications: int = 4):
    truth = tmp_path / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    days = pd.date_range(as_of - pd.Timedelta(days=30), as_of - pd.Timedelta(days=1))
    pd.DataFrame({"resident_id": "R1", "date": days, "frailty": 0.3, "fall_hazard": 0.002}) \
        .to_parquet(truth / "latent.parquet")
    cols = ["resident_id", "onset", "hazard_from", "end", "severity"]
    pd.DataFrame(episodes, columns=cols).to_parquet(truth / "episodes.parquet")
    (tmp_path / "residents").mkdir()
    pd.DataFrame({"resident_id": ["R1"], "medication_count": [medications]}) \
        .to_parquet(tmp_path / "residents" / "part-0.parquet")
    return knowable_fall_hazard(tmp_path, pd.DataFrame({"resident_id": ["R1"], "as_of_date": [as_of]}))[0]


def _episode(onset: str, hazard_from: str, end: str) -> dict:
    return {"resident_id": "R1", "onset": pd.Timestamp(onset), "hazard_from": pd.Timestamp(hazard_from),
            "end": pd.Timestamp(end), "severity": 1.0}


def test_an_episode_under_way_raises_the_ceiling_without_its_end_being_known(tmp_path):
    none = _truth(tmp_path / "a", [])
    # begun four days ago, its hazard not yet on: how long it will last is not known on the as-of date
    short = _truth(tmp_path / "b", [_episode("2025-02-27", "2025-03-10", "2025-03-20")])
    long = _truth(tmp_path / "c", [_episode("2025-02-27", "2025-03-10", "2025-04-30")])
    assert short == long > none
    # one that ended before the as-of date raises nothing
    over = _truth(tmp_path / "d", [_episode("2025-01-20", "2025-01-29", "2025-02-20")])
    assert over == none
    # whether its hazard has begun is part of the state on the as-of date, and counts
    begun = _truth(tmp_path / "e", [_episode("2025-02-20", "2025-03-01", "2025-03-20")])
    later = _truth(tmp_path / "f", [_episode("2025-02-20", "2025-03-06", "2025-03-20")])
    assert begun != later


def test_new_episodes_are_expected_at_the_rate_medicines_and_the_season_give(tmp_path):
    # the twin starts more episodes for residents on more medicines and in midwinter; both are
    # known on the as-of date, so the ceiling knows them too
    usual = _truth(tmp_path / "usual", [])
    many_medicines = _truth(tmp_path / "meds", [], medications=12)
    assert many_medicines > usual
    winter = _truth(tmp_path / "jan", [], as_of=pd.Timestamp("2025-01-01"))
    summer = _truth(tmp_path / "jul", [], as_of=pd.Timestamp("2025-07-01"))
    assert winter > summer
