"""Fixtures shared by every room's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

SMALL_TWIN = {"residents": 300, "days": 300, "seed": 11, "start": "2024-01-01"}


@pytest.fixture(scope="session")
def small_twin(tmp_path_factory) -> Path:
    """A simulated history directory (300 residents x 300 days), built once per test run."""
    from twin.simulate import simulate

    out = tmp_path_factory.mktemp("small_twin") / "history"
    return simulate(out=out, **SMALL_TWIN)
