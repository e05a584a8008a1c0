"""The step-wise engine: the recorded history replayed exactly, common random numbers forward,
visits acting by their cited effect sizes, and `none` forward still calibrated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twin.calibrate import BANDS
from twin.engine import Engine, VisitEffects
from twin.simulate import TABLES, _tables, conform, sensor_days_frame
from twin.store import HistoryStore


def _config(history):
    from training.whatif import sim_config_of

    return sim_config_of(history)


@pytest.fixture(scope="module")
def recorded(small_twin):
    """The engine replayed from the small twin's seed to the end of its history, room to go on."""
    cfg = _config(small_twin)
    engine = Engine(cfg, extra_days=400)
    engine.run(cfg.days)
    return engine


def test_the_recorded_history_is_reproduced_exactly(small_twin, recorded):
    store = HistoryStore(small_twin)
    raw = recorded.raw()
    r = np.random.default_rng(np.random.SeedSequence(recorded.cfg.seed).spawn(7)[6])
    tables = _tables(raw, r)
    tables["sensor_days"] = sensor_days_frame(raw)
    for name in ("events", "assessments", "visits", "tasks", "service_requests", "ledger", "sensor_days"):
        replay = conform(tables[name], TABLES[name])[TABLES[name].column_names]
        written = store.read(name)[TABLES[name].column_names]
        pd.testing.assert_frame_equal(replay.reset_index(drop=True), written.reset_index(drop=True),
                                      check_dtype=False, obj=name)


def _forward(engine: Engine, seed: int, days: int, visits_on=None) -> Engine:
    e = engine.fork()
    e.go_forward(seed, VisitEffects())
    for d in range(days):
        e.step(visits_on(d, e) if visits_on else None)
    return e


def test_same_seed_same_forward_run_and_other_seeds_differ(recorded):
    a, b = _forward(recorded, 3, 20), _forward(recorded, 3, 20)
    c = _forward(recorded, 4, 20)
    sl = slice(recorded.recorded_days, recorded.recorded_days + 20)
    np.testing.assert_array_equal(a.hazard_m[sl], b.hazard_m[sl])
    np.testing.assert_array_equal(a.sensors["steps"][sl], b.sensors["steps"][sl])
    assert not np.array_equal(a.sensors["steps"][sl], c.sensors["steps"][sl])


def test_visits_change_only_the_visited_residents_and_by_the_cited_rate_ratio(recorded):
    """Common random numbers: residents nobody visits live exactly the same days; a home-hazard
    check multiplies the visited residents' fall hazard by Gillespie's 0.81 (0.62 after a fall)."""
    t0 = recorded.recorded_days
    at_home = np.flatnonzero(~recorded.st["away"] & (recorded.st["hospital_until"] < t0))
    chosen = at_home[:40]
    none = _forward(recorded, 5, 10)
    checked = _forward(recorded, 5, 10, lambda d, e: {"home_hazard_check": chosen} if d == 0 else None)
    others = np.setdiff1d(np.arange(recorded.n), chosen)
    sl = slice(t0, t0 + 10)
    np.testing.assert_array_equal(none.hazard_m[sl][:, others], checked.hazard_m[sl][:, others])
    ratio = checked.hazard_m[t0, chosen].astype(float) / none.hazard_m[t0, chosen].astype(float)
    fell = (t0 - recorded.st["last_fall"][chosen]) <= 365
    e = VisitEffects()
    expected = np.where(fell, e.home_safety_rar_high_risk, e.home_safety_rar)
    np.testing.assert_allclose(ratio, expected, rtol=1e-5)


def test_companionship_lowers_loneliness_and_walks_lower_hazard(recorded):
    t0 = recorded.recorded_days
    at_home = np.flatnonzero(~recorded.st["away"] & (recorded.st["hospital_until"] < t0))[:60]
    none = _forward(recorded, 6, 42)
    weekly = _forward(recorded, 6, 42, lambda d, e: {"companionship": at_home, "walk": at_home} if d % 7 == 0 else None)
    end = t0 + 41
    assert (weekly.lonely_m[end, at_home] < none.lonely_m[end, at_home]).all()
    assert (weekly.hazard_m[end, at_home] <= none.hazard_m[end, at_home]).all()


def test_effects_refuse_impossible_values():
    with pytest.raises(ValueError, match="rate ratio"):
        VisitEffects(home_safety_rar=0.0)
    with pytest.raises(ValueError, match="positive"):
        VisitEffects(exercise_waning_days=0)


@pytest.mark.slow
def test_no_visits_forward_stays_inside_the_published_fall_incidence():
    """The forward engine (noise per day and site) with nobody visiting, over the default
    twin's two calibrated years from its seed: yearly fall incidence at 65+ and 70+ and the share
    of fallers injured, measured as `twincare calibrate` does, lie in the calibration bands."""
    from twin.simulate import SimConfig

    e = Engine(SimConfig(residents=2000, days=730, seed=7))
    e.go_forward(1, VisitEffects())
    e.run(730)
    typ = np.concatenate(e.ev["type"]).astype(str)
    day = np.concatenate(e.ev["day"]).astype(int)[typ == "fall"]
    idx = np.concatenate(e.ev["idx"]).astype(int)[typ == "fall"]
    inj = np.concatenate(e.ev["injury"]).astype(bool)[typ == "fall"]
    age70 = e.pop.age >= 70
    inc65, inc70, injured = [], [], []
    for y in range(2):
        a, b = 365 * y, 365 * (y + 1)
        stayed = e.in_comm[b - 1]
        fell = np.zeros(e.n, bool)
        fell[idx[(day >= a) & (day < b)]] = True
        hurt = np.zeros(e.n, bool)
        hurt[idx[(day >= a) & (day < b) & inj]] = True
        inc65.append(fell[stayed].mean())
        inc70.append(fell[stayed & age70].mean())
        injured.append(hurt[stayed & fell].mean())
    for name, value in (("fall_incidence_65plus", np.mean(inc65)), ("fall_incidence_70plus", np.mean(inc70)),
                        ("injured_faller_share", np.mean(injured))):
        band = BANDS[name]
        assert band.lo <= value <= band.hi, (name, value)


def _forward_incidence(e: Engine, first: int, last: int) -> dict[str, float]:
    """Fall incidence over days [first, last) annualised as `twincare calibrate` does, among
    residents who lived in the community the whole window."""
    typ = np.concatenate(e.ev["type"]).astype(str)
    day = np.concatenate(e.ev["day"]).astype(int)
    idx = np.concatenate(e.ev["idx"]).astype(int)
    inj = np.concatenate(e.ev["injury"]).astype(bool)
    falls = (typ == "fall") & (day >= first) & (day < last)
    followed = e.in_comm[first] & e.in_comm[last - 1] & (e.arrival_day <= first)
    fell = np.zeros(e.n, bool)
    fell[idx[falls]] = True
    hurt = np.zeros(e.n, bool)
    hurt[idx[falls & inj]] = True
    power = 365 / (last - first)
    age70 = e.pop.age >= 70
    return {
        "fall_incidence_65plus": 1 - (1 - fell[followed].mean()) ** power,
        "fall_incidence_70plus": 1 - (1 - fell[followed & age70].mean()) ** power,
        "injured_faller_share": hurt[followed & fell].mean(),
    }


def test_none_forward_from_the_end_of_the_history_stays_inside_the_fall_bands():
    """The open community does not age. Forward from the end of a two-year history with nobody
    visiting (mean of two forward seeds): the yearly fall incidence of the forward year, and of the
    year ending with the what-if's 26 forward weeks, lie in the calibration bands; those 26 weeks
    (January to June, annualised) match the same weeks of the recorded years — a closed cohort
    ran 0.04-0.08 above them; and newcomers keep moving in while others leave."""
    from twin.simulate import SimConfig

    cfg = SimConfig(residents=1500, days=730, seed=7)
    e = Engine(cfg, extra_days=364)
    e.run(cfg.days)
    runs = [_forward(e, s, 364) for s in (1, 2)]
    d = cfg.days

    def mean(first: int, last: int, name: str) -> float:
        return float(np.mean([_forward_incidence(r, first, last)[name] for r in runs]))

    for name in ("fall_incidence_65plus", "fall_incidence_70plus", "injured_faller_share"):
        band = BANDS[name]
        for first, last in ((d, d + 364), (d + 182 - 364, d + 182)):
            assert band.lo <= mean(first, last, name) <= band.hi, (name, first, last, mean(first, last, name))
    half = mean(d, d + 182, "fall_incidence_65plus")
    recorded = np.mean([_forward_incidence(e, a, a + 182)["fall_incidence_65plus"] for a in (0, 365)])
    assert abs(half - recorded) < 0.03, (half, recorded)
    r = runs[0]
    typ = np.concatenate(r.ev["type"]).astype(str)
    ahead = np.concatenate(r.ev["day"]).astype(int) >= d
    assert ((typ == "move_in") & ahead).sum() > 0.05 * cfg.residents
    assert ((typ == "move") & ahead).sum() > 0.05 * cfg.residents
    assert 0.95 * cfg.residents <= r.in_comm[d + 363].sum() <= 1.05 * cfg.residents
