"""A home's live sensor days folded into the feature vector `/assess` serves, before the night's run.

The online store holds each resident's vector as of the day after the history's last sensor day
(written by `twincare materialise` each night). A home that sends its events live has
`live_sensor_days` rows for the days since (`serving.live`). Once such a day is over on the home's
clock, `LiveVectors.refresh` builds that resident's vector as of the next day with the training
pipeline's own code (`features.pipeline.features_for_partition`) over the resident's recorded
history plus the live rows for the days the history does not have yet (the history's own rows win
for the days it has), and the served features take it over the nightly one until a newer night's
vectors arrive. The vector is therefore the training row the nightly run would write once the same
days reach the history.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

import numpy as np
import pandas as pd

from features.pipeline import COLUMNS, History, features_for_partition
from twin.store import HistoryStore


class LiveVectors:
    """Builds live vectors for residents whose live days passed their nightly as-of date."""

    def __init__(self, history: HistoryStore, live_days: Callable[[str], pd.DataFrame],
                 nightly_as_of: Callable[[str], date | None], install: Callable[[str, date, pd.Series], None]):
        self.history = history
        self.live_days = live_days
        self.nightly_as_of = nightly_as_of
        self.install = install
        self._done: dict[str, date] = {}  # per resident: the home-clock day it was last looked at

    def due(self, resident_id: str, clock: datetime | None) -> date | None:
        """The as-of date a new vector would have (the day after the last day over on the home's
        clock), or None when the served vector is already as new."""
        if clock is None:
            return None
        nightly = self.nightly_as_of(resident_id)
        if nightly is None:
            return None  # not in the online store: nothing is served for this resident
        target = clock.date()  # every day before today is over
        if target <= max(nightly, self._done.get(resident_id, nightly)):
            return None
        return target

    def refresh(self, resident_id: str, clock: datetime | None) -> date | None:
        """Build and install the resident's vector if a live day has ended since; returns its
        as-of date, or None when nothing was due (or no live day is there to add)."""
        target = self.due(resident_id, clock)
        if target is None:
            return None
        live = self.live_days(resident_id)
        built = None
        if not live.empty:
            nightly = pd.Timestamp(self.nightly_as_of(resident_id))
            live = live[(live["date"] >= nightly) & (live["date"] < pd.Timestamp(target))]
        if not live.empty:
            built = (live["date"].max() + pd.Timedelta(days=1)).date()  # the day after the last live day
            self.install(resident_id, built, self.vector(resident_id, built, live))
        self._done[resident_id] = target  # looked at up to here (a failure above is tried again)
        return built

    def vector(self, resident_id: str, as_of: date, live: pd.DataFrame) -> pd.Series:
        """The resident's features as of `as_of` over the history plus `live` sensor_days rows."""
        tables: dict[str, pd.DataFrame | None] = {}
        for table, cols in COLUMNS.items():
            if not self.history.has(table):
                tables[table] = None
                continue
            tables[table] = self.history.read(table, columns=list(cols), residents=[resident_id])
        recorded = tables["sensor_days"]
        live = live[["resident_id", "date", *[c for c in COLUMNS["sensor_days"][2:] if c in live.columns]]]
        if recorded is not None and not recorded.empty:
            live = live[live["date"] > recorded["date"].max()]  # the history's own rows win
            live = live.astype({c: recorded[c].dtype for c in live.columns if c in recorded.columns})
            tables["sensor_days"] = pd.concat([recorded, live], ignore_index=True)
        else:
            tables["sensor_days"] = live.reset_index(drop=True)
        pairs = pd.DataFrame({"resident_id": pd.array([resident_id], dtype="str"),
                              "as_of_date": [pd.Timestamp(as_of)]})
        row = features_for_partition(History(**tables), pairs).iloc[0]
        return row.drop(["resident_id", "as_of_date"])


def live_row(columns: tuple[str, ...], vector: pd.Series) -> np.ndarray:
    """The vector in the served column order (a feature the vector lacks is unknown)."""
    return np.asarray([vector.get(c, np.nan) for c in columns], dtype=np.float64)

