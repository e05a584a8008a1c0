"""The room contracts in pyproject.toml cover every module of the twin that serving must not use."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import twin

ROOT = Path(__file__).resolve().parents[1]
# What serving may use of the twin for write-back (shared/ARCHITECTURE.md), and the raw-event
# ingestion that turns a home gateway's live events into sensor_days exactly as a batch log would.
SERVING_MAY_USE = {"twin.store", "twin.schema", "twin.calendar", "twin.ingest_events", "twin.ingest"}


def _contract(contract_id: str) -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return next(c for c in config["contracts"] if c["id"] == contract_id)


def test_every_twin_module_is_allowed_or_forbidden_to_serving():
    forbidden = set(_contract("serving")["forbidden_modules"])
    modules = {f"twin.{m.name}" for m in pkgutil.iter_modules(twin.__path__)}
    assert modules >= SERVING_MAY_USE
    undecided = modules - SERVING_MAY_USE - forbidden
    assert not undecided, f"add {sorted(undecided)} to the serving contract or to SERVING_MAY_USE"
    assert not (forbidden & SERVING_MAY_USE)
