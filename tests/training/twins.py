"""A twin big enough for the risk models to learn fall history (built once per test run)."""

from __future__ import annotations

from pathlib import Path

MODEL_TWIN = {"residents": 800, "days": 420, "seed": 5, "start": "2024-01-01"}


def model_twin_dir(tmp_path_factory) -> Path:
    """Simulate (or reuse) the model twin under the session's base temp folder."""
    from twin.simulate import simulate

    out = tmp_path_factory.getbasetemp() / "model_twin" / "history"
    if (out / "manifest.json").exists():
        return out
    return simulate(out=out, **MODEL_TWIN)
