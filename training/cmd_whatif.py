"""`twincare whatif`: run the twin forward under visit policies and compare what they prevent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `twincare` app."""

    @app.command()
    def whatif(
        history: Annotated[Path, typer.Option(help="twin history directory written by `twincare simulate`")],
        tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI with the @champion models (default sqlite:///$TWINCARE_HOME/mlflow.db)")] = None,
        weeks: Annotated[int, typer.Option(help="weeks to run forward")] = 26,
        seeds: Annotated[int, typer.Option(help="forward seeds (intervals are over seeds)")] = 10,
        policies: Annotated[str, typer.Option(help="comma-separated: none,random,baseline,model,actions,oracle")] = "none,random,baseline,model,actions,oracle",
        capacity_hours: Annotated[float | None, typer.Option(help="volunteer hours a week for visits (default: the volunteers' spare hours)")] = None,
        pricing: Annotated[str, typer.Option(help="flat (base hours) or scarcity (the service's credit formula)")] = "scarcity",
        fall_share: Annotated[float, typer.Option(help="share of the weekly hours for fall prevention visits")] = 0.75,
        as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
        out: Annotated[Path | None, typer.Option(help="also write the JSON here")] = None,
        checkpoint: Annotated[Path | None, typer.Option(help="append each finished run here (JSON lines) and skip runs already there")] = None,
        log: Annotated[bool, typer.Option(help="log the result to MLflow as a run")] = True,
    ) -> None:
        """Run the twin forward under each policy and seed; falls and loneliness prevented per 100 volunteer hours."""
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

        from training.cmd_models import _history, _uri
        from training.train import json_ready
        from training.whatif import WhatIfConfig, log_to_mlflow, markdown_table, run_experiment

        hist = _history(history)
        chosen = tuple(p.strip() for p in policies.split(",") if p.strip())
        try:
            cfg = WhatIfConfig(weeks=weeks, seeds=seeds, policies=chosen, capacity_hours=capacity_hours,
                               pricing=pricing, fall_share=fall_share)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        if not (hist / "manifest.json").exists():
            raise typer.BadParameter(f"{hist} has no manifest.json: the what-if replays a simulated twin from its seed")
        uri = _uri(tracking_uri)
        console = Console(stderr=True)
        with Progress("[progress.description]{task.description}", BarColumn(), "{task.completed}/{task.total}",
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task("what-if", total=1)

            def progress(what: str, done: int, total: int) -> None:
                bar.update(task, description=what, completed=done, total=total)

            try:
                summary = run_experiment(hist, cfg, uri, progress, checkpoint)
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from exc
        if log:
            summary["mlflow_run_id"] = log_to_mlflow(summary, uri)
        data = json_ready(summary)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(data, indent=2))
        if as_json:
            typer.echo(json.dumps(data, indent=2))
        else:
            typer.echo(markdown_table(summary))
            share = summary.get("model_share_of_oracle")
            if share and share["mean"] is not None:
                lo, hi = share["ci95"]
                typer.echo(f"model policy's share of the oracle's prevention: {share['mean']:.2f} ({lo:.2f} to {hi:.2f})")
