"""The cause reader: it learns which planted cause dominates from a model's inputs, travels as one
JSON file, and a file that is not the one for this model and its inputs is refused by name."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from models.causes import READER_BOOSTER, CauseReader, CauseReaderError, fit_cause_reader

NAMES = ("falls_365d", "gait_speed", "meds", "noise")
CAUSES = ("previous_fall", "gait_balance", "polypharmacy", "frailty")


def _rows(n: int, seed: int) -> pd.DataFrame:
    """Residents whose dominant cause is whichever of three measured terms is largest; the first
    feature also rises with the second cause (falls are partly the mark of poor gait), so the
    feature with the largest value is not always the cause."""
    g = np.random.default_rng(seed)
    gait_term, meds = g.gamma(2, 1, n), g.integers(0, 14, n).astype(float)
    falls = g.poisson(0.6 * gait_term + g.gamma(1, 1, n))
    terms = np.stack([0.8 * falls - 0.5 * gait_term, gait_term, np.where(meds >= 10, 2.5, 0.0)], axis=1)
    frame = pd.DataFrame({"falls_365d": falls.astype(float), "gait_speed": 1.2 - 0.1 * gait_term, "meds": meds,
                          "noise": g.normal(size=n)})
    frame.loc[g.random(n) < 0.1, "gait_speed"] = np.nan  # unknown values are normal
    frame["cause"] = np.asarray(CAUSES[:3], dtype=object)[terms.argmax(axis=1)]
    return frame


@pytest.fixture(scope="module")
def reader() -> CauseReader:
    r = fit_cause_reader("fall_risk", _rows(6000, 1), NAMES, CAUSES, valid=_rows(1500, 2),
                         params=replace(READER_BOOSTER, num_trees=120, num_threads=1), trained_on={"twin_id": "t-1"})
    assert r is not None
    return r


def test_the_reader_names_the_dominant_cause_of_residents_it_has_not_seen(reader):
    test = _rows(3000, 3)
    named, p = reader.likely(test[list(NAMES)].to_numpy(float))
    right = np.mean(named == test["cause"].to_numpy())
    common = test["cause"].value_counts(normalize=True).iloc[0]
    assert right > 0.9 and right > common + 0.3
    assert ((p > 1 / 3) & (p <= 1)).all()
    # only the causes it saw: nobody here is frail
    assert reader.causes == CAUSES[:3] and reader.trained_on["rows"] == 6000
    assert set(reader.trained_on["cause_shares"]) == set(CAUSES[:3]) and reader.trained_on["twin_id"] == "t-1"


def test_a_stored_reader_reads_back_the_same(reader):
    X = _rows(200, 4)[list(NAMES)].to_numpy(float)
    back = CauseReader.from_json(reader.to_json(), model="fall_risk", feature_names=NAMES, causes=CAUSES)
    np.testing.assert_array_equal(back.probabilities(X), reader.probabilities(X))
    assert back.causes == reader.causes and back.trained_on == reader.trained_on


@pytest.mark.parametrize(("change", "message"), [
    (lambda text: text[: len(text) // 2], "is not JSON"),
    (lambda text: "[1, 2]", "holds no cause reader"),
    (lambda text: text.replace('"model": "fall_risk"', '"model": "isolation"'), "reads causes for 'isolation', not 'fall_risk'"),
    (lambda text: text.replace('"format": 1', '"format": 9'), "has format 9"),
    (lambda text: text.replace('"noise"', '"other"'), "reads other inputs"),
    (lambda text: text.replace('"polypharmacy"]', '"bereavement"]'), "names causes fall_risk does not measure: bereavement"),
    (lambda text: text.replace("max_feature_idx=3", "max_feature_idx=5"), "its booster cannot be read"),
])
def test_a_reader_file_that_is_not_this_models_is_refused_by_name(reader, change, message):
    with pytest.raises(CauseReaderError, match=message) as caught:
        CauseReader.from_json(change(reader.to_json()), model="fall_risk", feature_names=NAMES, causes=CAUSES,
                              where="fall_risk v3: cause_reader.json")
    assert "cause_reader.json" in str(caught.value)


def test_rows_with_a_single_cause_teach_no_reader():
    rows = _rows(500, 5)
    rows["cause"] = "previous_fall"
    assert fit_cause_reader("fall_risk", rows, NAMES, CAUSES) is None
