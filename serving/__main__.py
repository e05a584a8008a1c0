"""`python -m serving serve|score|migrate`: start the service, run the nightly scoring batch, or
bring the time-bank store to the newest schema revision."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run `bentoml serve serving.service:TwinCare` and stop its whole tree on SIGTERM/SIGINT")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)
    score = sub.add_parser("score", help="score every resident, store scores, open tasks")
    score.add_argument("--all", action="store_true", required=True, help="every resident in the online store")
    score.add_argument("--no-act", action="store_true", help="store scores but open no tasks")
    score.add_argument("--past-weeks", type=int, default=0,
                       help="first score the N weeks before too (trends from the first night)")
    migrate = sub.add_parser("migrate", help="upgrade the time-bank store to the newest revision")
    migrate.add_argument("--url", help="store URL (default: TWINCARE_STORE_URL or the SQLite file under TWINCARE_HOME)")
    args = parser.parse_args(argv)

    from serving.config import ConfigError, ServingConfig

    if args.command == "migrate" and args.url:
        return _migrate(args.url)
    try:
        config = ServingConfig.from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        return _migrate(config.store_url)

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
        from serving.supervise import supervise

        return supervise(cmd, env, config.home)

    from serving.batch import run

    try:
        report = run(config, act=not args.no_act, past_weeks=args.past_weeks)
    except (ChampionError, StartupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def _migrate(url: str) -> int:
    """Upgrade the store at `url` and say which revision it was at and is at now."""
    from sqlalchemy.exc import SQLAlchemyError

    from serving.store import migrate, redact_url
    from serving.store.engine import make_engine

    try:
        engine = make_engine(url)
    except (ValueError, SQLAlchemyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = migrate.upgrade(engine)
    except (migrate.SchemaError, SQLAlchemyError) as exc:
        print(f"error: cannot migrate {redact_url(url)}: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if result.adopted:
        before = f"none recorded (tables from before revisions, taken as {migrate.BASELINE})"
    else:
        before = result.before or "none (empty database)"
    print(f"store: {redact_url(url)}")
    print(f"revision before: {before}")
    print(f"revision after: {result.after} (head)" + ("" if result.changed else ", unchanged"))
    return 0


if __name__ == "__main__":  # pragma: no cover - command-line entry
    raise SystemExit(main())
