"""`twincare ingest` commands: bring real data into the twin history.

`ingest table` appends a CSV/Parquet file already in a table's schema; `ingest events` turns one
resident's raw smart-home sensor log into sensor_days rows. Both are all or nothing: a bad file
prints its validation report and exits non-zero without writing anything.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from twin.ingest import ingest_table
from twin.ingest_events import SensorDayConfig, ingest_events, read_sensor_map
from twin.schema import TABLES


class LogFormat(StrEnum):
    casas = "casas"
    intervals = "intervals"


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def table(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file whose columns are the table's schema.")],
    table: Annotated[str, typer.Option("--table", help=f"Target table: {', '.join(TABLES)}.")],
    out: Annotated[Path, typer.Option("--out", help="History directory to append to.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only; write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the validation report as JSON.")] = False,
) -> None:
    """Validate a file against a table's schema and append it to the history (all or nothing)."""
    try:
        result = ingest_table(file, table, out, dry_run=dry_run)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(str(e).strip("'\""))
    rep = result.report
    typer.echo(json.dumps(rep.to_dict(), indent=2, default=str) if as_json else str(rep))
    if not rep.ok:
        typer.echo(f"{file}: nothing written ({len(rep.violations)} rule(s) broken)", err=True)
        raise typer.Exit(1)
    if result.written is not None:
        typer.echo(f"appended {rep.rows} rows to {result.written}", err=as_json)
    elif not rep.rows:
        typer.echo(f"{file}: no rows, nothing written", err=as_json)


def events(
    file: Annotated[Path, typer.Argument(help="Raw sensor event log of one home.")],
    log_format: Annotated[LogFormat, typer.Option("--format", help="casas: 'date time sensor value [activity]'; intervals: 'start end sensor value'.")],
    sensor_map: Annotated[Path, typer.Option("--sensor-map", help="CSV 'sensor,role' or JSON mapping sensor ids to roles.")],
    resident: Annotated[str, typer.Option("--resident", help="Pseudonymous resident id the home belongs to.")],
    out: Annotated[Path, typer.Option("--out", help="History directory to append sensor_days to.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Aggregate and validate only; write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ingestion report as JSON.")] = False,
    annotations: Annotated[Path | None, typer.Option("--annotations", help="Write activity annotations found in the log to this CSV.")] = None,
    outage_hours: Annotated[float, typer.Option(help="A silence this long (not an absence) is a sensor outage.")] = 24.0,
    stuck_on_hours: Annotated[float, typer.Option(help="An activation longer than this (bed: 16 h) is a stuck sensor, capped.")] = 2.0,
) -> None:
    """Aggregate a raw smart-home sensor log into sensor_days and append it to the history."""
    try:
        config = SensorDayConfig(outage_hours=outage_hours, stuck_on_hours=stuck_on_hours)
        mapping = read_sensor_map(sensor_map)
        result = ingest_events(file, log_format.value, mapping, resident, out, config=config, dry_run=dry_run)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    rep = result.report
    typer.echo(json.dumps(rep.to_dict(), indent=2, default=str) if as_json else str(rep))
    if annotations is not None and len(result.annotations):
        annotations.parent.mkdir(parents=True, exist_ok=True)
        result.annotations.to_csv(annotations, index=False)
    if not rep.ok:
        typer.echo(f"{file}: nothing written (sensor_days rows broke the schema)", err=True)
        raise typer.Exit(1)
    if not rep.days:
        typer.echo(f"{file}: no events, nothing written", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `twincare` app."""
    ingest_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Bring real data into the twin history.")
    ingest_app.command("table")(table)
    ingest_app.command("events")(events)
    app.add_typer(ingest_app, name="ingest")
