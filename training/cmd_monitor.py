"""`twincare` commands for keeping models fit: monitor, retrain, model-card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from training.cmd_models import MODELS_HELP, REFERENCE_HELP, _history, _params, _print, _uri


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `twincare` app."""

    @app.command()
    def monitor(
        history: Annotated[Path | None, typer.Option(help="history to monitor (default: the one the champions were trained on)")] = None,
        tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI")] = None,
        as_of: Annotated[str | None, typer.Option(help="judge the history as known on this day (default: all of it)")] = None,
        current_days: Annotated[int, typer.Option(help="the latest days compared with the training window")] = 14,
        out: Annotated[Path | None, typer.Option(help="also write monitor.html and monitor.json here")] = None,
        log: Annotated[bool, typer.Option(help="log the report and summary to MLflow beside the model's runs")] = True,
    ) -> None:
        """Drift, label-free and realised performance and forecast error of every champion; a verdict
        per model (ok / watch / retrain) with its reasons. Exit code 0 whatever the verdicts."""
        from training.monitor import MonitorConfig
        from training.monitor import monitor as run_monitor
        from training.monitor_report import log_monitor, write_report

        if current_days < 7:
            raise typer.BadParameter(f"--current-days must be at least 7, got {current_days}")
        uri = _uri(tracking_uri)
        try:
            result = run_monitor(uri, str(history) if history else None, as_of,
                                 MonitorConfig(current_days=current_days))
        except (FileNotFoundError, ValueError) as exc:
            raise typer.BadParameter(str(exc)) from exc
        summary = result.summary()
        if out is not None:
            summary["files"] = {k: str(v) for k, v in write_report(result, out).items()}
        if log:
            summary["mlflow_runs"] = log_monitor(result, uri)
        for m in summary["models"].values():
            m.get("feature_drift", {}).pop("per_feature", None)  # in the report, not on the terminal
        _print(summary)

    @app.command()
    def retrain(
        history: Annotated[Path | None, typer.Option(help="twin history directory (default $TWINCARE_HOME/history)")] = None,
        tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI")] = None,
        params: Annotated[Path | None, typer.Option(help="TOML or JSON file of training parameters")] = None,
        model: Annotated[list[str] | None, typer.Option(help=f"only these models ({MODELS_HELP})")] = None,
        reference: Annotated[str | None, typer.Option(help=REFERENCE_HELP)] = None,
        features: Annotated[Path | None, typer.Option(help="feature table folder (`twincare features --out`) to reuse when it was built from this history")] = None,
    ) -> None:
        """Train every registered model, gate it and move @champion to it if it earns it (with
        `--reference`, another community's champion is a candidate too); a running service swaps
        to the new champion by itself."""
        from training.retrain import retrain as run_retrain
        from training.train import model_name

        try:
            names = [model_name(m) for m in model] if model else None
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        out = run_retrain(_history(history), _uri(tracking_uri), _params(params), names, echo=typer.echo,
                          reference=reference, features_dir=features)
        _print({n: {k: v for k, v in o.items() if k in ("version", "promoted", "previous_champion", "reasons",
                                                         "passing", "reference_refused", "champion")}
                for n, o in out.items()})

    @app.command("model-card")
    def model_card(
        model: Annotated[str | None, typer.Argument(help=f"{MODELS_HELP} (default: every model)")] = None,
        version: Annotated[str | None, typer.Option(help="version (default: @champion)")] = None,
        all_versions: Annotated[bool, typer.Option("--all", help="refresh the card of every registered version")] = False,
        tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI")] = None,
        html: Annotated[bool, typer.Option("--html", help="print HTML instead of Markdown")] = False,
    ) -> None:
        """Write (and log with the version) the model card; prints it."""
        from models.registry import get_spec
        from training.model_card import log_all_cards, log_model_card
        from training.tracking import CHAMPION, alias_version

        uri = _uri(tracking_uri)
        if all_versions:
            try:
                names = [get_spec(model).name] if model else None
            except KeyError as exc:
                raise typer.BadParameter(str(exc.args[0])) from exc
            _print(log_all_cards(uri, names))
            return
        if model is None:
            raise typer.BadParameter("name a model, or pass --all")
        try:
            name = get_spec(model).name
        except KeyError as exc:
            raise typer.BadParameter(str(exc.args[0])) from exc
        version = version or alias_version(uri, name, CHAMPION)
        if version is None:
            raise typer.BadParameter(f"{name} has no @champion; pass --version")
        card = log_model_card(name, version, uri)
        typer.echo(card["html" if html else "markdown"])

    @app.command()
    def scenario(
        name: Annotated[str, typer.Argument(help="gait_sensor_offset, step_firmware, new_grid or request_wave")],
        history: Annotated[Path, typer.Option(help="the history to plant the drift in (left unchanged)")],
        start: Annotated[str, typer.Option(help="first day of the drift (ISO date)")],
        out: Annotated[Path, typer.Option(help="where the changed copy is written")],
        seed: Annotated[int, typer.Option(help="seed of the drift's own randomness")] = 0,
    ) -> None:
        """Write a copy of a twin history with a planted drift from START on (for the monitor)."""
        from twin.scenarios import SCENARIOS, ScenarioKnobs, apply_scenario

        if name not in SCENARIOS:
            raise typer.BadParameter(f"unknown scenario {name!r}; scenarios are {', '.join(SCENARIOS)}")
        path = apply_scenario(_history(history), out, name, start, ScenarioKnobs(seed=seed))
        typer.echo(f"wrote {path} ({name} from {start})")
