"""Nightly scoring: every resident in the online store, with explanations, stored and acted on.

Residents are scored in chunks; each chunk makes one `predict(pred_contrib=True)` call per model.
Scores are added to the store's score history (earlier nights are kept, for trends), high bands
open tasks through the actions policy, overdue tasks expire, and visits of completed tasks are
written back to the twin history.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pandas as pd

from serving.config import ServingConfig
from serving.runtime import Runtime, build_runtime
from serving.scoring import score_records
from serving.store import SYSTEM

log = logging.getLogger("twincare.batch")


@dataclass
class BatchReport:
    residents: int
    scores_stored: int
    tasks_opened: int
    tasks_already_open: int
    tasks_expired: int
    visits_written: int
    model_versions: dict[str, str]
    model_kinds: dict[str, str]  # local, reference or baseline, per risk model
    scoring_seconds: float  # predict + contributions + worded reasons
    total_seconds: float
    past_scores_stored: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def score_all(rt: Runtime, *, chunk_size: int | None = None, act: bool = True) -> BatchReport:
    """Score every resident of the online store and store the scores (and open tasks)."""
    t0 = time.perf_counter()
    size = chunk_size or rt.config.batch_chunk
    rt.features.refresh()
    ids = list(rt.features.ids)
    scored_at = datetime.now(UTC).replace(tzinfo=None)
    stored = opened = already = 0
    scoring = 0.0
    for k in range(0, len(ids), size):
        t1 = time.perf_counter()
        chunk = rt.score_residents(ids[k : k + size], rt.risk_models, rt.config.top_reasons)
        records = score_records(chunk, scored_at)
        scoring += time.perf_counter() - t1
        stored += rt.store.record_scores(records)
        if act:
            for actions in rt.act(chunk, SYSTEM).values():
                opened += sum(a["status"] == "opened" for a in actions)
                already += sum(a["status"] == "already_open" for a in actions)
    expired = len(rt.store.expire_overdue(actor=SYSTEM)) if act else 0
    try:
        visits = rt.store.flush_visits(rt.history)
    except Exception:  # pending visits stay pending; the next run writes them
        log.exception("visit write-back deferred")
        visits = 0
    return BatchReport(
        residents=len(ids),
        scores_stored=stored,
        tasks_opened=opened,
        tasks_already_open=already,
        tasks_expired=expired,
        visits_written=visits,
        model_versions=rt.model_versions,
        model_kinds=rt.model_kinds,
        scoring_seconds=round(scoring, 4),
        total_seconds=round(time.perf_counter() - t0, 4),
    )


def score_past(rt: Runtime, weeks: int, *, chunk_size: int | None = None) -> int:
    """Score every resident as of each of the `weeks` weeks before the online store's as-of date
    (features rebuilt from the history as it stood then), so a first night already has trends.
    Stores the scores only (no task is opened for the past); returns the number of new rows."""
    from features.pipeline import build_features, load_history

    if weeks < 1 or rt.online.as_of is None:
        return 0
    latest = pd.Timestamp(rt.online.as_of).normalize()
    dates = [latest - pd.Timedelta(weeks=k) for k in range(weeks, 0, -1)]
    history = load_history(rt.config.history_dir, end=latest)
    frame = build_features(history, dates, threads=1)
    frame = frame[frame["resident_id"].isin(set(rt.features.ids))]
    size = chunk_size or rt.config.batch_chunk
    scored_at = datetime.now(UTC).replace(tzinfo=None)
    stored = 0
    for k in range(0, len(frame), size):
        chunk = rt.score(frame.iloc[k : k + size], rt.risk_models, rt.config.top_reasons)
        stored += rt.store.record_scores(score_records(chunk, scored_at))
    return stored


def run(config: ServingConfig, *, act: bool = True, past_weeks: int = 0) -> BatchReport:
    """Build the runtime (refusing on a bad champion, like the service) and score everyone
    (after the `past_weeks` weeks before, when asked)."""
    rt = build_runtime(config, need_keys=False)
    try:
        past = score_past(rt, past_weeks)
        report = score_all(rt, act=act)
        report.past_scores_stored = past
        return report
    finally:
        rt.close()
