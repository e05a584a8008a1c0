"""Why the alert rules miss falls and raise false alarms on the event twin, counted.

    python -m benchmarks.bench_alert_causes [--residents 200] [--days 60] [--seed 11]
        [--chair-share 1] [--bedroom-chair-share 1] [--fall-stir-share 0] [--sensitivity 1.5 ...]
        [--rated 1] [--rating-delay-min 60] [--out benchmarks/results/alert_causes.json]

The same twin and scoring as `twincare alerts evaluate` (`training.alerts_eval.replay` and
`score`, per kit of homes), and for each sensitivity:
- every false alarm by what was going on: the confounder of that home (a second person, a
  visitor, a nap, an outing whose door event was missed, a dropout, a flat battery, a late
  walk) whose span touches the alert's stillness, or `routine` when none does; and by where the
  resident was last seen (the alert's own words);
- every missed fall with where it happened, the confounders touching it, and what the home's
  monitor believed when the resident fell (in bed, seated, out of the door, no limit yet);
- recall and delays per sensor kit and per household (living alone or with someone: a home of
  two waits longer while it is not known who is at home);
- falls with a long lie by the room they happened in: found, and the median delay (the limit a
  room's routine stillness sets).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pandas as pd

RESULT = Path(__file__).parent / "results" / "alert_causes.json"
_WHERE = re.compile(r"\((last in the [a-z ]+|sitting in [^)]*|got up from [^)]*)\)")


def false_alarm_causes(alerts: pd.DataFrame, confounders: pd.DataFrame) -> dict:
    """False alarms (resident_id, kind, at, since, text) by the confounder touching them."""
    by_res = {r: g for r, g in confounders.groupby("resident_id")}
    causes, where = Counter(), Counter()
    for a in alerts.itertuples(index=False):
        g = by_res.get(a.resident_id)
        kinds = [] if g is None else sorted(set(g[(g["start"] < a.at) & (g["end"] > a.since - pd.Timedelta(minutes=5))]["kind"]))
        causes[f"{a.kind}: {' + '.join(kinds) or 'routine'}"] += 1
        if a.kind == "no_movement":
            m = _WHERE.search(a.text)
            where[m.group(1) if m else "?"] += 1
    return {"by_cause": dict(causes.most_common()), "no_movement_by_where": dict(where.most_common())}


def falls_by_room(falls: pd.DataFrame, alerts: pd.DataFrame) -> dict:
    """Falls with a long lie by the room they happened in: how many, how many an alert found (the
    evaluation's own matching, `match_incidents`), and the median delay."""
    from training.alerts_eval import match_incidents

    delay = pd.Series(match_incidents(alerts, falls)[0], index=falls.index)
    out = {}
    for room, group in falls.groupby("room"):
        found = delay[group.index].dropna()
        out[str(room)] = {"falls": len(group), "found": len(found),
                          "median_delay_min": round(float(found.median()), 1) if len(found) else None}
    return out


def missed_falls(events: pd.DataFrame, truth, sensor_map: dict, settings, alerts: pd.DataFrame,
                 ratings=None) -> list[dict]:
    """The falls no no_movement alert found, with what the home's monitor believed at the fall
    (its events replayed up to the fall, with the same `ratings` fed back as in the replay)."""
    from models.alerts import ResidentMonitor
    from training.alerts_eval import Rater, feed_home

    falls = truth.incidents[truth.incidents["kind"] == "fall_long_lie"]
    out = []
    epoch = pd.Timestamp(events["time"].min()).normalize().to_pydatetime()
    for x in falls.itertuples(index=False):
        near = alerts[(alerts["resident_id"] == x.resident_id) & (alerts["kind"] == "no_movement")
                      & (alerts["at"] >= x.start - pd.Timedelta(minutes=5)) & (alerts["at"] <= x.end + pd.Timedelta(minutes=30))]
        if len(near):
            continue
        ev = events[(events["resident_id"] == x.resident_id) & (events["time"] <= x.start + pd.Timedelta(seconds=1))]
        mon = ResidentMonitor(x.resident_id, sensor_map, settings, epoch=epoch)
        rater = None if ratings is None else Rater(ratings, mon)
        feed_home(mon, (ev["time"] - pd.Timestamp(epoch)).dt.total_seconds().to_numpy(),
                  ev["sensor"].astype(str).to_numpy(), ev["value"].astype(str).to_numpy(), rater)
        c = truth.confounders
        touching = c[(c["resident_id"] == x.resident_id) & (c["start"] < x.end) & (c["end"] > x.start)]["kind"]
        s = mon.seconds(x.start.to_pydatetime())
        rule = mon.still_rule()  # the limit the stillness after the fall was held to, and why
        out.append({
            "resident_id": x.resident_id, "start": x.start.isoformat(), "lie_min": round((x.end - x.start).total_seconds() / 60),
            "room": sensor_map.get(x.room, x.room), "confounders": sorted(set(touching)),
            "learning": mon.learning, "in_bed": mon._in_bed, "seated": mon._seat, "door_open_last": mon._door is not None,
            "last_place": mon._room, "chairs_trusted": mon.has_chair(s, mon._room),
            "limit_min": None if rule is None else round(rule.limit / 60),
            "limit_set_by": None if rule is None else [k for k in ("unseated", "entrance", "company", "unsure")
                                                       if getattr(rule, k)] + ([f"quiet {rule.blind_room} sensor"]
                                                                               if rule.blind_room else []),
        })
    return out


def main(argv: list[str] | None = None) -> dict:
    from models.alerts import AlertSettings
    from training.alerts_eval import Ratings, match_incidents, replay, score
    from training.cmd_alerts import kit_groups
    from twin.events import EventTwinConfig, simulate_events
    from twin.simulate import simulate_frames

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--residents", type=int, default=200)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--chair-share", type=float, default=1.0)
    ap.add_argument("--bedroom-chair-share", type=float, default=1.0)
    ap.add_argument("--fall-stir-share", type=float, default=0.0)
    ap.add_argument("--sensitivity", type=float, action="append", default=None)
    ap.add_argument("--rated", type=float, default=1.0,
                    help="share of alerts rated by the truth an hour after each (as `twincare alerts evaluate`)")
    ap.add_argument("--rating-delay-min", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    frames = simulate_frames(args.residents, args.days, args.seed)
    twin = simulate_events(frames["residents"], frames["sensor_days"], seed=args.seed,
                           config=EventTwinConfig(chair_share=args.chair_share, bedroom_chair_share=args.bedroom_chair_share,
                                                  fall_stir_share=args.fall_stir_share))
    homes = set(twin.events["resident_id"].astype(str))
    groups = kit_groups(homes, set(twin.chair_homes), set(twin.bedroom_chair_homes))
    # homes of two pay for the rule that waits longer while it is not known who is at home
    alone = set(frames["residents"].loc[frames["residents"]["lives_alone"].astype(bool), "resident_id"].astype(str))
    groups |= {"lives_alone": homes & alone, "lives_with_someone": homes - alone}
    doc = {"residents": len(homes), "seed": args.seed, "days": args.days, "chair_share": args.chair_share,
           "bedroom_chair_share": args.bedroom_chair_share, "fall_stir_share": args.fall_stir_share,
           "rated": args.rated, "rating_delay_min": args.rating_delay_min, "events": int(len(twin.events)), "settings": []}
    ratings = (Ratings(twin.incidents, pd.Timedelta(minutes=args.rating_delay_min), args.rated,
                       confounders=twin.confounders) if args.rated > 0 else None)
    for sens in args.sensitivity or [1.5]:
        settings = replace(AlertSettings(), sensitivity=sens)
        rep = replay(twin.events, twin.sensor_map, settings, ratings)
        row = {"sensitivity": sens} | score(rep, twin.incidents)
        row["groups"] = {k: score(rep, twin.incidents, residents=v) for k, v in groups.items()}
        alerts = pd.DataFrame([a.to_dict() | {"at": a.at, "since": a.since} for a in rep.alerts])
        alerts["at"], alerts["since"] = pd.to_datetime(alerts["at"]), pd.to_datetime(alerts["since"])
        alerts = alerts[alerts["resident_id"].isin(set(rep.eligible_from))]
        explained = match_incidents(alerts, twin.incidents)[1]
        row["false_alarms_by"] = false_alarm_causes(alerts[~explained], twin.confounders)
        eligible = twin.incidents["start"] >= twin.incidents["resident_id"].map(rep.eligible_from)
        row["missed_falls"] = missed_falls(twin.events, replace(twin, incidents=twin.incidents[eligible]),
                                           twin.sensor_map, settings, alerts, ratings)
        falls = twin.incidents[eligible & (twin.incidents["kind"] == "fall_long_lie")]
        row["falls_by_room"] = falls_by_room(falls, alerts)
        doc["settings"].append(row)
        print(json.dumps({k: row[k] for k in ("sensitivity", "incidents", "false_alarms_per_resident_month")}), flush=True)
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=str))
    return doc


if __name__ == "__main__":
    main()
