"""`twincare features` and `twincare materialise` on the small twin."""

from __future__ import annotations

import json
import re

import pandas as pd
from typer.testing import CliRunner

from features.online import OnlineStore
from training.cli import app


def test_features_and_materialise_commands(small_twin, tmp_path):
    runner = CliRunner()
    out = tmp_path / "features"
    res = runner.invoke(app, ["features", "--history", str(small_twin), "--as-of", "2024-06-03,2024-07-01",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_parquet(out / "features.parquet")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["as_of"] == ["2024-06-03", "2024-07-01"] and manifest["rows"] == len(table)

    online = tmp_path / "online.db"
    res = runner.invoke(app, ["materialise", "--history", str(small_twin), "--online", str(online),
                              "--as-of", "2024-07-01"])
    assert res.exit_code == 0, res.output
    store = OnlineStore(online)
    ids = list(table["resident_id"].unique()[:3])
    offline = table[table["as_of_date"] == "2024-07-01"].set_index("resident_id").loc[ids].reset_index()
    pd.testing.assert_frame_equal(store.get(ids), offline, check_dtype=False)


def _plain(output: str) -> str:
    """The message as a reader sees it: without the error panel's frame and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def test_bad_arguments_say_what_was_wrong(small_twin, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["features", "--history", str(small_twin), "--as-of", "monthly", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "monthly" in _plain(res.output)
    res = runner.invoke(app, ["features", "--history", str(tmp_path), "--out", str(tmp_path)])
    assert res.exit_code != 0 and "not a twin history" in _plain(res.output)
