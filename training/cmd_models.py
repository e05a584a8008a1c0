"""`twincare` commands for the models step: train, evaluate, backtest, promote, forecast, demo-train."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

ENGINES = ("pandas", "dask")


def _models_help() -> str:
    from models.registry import SPECS

    return ", ".join(s.cli_name for s in SPECS.values())


MODELS_HELP = _models_help()
REFERENCE_HELP = ("another community's MLflow tracking URI or `demo-train` work directory: its champion of "
                  "each risk model is a further candidate here (refused by name when its feature schema "
                  "differs)")


def _home() -> Path:
    return Path(os.environ.get("TWINCARE_HOME", "demo-data"))


def _uri(tracking_uri: str | None) -> str:
    from models.registry import default_tracking_uri

    return tracking_uri or default_tracking_uri(_home())


def _history(history: Path | None) -> Path:
    h = history or _home() / "history"
    if not (h / "residents").is_dir():
        raise typer.BadParameter(f"{h} is not a twin history directory (no residents/ table); "
                                 "run `twincare simulate --out DIR` or pass --history")
    return h


def _params(path: Path | None):
    from training.config import load_params

    try:
        return load_params(path)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc


def _print(data) -> None:
    from training.train import json_ready

    typer.echo(json.dumps(json_ready(data), indent=2))


def _read_series(path: Path):
    import pandas as pd

    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `twincare` app."""

    @app.command()
    def train(
        model: Annotated[str, typer.Argument(help=MODELS_HELP)],
        history: Annotated[Path | None, typer.Option(help="twin history directory (default $TWINCARE_HOME/history)")] = None,
        tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default sqlite:///$TWINCARE_HOME/mlflow.db)")] = None,
        params: Annotated[Path | None, typer.Option(help="TOML or JSON file of training parameters")] = None,
        engine: Annotated[str, typer.Option(help="pandas, or dask (features and lightgbm.dask on a LocalCluster)")] = "pandas",
        scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address (engine dask)")] = None,
        features: Annotated[Path | None, typer.Option(help="feature table folder (`twincare features --out`) to reuse when it was built from this history")] = None,
        cause_twin: Annotated[Path | None, typer.Option(help="a twin history whose planted causes teach the version's cause reader, when this history has none (a real community's); only where that twin's mechanisms were fitted to this community: under other hazard ratios a reader names causes worse than the SHAP sums")] = None,
    ) -> None:
        """Train one model (seeded), evaluate it on the latest window and register it in MLflow."""
        from training.train import model_name
        from training.train import train as run_train

        if engine not in ENGINES:
            raise typer.BadParameter(f"--engine must be one of {ENGINES}, got {engine!r}")
        try:
            model_name(model)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        if cause_twin is not None and not (cause_twin / "truth" / "causes.parquet").exists():
            raise typer.BadParameter(f"{cause_twin} has no truth/causes.parquet: it is not a twin history with "
                                     "planted causes", param_hint="--cause-twin")
        summary = run_train(model, _history(history), _uri(tracking_uri), _params(params), engine=engine,
                            scheduler=scheduler, features_dir=features, cause_twin=cause_twin)
        _print(summary.headline())

    @app.command()
    def evaluate(
        model: Annotated[str, typer.Argument(help=MODELS_HELP)],
        version: Annotated[str | None, typer.Option(help="version to evaluate (default @champion)")] = None,
        history: Annotated[Path | None, typer.Option(help="history (default: the one it was trained on)")] = None,
        tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI")] = None,
    ) -> None:
        """Score a registered version on its frozen test window (metrics, slices)."""
        from training.evaluate_version import evaluate_version

        try:
            out = evaluate_version(model, _uri(tracking_uri), version, str(history) if history else None)
        except (LookupError, ValueError, RuntimeError) as exc:
            raise typer.BadParameter(str(exc)) from exc
        _print(out)

    @app.command()
    def backtest(
        history: Annotated[Path | None, typer.Option(help="twin history (its service requests)")] = None,
        series: Annotated[Path | None, typer.Option(help="or a CSV/Parquet of series_id,date,count")] = None,
        params: Annotated[Path | None, typer.Option(help="TOML or JSON file of training parameters")] = None,
        gaps: Annotated[str, typer.Option(help="missing dates are 'missing' (unknown) or 'zero'")] = "missing",
    ) -> None:
        """Rolling-origin backtest of the demand forecaster against seasonal naive."""
        from features.demand import CountTableError, count_panel
        from models.demand import NotEnoughHistory
        from training.backtest import rolling_origin
        from training.train import history_counts

        p = _params(params)
        try:
            counts = _read_series(series) if series else history_counts(_history(history))
            metrics, _ = rolling_origin(count_panel(counts, gaps=gaps), p.demand, p.backtest)
        except (CountTableError, NotEnoughHistory) as exc:
            raise typer.BadParameter(str(exc)) from exc
        _print(metrics)

    @app.command()
    def promote(
        model: Annotated[str, typer.Argument(help=MODELS_HELP)],
        version: Annotated[str | None, typer.Option(help="version to consider (default: the latest)")] = None,
        history: Annotated[Path | None, typer.Option(help="history (default: the one it was trained on)")] = None,
        tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI")] = None,
        params: Annotated[Path | None, typer.Option(help="TOML/JSON with a [promotion] table of margins")] = None,
    ) -> None:
        """Move @champion to a version only if it beats champion and baseline and behaves; else @challenger."""
        from models.registry import ChampionError
        from training.promote import promote as run_promote

        try:
            d = run_promote(model, _uri(tracking_uri), version, str(history) if history else None,
                            _params(params))
        except (LookupError, ValueError, ChampionError) as exc:
            raise typer.BadParameter(str(exc)) from exc
        typer.echo(d.summary())

    @app.command()
    def forecast(
        series: Annotated[Path, typer.Option(help="CSV or Parquet with columns series_id,date,count")],
        horizon: Annotated[int, typer.Option(help="days ahead, 1-14")] = 14,
        as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
        gaps: Annotated[str, typer.Option(help="missing dates are 'missing' (unknown) or 'zero'")] = "missing",
        coverage: Annotated[float, typer.Option(help="nominal coverage of the intervals")] = 0.8,
        params: Annotated[Path | None, typer.Option(help="TOML or JSON file of training parameters")] = None,
        basis: Annotated[str, typer.Option(
            help="'logged': the counts the record will show, on the days it shows them; 'occurring': "
                 "the requests as they will arise each day (a weekly logging batch spread over its days)")] = "logged",
    ) -> None:
        """Forecast any daily count table with intervals, plus a rolling-origin backtest vs seasonal naive."""
        from dataclasses import replace

        from features.demand import CountTableError
        from training.forecast_table import forecast_table

        if not 1 <= horizon <= 14:
            raise typer.BadParameter(f"--horizon must be 1..14, got {horizon}")
        from models.demand import BASES

        if basis not in BASES:
            raise typer.BadParameter(f"--basis must be one of {', '.join(BASES)}, got {basis!r}")
        p = _params(params)
        try:
            demand_params = replace(p.demand, coverage=coverage)
            out = forecast_table(_read_series(series), horizon, demand_params, p.backtest, gaps=gaps, basis=basis)
        except (CountTableError, ValueError) as exc:
            raise typer.BadParameter(str(exc)) from exc
        if as_json:
            _print(out)
        else:
            import pandas as pd

            typer.echo(f"method: {out['method']}")
            typer.echo(pd.DataFrame(out["forecasts"]).to_string(index=False))
            typer.echo(json.dumps(out["backtest"], indent=2, default=str))

    @app.command("demo-train")
    def demo_train(
        history: Annotated[Path, typer.Option(help="twin history directory")],
        workdir: Annotated[Path, typer.Option(help="writes mlflow.db, mlartifacts/, online.db here")],
        params: Annotated[Path | None, typer.Option(help="TOML or JSON file of training parameters")] = None,
        features: Annotated[Path | None, typer.Option(help="feature table folder (`twincare features --out`) to reuse when it was built from this history")] = None,
        reference: Annotated[str | None, typer.Option(help=REFERENCE_HELP)] = None,
    ) -> None:
        """Train and promote every registered model into WORKDIR, and materialise the online store."""
        from training.demo import demo_train as run_demo

        out = run_demo(_history(history), workdir, _params(params), echo=typer.echo, features_dir=features,
                       reference=reference)
        _print(out)
        for name, v in out.items():
            kind = (v.get("champion") or {}).get("kind") if isinstance(v, dict) else None
            if isinstance(v, dict) and v.get("promoted") is False and kind == "baseline":
                typer.echo(f"note: {name}'s trained model failed its gate; its baseline serves "
                           f"(v{v['champion']['version']})", err=True)
            elif isinstance(v, dict) and v.get("promoted") is False and kind == "reference":
                typer.echo(f"note: {name}: the reference community's model serves (v{v['champion']['version']}); "
                           "the model trained here did not beat it", err=True)
        failed = [name for name, v in out.items() if isinstance(v, dict) and v.get("promoted") is False
                  and (v.get("champion") or {}).get("kind") not in ("baseline", "reference")]
        if failed:
            for name in failed:
                why = "; ".join(map(str, out[name].get("reasons") or [])) or "see the gate report above"
                typer.echo(f"error: {name} failed its promotion gate: {why}", err=True)
            typer.echo(f"error: no new champion for {', '.join(failed)}; the service needs one per model", err=True)
            raise typer.Exit(1)
