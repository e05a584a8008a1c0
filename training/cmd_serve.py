"""`twincare` commands for the serve step: start the service, run the nightly scoring.

Both run `python -m serving ...` in a child process; training never imports serving.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer


def _env(workdir: Path) -> dict[str, str]:
    if not workdir.is_dir():
        raise typer.BadParameter(f"--workdir {workdir} is not a directory; run `make demo` or `twincare demo-train` first")
    env = dict(os.environ)
    env["TWINCARE_HOME"] = str(workdir.resolve())
    return env


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `twincare` app."""

    @app.command()
    def serve(
        workdir: Annotated[Path, typer.Option(help="TWINCARE_HOME: mlflow.db, online.db, history/, api_keys.json")] = Path("demo-data"),
        host: str = typer.Option("127.0.0.1", help="address to listen on"),
        port: int = typer.Option(3000, help="port to listen on"),
    ) -> None:
        """Serve the @champion models, the time-bank routes and the care-manager page."""
        env = _env(workdir)
        keys = workdir / "api_keys.json"
        if not keys.exists():
            subprocess.run([sys.executable, "-m", "serving.auth", "create-keys", str(keys)], env=env, check=True)
        else:
            typer.echo(
                f"API keys: {keys} holds only their hashes; to mint new demo keys run "
                f"`python -m serving.auth create-keys {keys} --overwrite`"
            )
        from models.registry import default_tracking_uri

        uri = default_tracking_uri(workdir)
        typer.echo(
            f"web page: http://{host}:{port}/   API docs: http://{host}:{port}/docs\n"
            f"MLflow UI on the same store: mlflow ui --backend-store-uri {uri} --port 5000"
        )
        cmd = [sys.executable, "-m", "serving", "serve", "--host", host, "--port", str(port)]
        sys.stdout.flush()
        os.execvpe(cmd[0], cmd, env)  # the server's supervisor takes this pid, so signals reach it

    @app.command()
    def score(
        all_residents: Annotated[bool, typer.Option("--all", help="score every resident in the online store")] = False,
        workdir: Annotated[Path, typer.Option(help="TWINCARE_HOME")] = Path("demo-data"),
        no_act: Annotated[bool, typer.Option("--no-act", help="store scores but open no tasks")] = False,
        past_weeks: Annotated[int, typer.Option(help="first score the N weeks before too (trends from the first night)")] = 0,
    ) -> None:
        """Nightly batch: score every resident with reasons, keep the scores, open tasks."""
        if not all_residents:
            raise typer.BadParameter("pass --all (the batch scores every resident of the online store)")
        cmd = [sys.executable, "-m", "serving", "score", "--all"] + (["--no-act"] if no_act else [])
        cmd += ["--past-weeks", str(past_weeks)] if past_weeks else []
        raise typer.Exit(subprocess.call(cmd, env=_env(workdir)))
