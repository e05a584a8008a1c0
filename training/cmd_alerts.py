"""`twincare alerts` commands: measure the alert rules on a twin, or run them over a real log.

`alerts evaluate` builds an event twin (intra-day events with planted incidents) from a history,
replays it through the alert rules the service runs, and reports recall, detection delay and false
alarms per incident kind at several sensitivities. `alerts replay` lists the alerts a real sensor
log would have raised.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from models.alerts import AlertSettings
from training.alerts_eval import evaluate as evaluate_twin
from training.alerts_eval import replay as replay_events
from training.cmd_ingest import LogFormat
from twin.events import EventTwinConfig, simulate_events
from twin.ingest_events import (
    EventLogReport,
    SensorDayConfig,
    casas_activations,
    interval_activations,
    parse_casas,
    parse_intervals,
    read_sensor_map,
)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


GROUP_NAMES = {"chair_sensor": "with chair sensor", "motion_only": "motion only",
               "bedroom_chair_sensor": "with bedroom chair sensor only",
               "both_chair_sensors": "with armchair and bedroom chair sensors"}


def _with_ci(x: dict, key: str, spec: str) -> str:
    """A figure with its 95% interval when the evaluation has one: `0.891 [0.800, 0.964]`."""
    ci = x.get(f"{key}_ci")
    return _fmt(x.get(key), spec) + (f" [{format(ci[0], spec)}, {format(ci[1], spec)}]" if ci else "")


def kit_groups(homes: set[str], chair_homes: set[str], bedroom_chair_homes: set[str]) -> dict[str, set[str]]:
    """Homes by sensor kit: motion only, the armchair's sensor, the bedroom chair's, or both
    (`chair_sensor` is the armchair alone; without bedroom chair sensors, as it always was)."""
    groups = {"chair_sensor": chair_homes - bedroom_chair_homes,
              "bedroom_chair_sensor": bedroom_chair_homes - chair_homes,
              "both_chair_sensors": chair_homes & bedroom_chair_homes,
              "motion_only": homes - chair_homes - bedroom_chair_homes}
    return {k: v & homes for k, v in groups.items() if v & homes}


def markdown_table(results: list[dict]) -> str:
    """The evaluation as a Markdown table: one row per sensitivity and incident kind."""
    lines = ["| sensitivity | incident | n | recall | median delay (min) | p90 delay (min) | false alarms / resident-month | alerts / care manager / week |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for i, x in enumerate(r["incidents"]):
            budget = _fmt(r["alerts_per_care_manager_week"], ".1f") if i == 0 else ""
            lines.append(
                f"| {r['sensitivity']:g} | {x['kind']} | {x['incidents']} | {_with_ci(x, 'recall', '.3f')} | "
                f"{_with_ci(x, 'median_delay_min', '.0f')} | {_fmt(x['p90_delay_min'], '.0f')} | "
                f"{_with_ci(x, 'false_alarms_per_resident_month', '.2f')} | {budget} |")
        lines.append(f"| {r['sensitivity']:g} | all kinds | | | | | {_with_ci(r, 'false_alarms_per_resident_month', '.2f')} | |")
    return "\n".join(lines)


def falls_by_group_table(results: list[dict]) -> str:
    """Falls with a long lie and all false alarms, per group of homes (with and without a chair sensor)."""
    lines = ["| sensitivity | homes | residents | falls | recall | median delay (min) | p90 delay (min) | false alarms / resident-month, falls | all kinds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for name, g in (r.get("groups") or {}).items():
            x = g["incidents"][0]
            lines.append(
                f"| {r['sensitivity']:g} | {GROUP_NAMES.get(name, name)} | {g['residents']} | {x['incidents']} | "
                f"{_with_ci(x, 'recall', '.3f')} | {_with_ci(x, 'median_delay_min', '.0f')} | {_fmt(x['p90_delay_min'], '.0f')} | "
                f"{_with_ci(x, 'false_alarms_per_resident_month', '.2f')} | {_with_ci(g, 'false_alarms_per_resident_month', '.2f')} |")
    return "\n".join(lines)


def evaluate(
    history: Annotated[Path | None, typer.Option("--history", help="Twin history with residents and sensor_days (default: simulate one).")] = None,
    residents: Annotated[int, typer.Option(help="Residents to simulate (or to take from --history).")] = 200,
    days: Annotated[int, typer.Option(help="Days to simulate when no --history is given.")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the twin and its events.")] = 7,
    sensitivity: Annotated[list[float] | None, typer.Option("--sensitivity", help="Sensitivity settings to try (repeat); above 1 waits longer.")] = None,
    caseload: Annotated[int, typer.Option(help="Residents per care manager, for the alert budget.")] = 50,
    chair_share: Annotated[float, typer.Option("--chair-share", help="Share of homes with a chair occupancy sensor (results also per group).")] = 0.5,
    bedroom_chair_share: Annotated[float, typer.Option("--bedroom-chair-share", help="Share of homes with an occupancy sensor on the bedroom's chair (drawn apart from the armchair's; results per kit).")] = 0.0,
    fall_stir_share: Annotated[float, typer.Option("--fall-stir-share", help="Share of falls after which the resident stirs in view of a motion sensor (the twin's default: none).")] = 0.0,
    rated: Annotated[float, typer.Option("--rated", help="Share of alerts the care managers rate, real or false by the truth (false 'out' during an outing whose door event was missed), --rating-delay-min after each is raised; the ratings tune the rules as the service's do (0: none rated).")] = 1.0,
    rating_delay_min: Annotated[float, typer.Option("--rating-delay-min", help="Minutes from an alert to its rating (the visit it opens).")] = 60.0,
    save_events: Annotated[Path | None, typer.Option("--save-events", help="Write the event twin here (events.parquet, truth/, sensor_map.json).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the JSON result to this file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Replay a twin's intra-day events through the alert rules; recall, delay and false alarms."""
    t0 = time.perf_counter()
    if history is not None:
        from twin.store import HistoryStore

        store = HistoryStore(history)
        if not store.has("sensor_days"):
            _fail(f"{history} has no sensor_days table")
        res_df = store.read("residents")
        ids = sorted(res_df["resident_id"].astype(str))[:residents]
        sd = store.read("sensor_days")
    else:
        from twin.simulate import simulate_frames

        frames = simulate_frames(residents, days, seed)
        res_df, sd = frames["residents"], frames["sensor_days"]
        ids = None
    for name, share in (("--chair-share", chair_share), ("--bedroom-chair-share", bedroom_chair_share),
                        ("--fall-stir-share", fall_stir_share), ("--rated", rated)):
        if not 0.0 <= share <= 1.0:
            _fail(f"{name} must be between 0 and 1")
    if not rating_delay_min >= 0:
        _fail("--rating-delay-min must be 0 or more")
    twin = simulate_events(res_df, sd, seed=seed, resident_ids=ids,
                           config=EventTwinConfig(chair_share=chair_share, bedroom_chair_share=bedroom_chair_share,
                                                  fall_stir_share=fall_stir_share))
    t1 = time.perf_counter()
    if save_events is not None:
        (save_events / "truth").mkdir(parents=True, exist_ok=True)
        twin.events.to_parquet(save_events / "events.parquet", index=False)
        twin.incidents.to_parquet(save_events / "truth" / "incidents.parquet", index=False)
        twin.confounders.to_parquet(save_events / "truth" / "confounders.parquet", index=False)
        (save_events / "sensor_map.json").write_text(json.dumps(twin.sensor_map, indent=2))
    homes = set(twin.events["resident_id"].astype(str))
    groups = kit_groups(homes, set(twin.chair_homes), set(twin.bedroom_chair_homes))
    results = evaluate_twin(twin.events, twin.incidents, twin.sensor_map,
                            sensitivities=tuple(sensitivity or (1.0, 1.25, 1.5, 2.0)), caseload=caseload,
                            groups=groups, rated=rated, rating_delay=pd.Timedelta(minutes=rating_delay_min),
                            confounders=twin.confounders)
    t2 = time.perf_counter()
    best = results[0]
    doc = {
        "residents": int(twin.events["resident_id"].nunique()),
        "chair_share": chair_share,
        "residents_with_chair_sensor": len(twin.chair_homes),
        "bedroom_chair_share": bedroom_chair_share,
        "residents_with_bedroom_chair_sensor": len(twin.bedroom_chair_homes),
        "fall_stir_share": fall_stir_share,
        "rated": rated,
        "rating_delay_min": rating_delay_min,
        "events": int(len(twin.events)),
        "incidents": best["incidents"],
        "settings": results,
        "seconds": {"events": round(t1 - t0, 1), "replay": round(t2 - t1, 1)},
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2))
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        typer.echo(f"{doc['residents']} residents, {doc['events']} events; "
                   f"twin {doc['seconds']['events']} s, replay {doc['seconds']['replay']} s")
        typer.echo(markdown_table(results))
        if any(r.get("groups") for r in results):
            typer.echo("")
            typer.echo(falls_by_group_table(results))


def _log_events(path: Path, fmt: str, sensor_map: dict[str, str]) -> tuple[pd.DataFrame, EventLogReport]:
    """A real log as time-ordered events (time, sensor, value), cleaned as ingestion cleans it."""
    rep = EventLogReport(source=str(path), format=fmt, resident_id="log")
    cfg = SensorDayConfig()
    with path.open(encoding="utf-8", errors="replace") as f:
        if fmt == "casas":
            events, _ = parse_casas(f, rep)
            acts, _, _ = casas_activations(events, sensor_map, cfg, rep)
        else:
            acts, _, _ = interval_activations(parse_intervals(f, rep), sensor_map, cfg, rep)
    on_value = {"front_door": "OPEN"}
    rows = []
    for sensor, role, start, end in acts[["sensor", "role", "start", "end"]].itertuples(index=False):
        rows.append((start, sensor, on_value.get(role, "ON")))
        rows.append((end, sensor, "CLOSE" if role == "front_door" else "OFF"))
    ev = pd.DataFrame(rows, columns=["t", "sensor", "value"]).sort_values("t", kind="stable")
    ev["time"] = pd.to_datetime(ev.pop("t"), unit="s")
    ev.insert(0, "resident_id", "log")
    return ev, rep


def replay(
    log: Annotated[Path, typer.Argument(help="Raw sensor event log of one home.")],
    log_format: Annotated[LogFormat, typer.Option("--format", help="casas or intervals.")],
    sensor_map: Annotated[Path, typer.Option("--sensor-map", help="CSV 'sensor,role' or JSON mapping sensor ids to roles.")],
    sensitivity: Annotated[float, typer.Option(help="Above 1 waits longer (fewer alerts).")] = 1.0,
    learning_days: Annotated[int, typer.Option(help="Observed days before any alert.")] = 14,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the alerts the rules would have raised over a real sensor log."""
    try:
        mapping = read_sensor_map(sensor_map)
        events, _ = _log_events(log, log_format.value, mapping)
        settings = AlertSettings(sensitivity=sensitivity, learning_days=learning_days,
                                 history_days=max(28, learning_days))
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    rep = replay_events(events, mapping, settings)
    alerts = [{"kind": a.kind, "at": a.at.isoformat(timespec="seconds"), "text": a.text} for a in rep.alerts]
    days = int(events["time"].dt.normalize().nunique()) if len(events) else 0
    if as_json:
        typer.echo(json.dumps({"days": days, "alerts": alerts}, indent=2))
        return
    typer.echo(f"{log}: {days} days observed, {len(alerts)} alerts")
    for a in alerts:
        typer.echo(f"  {a['at']}  {a['kind']:<13} {a['text']}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `twincare` app."""
    alerts_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Measure and replay the hazard alerts.")
    alerts_app.command("evaluate")(evaluate)
    alerts_app.command("replay")(replay)
    app.add_typer(alerts_app, name="alerts")
