"""Risk-score history: every model's score of every resident at each as-of date, for trends and
the care managers' ranked at-risk list."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from serving.store.errors import InvalidInput
from serving.store.records import ScoreRecord, jsonable
from serving.store.schema import scores_table

_BATCH = 1000


def score_rows(records: Iterable[ScoreRecord], now: datetime) -> list[dict]:
    """The rows to store; a probability outside [0, 1] (or NaN) raises InvalidInput."""
    rows = []
    for r in records:
        if not math.isfinite(r.probability) or not 0.0 <= r.probability <= 1.0:
            raise InvalidInput(f"probability for {r.resident_id}/{r.model} must be in [0, 1], got {r.probability}")
        rows.append(
            {
                "resident_id": r.resident_id,
                "model": r.model,
                "model_version": str(r.model_version),
                "as_of": r.as_of,
                "probability": float(r.probability),
                "band": r.band,
                "reasons": jsonable(list(r.reasons)),
                "missing_data": jsonable(list(r.missing_data)),
                "scored_at": r.scored_at or now,
            }
        )
    return rows


def add(conn: Connection, rows: Sequence[dict]) -> int:
    """Insert score rows; a (resident, model, version, as_of) already stored is kept.
    Returns the number of new rows."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    stmt = (
        dialect_insert(scores_table)
        .on_conflict_do_nothing(index_elements=["resident_id", "model", "model_version", "as_of"])
        .returning(scores_table.c.id)
    )
    return sum(len(conn.execute(stmt, rows[i : i + _BATCH]).all()) for i in range(0, len(rows), _BATCH))


def history(conn: Connection, resident_id: str, model: str | None = None) -> list[ScoreRecord]:
    """Every stored score of a resident, oldest as-of first."""
    q = sa.select(scores_table).where(scores_table.c.resident_id == resident_id)
    if model is not None:
        q = q.where(scores_table.c.model == model)
    q = q.order_by(scores_table.c.as_of, scores_table.c.scored_at, scores_table.c.id)
    return [_score(r) for r in conn.execute(q)]


def latest(conn: Connection, model: str, *, band: str | None = None, limit: int = 100) -> list[ScoreRecord]:
    """The most recently recorded score of each resident for `model`, highest probability first."""
    newest = (
        sa.select(sa.func.max(scores_table.c.id))
        .where(scores_table.c.model == model)
        .group_by(scores_table.c.resident_id)
    )
    q = sa.select(scores_table).where(scores_table.c.id.in_(newest))
    if band is not None:
        q = q.where(scores_table.c.band == band)
    q = q.order_by(scores_table.c.probability.desc(), scores_table.c.resident_id).limit(limit)
    return [_score(r) for r in conn.execute(q)]


def _score(r: Any) -> ScoreRecord:
    return ScoreRecord(
        r.resident_id, r.model, r.model_version, r.as_of, r.probability, r.band,
        list(r.reasons or []), r.scored_at, list(r.missing_data or []),
    )
