"""Measure a twin history against published figures on falls and loneliness in older adults.

Each figure is computed from the recorded history only (events, assessments, sensor days,
residents), the way an epidemiologist would from a real cohort, and set beside a band around the
published value. Bands are wider than the published confidence intervals because a default twin
(2,000 residents) carries sampling error of its own; each band's source is named beside it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from twin.store import HistoryStore

SLOW_TUG_SECONDS = 13.5  # Shumway-Cook et al. 2000: TUG >= 13.5 s marks high fall risk
LONELY_SCORE = 6  # UCLA-3: a score of 6 or more is lonely


@dataclass(frozen=True)
class Band:
    lo: float
    hi: float
    source: str


# Published figure -> band. Widths reflect the published CI plus sampling error at 2,000 residents.
BANDS: dict[str, Band] = {
    "fall_incidence_65plus": Band(
        0.28,
        0.35,
        "WHO global report on falls prevention in older age (2007): 28-35% of people 65+ fall each year",
    ),
    "fall_incidence_70plus": Band(
        0.32, 0.42, "WHO global report on falls prevention in older age (2007): 32-42% over 70"
    ),
    "injured_faller_share": Band(
        0.30, 0.45, "CDC MMWR 65(37), 2016: 37.5% of older adults who fell reported an injury"
    ),
    "previous_fall_or": Band(
        2.0, 4.0, "Deandrea et al., Epidemiology 2010: history of falls OR 2.77 (95% CI 2.37-3.25)"
    ),
    "gait_or": Band(1.5, 3.2, "Deandrea et al. 2010: gait problems OR 2.06, walking aid OR 2.18"),
    "nocturia_rr_2plus": Band(
        1.05, 1.5, "Pesonen et al. 2020 (meta-analysis): nocturia (2+ a night) RR 1.20 for falls"
    ),
    "nocturia_rr_3plus": Band(
        1.1, 1.7, "Vaughan et al. 2010: 3+ night-time voids RR 1.28 for falls"
    ),
    "polypharmacy_ratio_10plus": Band(
        1.5,
        10.0,
        "ELSA cohort: fall admissions 1.5% (no drugs) -> 7.9% (5-9) -> 14.8% (10+); must rise 0-4 < 5-9 < 10+",
    ),
    "loneliness_prevalence": Band(
        0.23, 0.33, "Chawla et al., PLoS One 2021: ~26-28% of adults 60+ lonely"
    ),
    "time_out_loneliness_r": Band(
        -0.55,
        -0.30,
        "Petersen et al. 2014: sensor-measured time out of home vs loneliness r = -0.44",
    ),
}


def _manifest(dir: Path, events: pd.DataFrame) -> tuple[pd.Timestamp, int]:
    mf = dir / "manifest.json"
    if mf.exists():
        m = json.loads(mf.read_text())
        return pd.Timestamp(m["start"]), int(m["days"])
    if events.empty:
        raise ValueError(f"{dir}: no manifest.json and no events to find the history's time span")
    start = events["date"].min().normalize()
    return start, int((events["date"].max() - start).days) + 1


def _odds_ratio(exposed: np.ndarray, outcome: np.ndarray) -> float:
    a = np.sum(exposed & outcome) + 0.5
    b = np.sum(exposed & ~outcome) + 0.5
    c = np.sum(~exposed & outcome) + 0.5
    d = np.sum(~exposed & ~outcome) + 0.5
    return float((a * d) / (b * c))


def _risk_ratio(exposed: np.ndarray, outcome: np.ndarray, reference: np.ndarray) -> float:
    if exposed.sum() == 0 or reference.sum() == 0:
        return float("nan")
    r0 = outcome[reference].mean()
    return float(outcome[exposed].mean() / r0) if r0 > 0 else float("nan")


def _windows(
    start: pd.Timestamp, days: int
) -> tuple[list[tuple[pd.Timestamp, pd.Timestamp]], float]:
    """Whole years of follow-up; a shorter history gives one window and an annualising power."""
    years = days // 365
    if years >= 1:
        return [
            (start + pd.Timedelta(days=365 * k), start + pd.Timedelta(days=365 * (k + 1)))
            for k in range(years)
        ], 1.0
    return [(start, start + pd.Timedelta(days=days))], 365.0 / days


def calibrate(dir: str | Path) -> dict[str, dict]:
    """Measure the twin under `dir`; {name: {measured, band: [lo, hi], source, ok, ...}}."""
    with warnings.catch_warnings():
        # A small history leaves some groups empty; those figures come out as None, not warnings.
        warnings.simplefilter("ignore", RuntimeWarning)
        return _measure(Path(dir))


def _measure(dir: Path) -> dict[str, dict]:
    store = HistoryStore(dir)
    for t in ("residents", "events", "assessments", "sensor_days"):
        if not store.has(t):
            raise ValueError(f"{dir}: table {t} is missing; is this a twin history directory?")
    residents = store.read(
        "residents", ["resident_id", "birth_year", "medication_count", "walking_aid"]
    )
    events = store.read("events", ["resident_id", "date", "type", "injury"])
    assessments = store.read(
        "assessments", ["resident_id", "date", "tug_seconds", "loneliness_score"]
    )
    sensors = store.read(
        "sensor_days", ["resident_id", "date", "night_toilet_visits", "time_out_of_home"]
    )
    start, days = _manifest(dir, events)
    end = start + pd.Timedelta(days=days)

    ids = residents["resident_id"].to_numpy()
    pos = pd.Series(np.arange(len(ids)), index=ids)
    age = start.year - residents["birth_year"].to_numpy()
    falls = events[events["type"] == "fall"]
    moves = events[events["type"] == "move"].groupby("resident_id")["date"].min()
    moved_on = pd.Series(pd.NaT, index=ids, dtype="datetime64[ns]")
    moved_on.loc[moves.index] = moves.to_numpy()
    moved_on = moved_on.to_numpy()
    arrivals = events[events["type"] == "move_in"].groupby("resident_id")["date"].min()
    moved_in = pd.Series(pd.NaT, index=ids, dtype="datetime64[ns]")
    moved_in.loc[arrivals.index] = arrivals.to_numpy()
    moved_in = moved_in.to_numpy()

    def fell_between(a, b, injured_only: bool = False) -> np.ndarray:
        f = falls[(falls["date"] >= a) & (falls["date"] < b)]
        if injured_only:
            f = f[f["injury"].fillna(False).astype(bool)]
        out = np.zeros(len(ids), bool)
        out[pos[f["resident_id"].unique()].to_numpy()] = True
        return out

    def followed(a, b) -> np.ndarray:
        """Living in the community from `a` (moved in by then) until `b` (not moved away)."""
        return ~(moved_in > np.datetime64(a)) & ~(moved_on < np.datetime64(b))

    windows, power = _windows(start, days)
    report: dict[str, dict] = {}

    def put(name: str, measured: float, ok_extra: bool = True, **detail) -> None:
        band = BANDS[name]
        ok = bool(np.isfinite(measured) and band.lo <= measured <= band.hi and ok_extra)
        report[name] = {
            # None when the history is too small to measure it (valid JSON, never NaN)
            "measured": round(float(measured), 4) if np.isfinite(measured) else None,
            "band": [band.lo, band.hi],
            "source": band.source,
            "ok": ok,
            **detail,
        }

    # Yearly incidence of falling (residents followed for the whole year).
    inc65, inc70, inj_share = [], [], []
    for a, b in windows:
        keep = followed(a, b)
        fell = fell_between(a, b)
        injured = fell_between(a, b, injured_only=True)
        inc65.append(1 - (1 - fell[keep].mean()) ** power)
        inc70.append(1 - (1 - fell[keep & (age >= 70)].mean()) ** power)
        inj_share.append(injured[keep & fell].mean() if (keep & fell).any() else np.nan)
    per_fall = falls["injury"].fillna(False).astype(bool).mean() if len(falls) else np.nan
    put("fall_incidence_65plus", np.mean(inc65), residents=int(followed(*windows[0]).sum()))
    put(
        "fall_incidence_70plus",
        np.mean(inc70),
        residents=int((followed(*windows[0]) & (age >= 70)).sum()),
    )
    put(
        "injured_faller_share",
        np.nanmean(inj_share),
        injurious_share_of_falls=round(float(per_fall), 4),
    )

    # Previous fall -> fall: year 1 against year 2 (or the two halves of a shorter history).
    if len(windows) >= 2:
        (a1, b1), (a2, b2) = windows[0], windows[1]
    else:
        mid = start + pd.Timedelta(days=days // 2)
        (a1, b1), (a2, b2) = (start, mid), (mid, end)
    keep = followed(a1, b2)
    put(
        "previous_fall_or",
        _odds_ratio(fell_between(a1, b1)[keep], fell_between(a2, b2)[keep]),
        follow_up=f"{a1.date()}..{b1.date()} -> {a2.date()}..{b2.date()}",
    )

    # Gait: slow TUG at the first assessment or a walking aid -> a fall within the next year.
    first = (
        assessments.dropna(subset=["tug_seconds"])
        .sort_values("date")
        .groupby("resident_id")
        .first()
    )
    horizon = min(365, days // 2)
    first = first[first["date"] + pd.Timedelta(days=horizon) <= end]
    p = pos[first.index].to_numpy()
    aid = residents["walking_aid"].to_numpy()[p]
    slow = (first["tug_seconds"].to_numpy() >= SLOW_TUG_SECONDS) | aid
    fall_after = falls.merge(
        first[["date"]].rename(columns={"date": "assessed"}),
        left_on="resident_id",
        right_index=True,
    )
    fall_after = fall_after[
        (fall_after["date"] > fall_after["assessed"])
        & (fall_after["date"] <= fall_after["assessed"] + pd.Timedelta(days=horizon))
    ]
    outcome = np.isin(first.index.to_numpy(), fall_after["resident_id"].unique())
    k = ~(moved_on[p] < (first["date"] + pd.Timedelta(days=horizon)).to_numpy())
    put(
        "gait_or",
        _odds_ratio(slow[k], outcome[k]),
        exposed_share=round(float(slow[k].mean()), 4),
        residents=int(k.sum()),
    )

    # Nocturia: mean night-time toilet visits over 90 days -> a fall in the following year, pooled
    # over resident-years (year 1: the first 90 days, then the rest; later years: the 90 days before).
    base_days = min(90, days // 3)
    periods = []
    for k, (a, b) in enumerate(windows):
        if k == 0:
            base_end = start + pd.Timedelta(days=base_days)
            periods.append((start, base_end, base_end, min(end, base_end + pd.Timedelta(days=365))))
        else:
            periods.append((a - pd.Timedelta(days=base_days), a, a, b))
    noct_parts, outc_parts = [], []
    for b0, b1, f0, f1 in periods:
        s0 = sensors[(sensors["date"] >= b0) & (sensors["date"] < b1)]
        s0 = s0.groupby("resident_id")["night_toilet_visits"].agg(["mean", "count"])
        s0 = s0[s0["count"] >= min(20, base_days // 2)]
        p = pos[s0.index].to_numpy()
        keep = followed(b0, f1)[p]
        outc_parts.append(fell_between(f0, f1)[p][keep])
        noct_parts.append(s0["mean"].to_numpy()[keep])
    noct, outc = np.concatenate(noct_parts), np.concatenate(outc_parts)
    ref = noct < 1.5
    put(
        "nocturia_rr_2plus",
        _risk_ratio(noct >= 1.5, outc, ref),
        note="mean visits a night rounded: 2+ vs 0-1; pooled resident-years",
        resident_years=int(len(noct)),
    )
    put(
        "nocturia_rr_3plus",
        _risk_ratio(noct >= 2.5, outc, ref),
        share_2plus=round(float((noct >= 1.5).mean()), 4),
        share_3plus=round(float((noct >= 2.5).mean()), 4),
    )

    # Polypharmacy: residents with an injurious fall per year, by number of medications.
    meds = residents["medication_count"].to_numpy()
    groups = {"0-4": meds <= 4, "5-9": (meds >= 5) & (meds <= 9), "10+": meds >= 10}
    rates = {}
    for g, m in groups.items():
        rs = []
        for a, b in windows:
            keep = followed(a, b) & m
            rs.append(
                1 - (1 - fell_between(a, b, injured_only=True)[keep].mean()) ** power
                if keep.any()
                else np.nan
            )
        rates[g] = float(np.nanmean(rs))
    monotone = rates["0-4"] < rates["5-9"] < rates["10+"]
    put(
        "polypharmacy_ratio_10plus",
        rates["10+"] / rates["0-4"] if rates["0-4"] > 0 else float("nan"),
        ok_extra=monotone,
        injurious_fall_rate={g: round(v, 4) for g, v in rates.items()},
        shares={g: round(float(m.mean()), 4) for g, m in groups.items()},
        monotone=monotone,
    )

    # Loneliness: share of assessments scoring 6+ on UCLA-3.
    scored = assessments.dropna(subset=["loneliness_score"])
    put(
        "loneliness_prevalence",
        float((scored["loneliness_score"] >= LONELY_SCORE).mean()),
        assessments=len(scored),
    )

    # Time out of home in the 30 days before each assessment against the loneliness score.
    r = _time_out_r(scored, sensors)
    put("time_out_loneliness_r", r[0], pairs=r[1])
    return report


def _time_out_r(scored: pd.DataFrame, sensors: pd.DataFrame) -> tuple[float, int]:
    """Pearson r of each assessment's loneliness score with mean time out over the 30 days before."""
    s = sensors.dropna(subset=["time_out_of_home"])
    if s.empty or scored.empty:
        return float("nan"), 0
    ids = pd.Index(pd.unique(pd.concat([s["resident_id"], scored["resident_id"]])))
    t0 = min(s["date"].min(), scored["date"].min())
    n_days = int((max(s["date"].max(), scored["date"].max()) - t0).days) + 2
    ri = ids.get_indexer(s["resident_id"])
    di = ((s["date"] - t0).dt.days).to_numpy()
    total = np.zeros((len(ids), n_days + 1))
    count = np.zeros((len(ids), n_days + 1))
    np.add.at(total, (ri, di + 1), s["time_out_of_home"].to_numpy())
    np.add.at(count, (ri, di + 1), 1)
    total, count = total.cumsum(1), count.cumsum(1)
    ai = ids.get_indexer(scored["resident_id"])
    hi = ((scored["date"] - t0).dt.days).to_numpy()
    lo = np.maximum(hi - 30, 0)
    n = count[ai, hi] - count[ai, lo]
    ok = n >= 10
    if ok.sum() < 3:
        return float("nan"), int(ok.sum())
    x = (total[ai, hi] - total[ai, lo])[ok] / n[ok]
    y = scored["loneliness_score"].to_numpy()[ok]
    return float(np.corrcoef(x, y)[0, 1]), int(ok.sum())


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def render_table(report: dict[str, dict]):
    """A rich table: each figure beside its published band."""
    from rich.table import Table

    table = Table(title="Twin calibration against published figures")
    for col in ("figure", "measured", "band", "ok", "source"):
        table.add_column(col, overflow="fold")
    for name, m in report.items():
        lo, hi = m["band"]
        table.add_row(
            name,
            _fmt(m["measured"]),
            f"{lo:g}-{hi:g}",
            "yes" if m["ok"] else "[red]NO[/red]",
            m["source"],
        )
    return table


def markdown_table(report: dict[str, dict]) -> str:
    """The same table in Markdown (for the README)."""
    lines = ["| figure | measured | band | ok | source |", "| --- | --- | --- | --- | --- |"]
    for name, m in report.items():
        lo, hi = m["band"]
        lines.append(
            f"| {name} | {_fmt(m['measured'])} | {lo:g}–{hi:g} | {'yes' if m['ok'] else 'NO'} | {m['source']} |"
        )
    return "\n".join(lines)
