"""`python -m serving serve|score`: start the service, or run the nightly scoring batch."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run `bentoml serve serving.service:TwinCare`")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)
    score = sub.add_parser("score", help="score every resident, store scores, open tasks")
    score.add_argument("--all", action="store_true", required=True, help="every resident in the online store")
    score.add_argument("--no-act", action="store_true", help="store scores but open no tasks")
    score.add_argument("--past-weeks", type=int, default=0,
                       help="first score the N weeks before too (trends from the first night)")
    args = parser.parse_args(argv)

    from serving.config import ConfigError, ServingConfig

    try:
        config = ServingConfig.from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from models.registry import ChampionError
    from serving.runtime import StartupError

    if args.command == "serve":
        from serving.runtime import preflight

        try:  # refuse here, with the reason, rather than leave a server that never gets ready
            preflight(config)
        except (ChampionError, StartupError) as exc:
            print(f"error: TwinCare cannot start: {exc}", file=sys.stderr)
            return 1
        cmd = [sys.executable, "-m", "bentoml", "serve", "serving.service:TwinCare",
               "--host", args.host, "--port", str(args.port)]
        env = {"BENTOML_DO_NOT_TRACK": "True", **os.environ, **config.as_env()}
        print(f"TwinCare on http://{args.host}:{args.port}/  (API docs: /docs, OpenAPI: /docs.json)", flush=True)
        os.execvpe(cmd[0], cmd, env)  # pragma: no cover - replaces the process

    from serving.batch import run

    try:
        report = run(config, act=not args.no_act, past_weeks=args.past_weeks)
    except (ChampionError, StartupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_dict(), indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover - command-line entry
    raise SystemExit(main())
