"""The `twincare` command: simulate, calibrate, ingest, build features, train, promote, monitor, serve.

Each group of commands lives in its own module and registers itself here.
"""

from __future__ import annotations

import typer

from training import (
    cmd_alerts,
    cmd_features,
    cmd_ingest,
    cmd_models,
    cmd_monitor,
    cmd_serve,
    cmd_twin,
    cmd_whatif,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.splitlines()[0])

for _module in (cmd_twin, cmd_ingest, cmd_features, cmd_models, cmd_monitor, cmd_serve, cmd_alerts, cmd_whatif):
    _module.register(app)
