"""`twincare` commands for the twin step: simulate a community, check it against published figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `twincare` app."""

    @app.command()
    def simulate(
        residents: Annotated[int, typer.Option(help="number of residents")] = 2000,
        days: Annotated[int, typer.Option(help="days of history")] = 730,
        seed: Annotated[int, typer.Option(help="random seed (same seed, same history)")] = 7,
        out: Annotated[Path, typer.Option(help="history directory to write")] = Path(
            "demo-data/history"
        ),
        start: Annotated[str, typer.Option(help="first day of history (ISO date)")] = "2024-01-01",
    ) -> None:
        """Simulate a community of older residents and write its history (Parquet) under OUT."""
        from rich.progress import BarColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

        from twin.simulate import simulate as run_simulation

        if residents < 1 or days < 1:
            raise typer.BadParameter("residents and days must be at least 1")
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            "{task.completed}/{task.total} days",
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ) as bar:
            task = bar.add_task(f"simulating {residents} residents", total=days)
            path = run_simulation(
                residents,
                days,
                seed,
                out,
                start=start,
                progress=lambda done, total: bar.update(task, completed=done),
                on_stage=lambda what: bar.update(task, description=what),
            )
        manifest = json.loads((path / "manifest.json").read_text())
        typer.echo(
            f"wrote {path} (twin {manifest['twin_id']}, {manifest['start']}..{manifest['end']})"
        )
        for table, rows in manifest["rows"].items():
            typer.echo(f"  {table:<17} {rows:>10,} rows")

    @app.command()
    def calibrate(
        history: Annotated[
            Path, typer.Argument(help="history directory written by `twincare simulate`")
        ],
        as_json: Annotated[
            bool, typer.Option("--json", help="print machine-readable JSON")
        ] = False,
        markdown: Annotated[
            bool, typer.Option("--markdown", help="print the table in Markdown (for a README)")
        ] = False,
    ) -> None:
        """Measure a twin against published figures; exit 1 if any figure is outside its band."""
        from twin.calibrate import calibrate as measure
        from twin.calibrate import markdown_table, render_table

        if not (history / "manifest.json").exists() and not (history / "events").is_dir():
            raise typer.BadParameter(
                f"{history} is not a twin history directory (no manifest.json, no events/)"
            )
        report = measure(history)
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        elif markdown:
            typer.echo(markdown_table(report))
        else:
            from rich.console import Console

            Console().print(render_table(report))
        if not all(m["ok"] for m in report.values()):
            raise typer.Exit(code=1)
