"""The default twin (2,000 residents x 730 days, seed 7) matches published figures."""

from __future__ import annotations

import json

import pytest

from twin.calibrate import BANDS, calibrate, markdown_table
from twin.simulate import simulate


@pytest.fixture(scope="module")
def default_twin(tmp_path_factory):
    return simulate(2000, 730, 7, tmp_path_factory.mktemp("default_twin") / "history")


@pytest.mark.slow
def test_default_twin_lands_inside_every_published_band(default_twin):
    report = calibrate(default_twin)
    assert set(report) == set(BANDS)
    outside = {k: (m["measured"], m["band"]) for k, m in report.items() if not m["ok"]}
    assert not outside, "outside their bands:\n" + markdown_table(report)
    # The polypharmacy gradient must rise group by group, not only end to end.
    rates = report["polypharmacy_ratio_10plus"]["injurious_fall_rate"]
    assert rates["0-4"] < rates["5-9"] < rates["10+"]


def test_report_is_machine_readable_and_names_its_sources(small_twin):
    report = calibrate(small_twin)
    json.dumps(report)
    for name, m in report.items():
        assert set(m) >= {"measured", "band", "source", "ok"}, name
        lo, hi = m["band"]
        assert lo < hi and m["source"]


def test_calibrate_refuses_a_folder_that_is_not_a_history(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        calibrate(tmp_path)


def test_calibrate_command_prints_json_and_exit_code(small_twin):
    from typer.testing import CliRunner

    from training.cli import app

    result = CliRunner().invoke(app, ["calibrate", str(small_twin), "--json"])
    report = json.loads(result.stdout)
    assert set(report) == set(BANDS)
    assert result.exit_code == (0 if all(m["ok"] for m in report.values()) else 1)
