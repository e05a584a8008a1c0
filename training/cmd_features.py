"""`twincare` commands for the features step: the training table and the online store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def parse_as_of(spec: str, history) -> list:
    """`weekly` (Mondays after a 90-day warm-up), `latest`, or comma-separated ISO dates."""
    import pandas as pd

    from features.online import latest_as_of
    from features.pipeline import weekly_as_of

    spec = spec.strip()
    if spec == "weekly":
        return list(weekly_as_of(history))
    if spec == "latest":
        return [latest_as_of(history)]
    dates = []
    for part in spec.split(","):
        try:
            dates.append(pd.Timestamp(part.strip()))
        except ValueError as exc:
            raise typer.BadParameter(f"--as-of: {part.strip()!r} is not 'weekly', 'latest' or a YYYY-MM-DD date") from exc
    return dates


def _check_history(path: Path) -> None:
    if not (path / "residents").is_dir():
        raise typer.BadParameter(f"{path} is not a twin history directory (no residents/ table)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `twincare` app."""

    @app.command()
    def features(
        history: Annotated[Path, typer.Option(help="history directory (twin Parquet tables)")],
        out: Annotated[Path, typer.Option(help="directory to write features.parquet and manifest.json")],
        as_of: str = typer.Option("weekly", "--as-of", help="'weekly', 'latest' or YYYY-MM-DD[,YYYY-MM-DD...]"),
        engine: str = typer.Option("pandas", help="pandas | dask"),
        scheduler: str = typer.Option(None, help="Dask scheduler address (default: a LocalCluster)"),
    ) -> None:
        """Build the point-in-time feature table for every resident at each as-of date."""
        from rich.progress import BarColumn, Progress, TimeElapsedColumn

        from features.pipeline import ENGINES, build_features, load_history, write_feature_table
        from twin.store import HistoryStore

        if engine not in ENGINES:
            raise typer.BadParameter(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        _check_history(history)
        t0 = time.perf_counter()
        fingerprint = HistoryStore(history).fingerprint()
        hist = load_history(history)
        dates = parse_as_of(as_of, hist)
        with Progress("[progress.description]{task.description}", BarColumn(),
                      "{task.completed}/{task.total} partitions", TimeElapsedColumn()) as bar:
            task = bar.add_task(f"features at {len(dates)} as-of date(s)", total=None)
            table = build_features(
                hist, dates, engine=engine, scheduler=scheduler,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
            bar.update(task, completed=bar.tasks[0].total or 1, total=bar.tasks[0].total or 1)
        if HistoryStore(history).fingerprint() != fingerprint:
            raise typer.BadParameter(f"{history} changed while its features were built; run again")
        # The manifest records the history fingerprint and schema hashes, so later steps can
        # reuse this table (features.pipeline.cached_features) instead of rebuilding it.
        manifest = write_feature_table(table, out, fingerprint, history=str(history.resolve()),
                                       engine=engine, seconds=round(time.perf_counter() - t0, 2))
        typer.echo(f"wrote {out / 'features.parquet'}: {len(table):,} rows x {table.shape[1] - 2} features "
                   f"({manifest['residents']:,} residents, {len(manifest['as_of'])} as-of dates) "
                   f"in {manifest['seconds']} s")

    @app.command()
    def materialise(
        history: Annotated[Path, typer.Option(help="history directory (twin Parquet tables)")],
        online: Annotated[Path, typer.Option(help="online store (SQLite file) to write")],
        as_of: str = typer.Option(None, "--as-of", help="YYYY-MM-DD (default: the day after the last sensor day)"),
    ) -> None:
        """Write every resident's latest feature vector (and recent demand counts) to the online store."""
        from features.online import OnlineStore
        from features.pipeline import load_history

        _check_history(history)
        hist = load_history(history)
        date = parse_as_of(as_of, hist)[0] if as_of else None
        store = OnlineStore(online)
        n = store.materialise(hist, date)
        typer.echo(f"materialised {n:,} residents at {store.as_of.date()} into {online} "
                   f"(feature schema {store.schema_hash})")
