"""The service's composition root: everything a request needs, built once from the config.

`build_runtime(config)` loads every registered model's @champion (refusing a missing or
mismatched one), opens the online store, the time-bank store, the history the visits are written
back to and the key ring, and returns one `Runtime`. The HTTP layer (`serving.api`,
`serving.service`) and the nightly batch (`serving.batch`) both take that object; nothing here
knows about HTTP.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.online import OnlineStore, OnlineStoreError
from models.base import kind_of
from models.policy import NEUTRAL_SCARCITY
from models.registry import ChampionError, alias_target, get_spec, load_card, load_champion
from models.spec import ForecastSpec, RiskSpec
from serving.actions import DEFAULT_POLICY, Scarcity, Verdict, act_on_assessments, grid_scarcity
from serving.auth import VOLUNTEER_SECRET, KeyRing, Principal, SessionBook
from serving.config import ServingConfig
from serving.live import LiveAlerts
from serving.live_features import LiveVectors, live_row
from serving.scoring import Champion, ChunkScores, score_chunk, score_matrix
from serving.store import ScoreRecord, TimeBankStore, audit_table, redact_url
from serving.volunteers import read_secret
from serving.webhook import WebhookConfig, WebhookDeliverer
from twin.ingest_events import read_sensor_map
from twin.store import HistoryStore

log = logging.getLogger("twincare.serving")


class StartupError(RuntimeError):
    """Something the service needs (besides a model) is missing; the message says what."""


def load_champions(names: Sequence[str], tracking_uri: str) -> dict[str, Champion]:
    """Load the @champion of every named model.

    Raises ChampionError naming the model, version and what is wrong (no @champion alias,
    unreadable artifacts, feature schema hash different from the code's).
    """
    return {name: Champion(get_spec(name), load_champion(name, tracking_uri)) for name in names}


# ---------------------------------------------------------------------------------------------
# Audit trail: reads of resident data are recorded off the request path
# ---------------------------------------------------------------------------------------------


class AuditTrail:
    """Audit rows kept in memory and written by one background thread, so a read never waits on
    a commit nor wakes a thread.

    A request appends its row to a buffer (no signal); the writer wakes every `interval` seconds,
    or as soon as `batch` rows wait, and writes what waits in one transaction (one disk sync, not
    one per read). A wake-up per request made each request hand the interpreter lock to the
    writer mid-response. Writes to the store audit themselves inside their own transaction; this
    is for reads.
    """

    def __init__(self, store: TimeBankStore, *, interval: float = 0.5, batch: int = 500):
        self._store = store
        self._interval = interval
        self._batch = batch
        self._rows: list[tuple] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._written = threading.Condition(self._lock)
        self._taken = 0  # rows handed to the writer so far
        self._done = 0  # rows the writer has finished with (written or reported)
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="audit-trail", daemon=True)
        self._thread.start()

    def record(self, principal: Principal | None, action: str, resident_id: str | None = None, **detail: Any) -> None:
        row = (datetime.now(UTC).replace(tzinfo=None), principal, action, resident_id, detail)
        with self._lock:
            self._rows.append(row)
            full = len(self._rows) >= self._batch
        if full:
            self._wake.set()

    def _write(self, items: list[tuple]) -> None:
        rows = [
            {
                "at": at,
                "actor": str(getattr(p, "name", "system")),
                "role": str(getattr(p, "role", "system")),
                "action": action,
                "resident_id": resident_id,
                "detail": detail,
            }
            for at, p, action, resident_id, detail in items
        ]
        try:
            with self._store.engine.begin() as conn:
                conn.execute(audit_table.insert(), rows)
        except Exception:  # an audit failure must not take the service down
            log.exception("could not record %d audit rows", len(rows))

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._lock:
                rows, self._rows = self._rows, []
                self._taken += len(rows)
                closing = self._closing
            if rows:
                self._write(rows)
            with self._lock:
                self._done += len(rows)
                self._written.notify_all()
            if closing:
                return

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every row recorded so far is written."""
        with self._lock:
            target = self._taken + len(self._rows)
            self._wake.set()
            self._written.wait_for(lambda: self._done >= target or not self._thread.is_alive(), timeout)

    def close(self) -> None:
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(timeout=30)


# ---------------------------------------------------------------------------------------------
# Online features, held in memory and reloaded when the store file changes
# ---------------------------------------------------------------------------------------------


class OnlineFeatures:
    """Every resident's latest vector from the online store, kept in memory for fast lookups.

    The store is rewritten by `twincare materialise`; a lookup notices a change of the store's
    files (modification time and size) and reloads, so a new night's vectors are served at once.
    """

    def __init__(self, online: OnlineStore):
        self.online = online
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self.fault: str | None = None  # why the last reload failed (the previous vectors are served)
        self._live: dict[str, tuple[date, np.ndarray]] = {}  # vectors built from live days (newer as-of)
        self._load()

    def _file_stamp(self) -> tuple:
        stamp = []
        for suffix in ("", "-wal"):
            p = Path(str(self.online.path) + suffix)
            try:
                st = p.stat()
                stamp.append((st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                stamp.append(None)
        return tuple(stamp)

    def _load(self) -> None:
        stamp = self._file_stamp()
        frame = self.online.get(self.online.resident_ids())
        pos = [j for j, c in enumerate(frame.columns) if c not in ("resident_id", "as_of_date")]
        self.columns = tuple(frame.columns[j] for j in pos)
        self.values = frame.iloc[:, pos].to_numpy(dtype=np.float64, na_value=np.nan)
        self.ids = frame["resident_id"].tolist()
        self.as_of = [None if pd.isna(d) else d.date() for d in pd.DatetimeIndex(frame["as_of_date"])]
        self.row_of = {r: i for i, r in enumerate(self.ids)}
        self._stamp = stamp

    @property
    def stamp(self) -> tuple | None:
        """Identifies the loaded state of the store (changes when the store is rewritten)."""
        return self._stamp

    def refresh(self) -> None:
        if self._file_stamp() != self._stamp:
            with self._lock:
                if self._file_stamp() != self._stamp:
                    try:
                        self._load()
                        self.fault = None
                    except (OnlineStoreError, sqlite3.Error, ValueError, OSError) as exc:
                        # keep serving the last good vectors; /readyz reports the fault
                        self._stamp = self._file_stamp()
                        self.fault = f"online store {self.online.path} could not be reloaded: {exc}"
                        log.error("%s", self.fault)

    def nightly_as_of(self, resident_id: str) -> date | None:
        """The as-of date of the resident's vector in the online store (None: not there)."""
        i = self.row_of.get(resident_id)
        return None if i is None else self.as_of[i]

    def set_live(self, resident_id: str, as_of: date, row: np.ndarray) -> None:
        """Serve `row` (in `columns` order) for the resident while it is newer than the store's."""
        self._live[resident_id] = (as_of, row)

    def lookup(self, resident_ids: Sequence[str]) -> tuple[list[str], list[date | None], np.ndarray]:
        """(ids, as-of dates, feature matrix) of the residents asked; KeyError names unknown ids.

        A vector built from a home's live days (`set_live`) is served instead of the store's while
        its as-of date is the newer one."""
        self.refresh()
        row_of = self.row_of
        unknown = [r for r in resident_ids if r not in row_of]
        if unknown:
            shown = ", ".join(unknown[:20]) + (" ..." if len(unknown) > 20 else "")
            raise KeyError(f"unknown resident id(s) in the online store: {shown}")
        rows = [row_of[r] for r in resident_ids]
        as_of, values = [self.as_of[i] for i in rows], self.values[rows]
        if self._live:
            for k, r in enumerate(resident_ids):
                live = self._live.get(r)
                if live is not None and (as_of[k] is None or live[0] > as_of[k]) and len(live[1]) == values.shape[1]:
                    as_of[k] = live[0]
                    values[k] = live[1]
        return list(resident_ids), as_of, values


# ---------------------------------------------------------------------------------------------
# Champion watcher: a moved @champion alias is served without a restart
# ---------------------------------------------------------------------------------------------


class ChampionWatcher:
    """Asks the registry every `interval` seconds where each served model's @champion points.

    When it moved, the new version is loaded and checked against the code's feature schema (the
    same checks as at start-up) off the request path, then swapped in with one assignment, so a
    request is scored wholly by the old or wholly by the new version and none fails. A version
    that fails its checks is not served; the old one stays and readiness says why.
    """

    def __init__(self, runtime: Runtime, interval: float):
        self.runtime = runtime
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)

    def check(self) -> list[str]:
        """Swap every model whose @champion moved; returns the models swapped."""
        rt = self.runtime
        swapped = []
        for name, current in list(rt.champions.items()):
            try:
                target = alias_target(name, rt.config.tracking_uri)
            except Exception as exc:  # the registry being unreachable must not stop serving
                rt.swap_errors[name] = f"registry unreachable: {exc}"
                continue
            if rt.swap_errors.get(name, "").startswith("registry unreachable"):
                rt.swap_errors.pop(name, None)
            if target is None or target == current.version or rt.swap_errors.get(name, "").startswith(f"v{target}:"):
                continue
            try:
                loaded = load_champion(name, rt.config.tracking_uri)
            except ChampionError as exc:
                rt.swap_errors[name] = f"v{target}: {exc}"
                log.error("not swapping %s to v%s: %s", name, target, exc)
                continue
            rt.swap_champion(Champion(current.spec, loaded))
            swapped.append(name)
        return swapped

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # keep watching whatever one check did
                log.exception("champion check failed")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
# Visit write-back, batched
# ---------------------------------------------------------------------------------------------


class VisitWriteBack:
    """Writes completed-task visits to the twin history in batches: at most one Parquet part per
    `interval_s` (and one at shutdown), not one per completed task. A failing flush is retried
    at the next interval; its reason is kept for /readyz."""

    def __init__(self, store: TimeBankStore, history: HistoryStore, interval_s: float):
        self._store, self._history, self._interval = store, history, interval_s
        self._due = threading.Event()
        self._stop = threading.Event()
        self.fault: str | None = None
        self._thread = threading.Thread(target=self._run, name="visit-write-back", daemon=True)
        self._thread.start()

    def due(self) -> None:
        self._due.set()

    def flush(self) -> int:
        try:
            n = self._store.flush_visits(self._history)
            self.fault = None
            return n
        except Exception as exc:  # the visits stay pending in the store; the next flush retries
            self.fault = f"visit write-back to {self._history.root} failed: {exc}"
            log.error("%s", self.fault)
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self._due.wait(timeout=self._interval)
            if self._stop.wait(self._interval if self._due.is_set() else 0):
                break
            self._due.clear()
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._due.set()
        self._thread.join(timeout=30)
        self.flush()


# ---------------------------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------------------------


@dataclass
class Runtime:
    """Everything a request needs, loaded once at start-up."""

    config: ServingConfig
    champions: dict[str, Champion]
    online: OnlineStore
    features: OnlineFeatures
    store: TimeBankStore
    keyring: KeyRing
    history: HistoryStore
    grid_of: dict[str, str]
    scarcity: dict[str, Scarcity]
    audit: AuditTrail
    webhook: WebhookDeliverer | None = None
    sessions: SessionBook = field(default_factory=SessionBook)
    volunteer_secret: bytes | None = None
    visit_writer: VisitWriteBack | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    _live_cache: dict[tuple, pd.DataFrame] = field(default_factory=dict)
    _scarcity_stamp: tuple | None = None
    _outlook: tuple[tuple, pd.DataFrame] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    swap_errors: dict[str, str] = field(default_factory=dict)
    swaps: list[dict[str, Any]] = field(default_factory=list)
    on_swap: list[Callable[[dict[str, str]], None]] = field(default_factory=list)
    watcher: ChampionWatcher | None = None
    live: LiveAlerts | None = None  # home gateways' events and alerts (None: no sensor map configured)

    @property
    def model_versions(self) -> dict[str, str]:
        return {name: c.version for name, c in self.champions.items()}

    @property
    def model_kinds(self) -> dict[str, str]:
        """What each served risk model's version is: `local`, `reference` or `baseline`."""
        return {name: kind_of(c.loaded) for name, c in self.champions.items() if isinstance(c.spec, RiskSpec)}

    @property
    def risk_models(self) -> tuple[str, ...]:
        """The served per-resident risk models, in registry order."""
        return tuple(n for n, c in self.champions.items() if isinstance(c.spec, RiskSpec))

    def forecaster(self) -> Champion | None:
        """The served count forecaster (credits' scarcity and /forecast_demand), if any."""
        return next((c for c in self.champions.values() if isinstance(c.spec, ForecastSpec)), None)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Models loaded, the task store reachable, the online vectors and the history readable."""
        store_ok = self.store.ping()
        models_ok = all(m in self.champions for m in self.config.served_models())
        faults = [f for f in (self.features.fault, *self.store.unreadable_visit_parts) if f]
        if self.visit_writer is not None and self.visit_writer.fault:
            faults.append(self.visit_writer.fault)
        try:
            online_as_of = None if self.online.as_of is None else str(self.online.as_of.date())
        except (sqlite3.Error, ValueError) as exc:
            online_as_of, faults = None, [*faults, f"online store {self.online.path}: {exc}"]
        return store_ok and models_ok and not faults, {
            "models": self.model_versions,
            "model_kinds": self.model_kinds,
            "store": "ok" if store_ok else "unreachable",
            "online_as_of": online_as_of,
            "faults": faults,
            "swaps": self.swaps[-5:],
            "not_swapped": dict(self.swap_errors),
        }

    def swap_champion(self, champion: Champion) -> None:
        """Serve `champion` from the next request on (one assignment of a new dict)."""
        with self._lock:
            before = self.champions.get(champion.name)
            self.champions = {**self.champions, champion.name: champion}
            self._live_cache = {}
            if isinstance(champion.spec, ForecastSpec):
                self._scarcity_stamp = None  # credits follow the new forecaster
            self.swap_errors.pop(champion.name, None)
            self.swaps.append({"model": champion.name, "from": before.version if before else None,
                               "to": champion.version, "at": datetime.now(UTC).isoformat(timespec="seconds")})
        log.info("now serving %s v%s (was v%s)", champion.name, champion.version,
                 before.version if before else None)
        versions = self.model_versions
        for callback in self.on_swap:
            try:
                callback(versions)
            except Exception:  # a metrics hook must not undo a swap
                log.exception("swap callback failed")

    def model_card(self, name: str, version: str | None = None, fmt: str = "md") -> str:
        """The card logged with a version of a served model (default: the version served now)."""
        return load_card(name, self.config.tracking_uri, version or self.champions[name].version, fmt)

    def watch_champions(self, interval: float) -> None:
        """Start swapping to a moved @champion, checking every `interval` seconds (0: never)."""
        if interval > 0 and self.watcher is None:
            self.watcher = ChampionWatcher(self, interval)
            self.watcher.start()

    def visits_due(self) -> None:
        """A completed task's visit waits for the next batched write-back."""
        if self.visit_writer is not None:
            self.visit_writer.due()

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.visit_writer is not None:
            self.visit_writer.close()
        if self.webhook is not None:
            self.webhook.stop()
        if self.live is not None:
            self.live.stop()
        self.audit.close()
        self.store.close()

    # -- scoring -------------------------------------------------------------------------------

    def score(self, features: pd.DataFrame, models: Sequence[str], top_k: int) -> ChunkScores:
        return score_chunk(self.champions, features, models, top_k)

    def score_residents(self, resident_ids: Sequence[str], models: Sequence[str], top_k: int) -> ChunkScores:
        """Score residents by id from the online features (KeyError names unknown ids)."""
        ids, as_of, values = self.features.lookup(resident_ids)
        return score_matrix(
            self.champions, resident_ids=ids, as_of=as_of, columns=self.features.columns,
            values=values, models=models, top_k=top_k,
        )

    def acts_on(self, chunk: ChunkScores) -> bool:
        """Whether any score of the chunk is in a band the actions policy opens tasks for."""
        bands = DEFAULT_POLICY.open_bands
        return any(b in bands for s in chunk.by_model.values() for b in s.band.tolist())

    def act(self, chunk: ChunkScores, principal: Principal | None) -> dict[str, list[dict]]:
        """Open tasks for high bands; returns resident id -> actions taken."""
        assessments = []
        for m, s in chunk.by_model.items():
            for i, rid in enumerate(chunk.resident_ids):
                grid = self.grid_of.get(rid)
                if grid is None or s.band[i] not in DEFAULT_POLICY.open_bands:
                    continue
                assessments.append(
                    Verdict(
                        resident_id=rid,
                        grid_id=grid,
                        model=m,
                        probability=float(s.probability[i]),
                        band=str(s.band[i]),
                        reasons=chunk.reasons(m, i),
                        model_version=s.version,
                        as_of=chunk.as_of[i],
                    )
                )
        out: dict[str, list[dict]] = {}
        if not assessments:
            return out
        for o in act_on_assessments(self.store, assessments, scarcity_by_grid=self.grid_scarcity(), actor=principal):
            if o.task is None or o.action == "none":
                continue
            out.setdefault(o.resident_id, []).append(
                {
                    "task_id": o.task.task_id,
                    "kind": o.task.kind,
                    "reason": o.task.reason,
                    "due_date": o.task.due_date,
                    "credits": o.task.credits,
                    "status": o.action,
                }
            )
        return out

    def grid_scarcity(self) -> dict[str, Scarcity]:
        """Scarcity per grid, recomputed when the online store (and its demand counts) changes."""
        stamp = self.features.stamp
        if self._scarcity_stamp != stamp:
            with self._lock:
                if self._scarcity_stamp != stamp:
                    self.scarcity = _scarcity(self.champions, self.online, self.history)
                    self._scarcity_stamp = stamp
        return self.scarcity

    def demand_outlook(self, horizon: int = 14) -> pd.DataFrame:
        """The demand forecast of every stored series for the coming days, as the requests will
        arise (a batch-logging coordinator's backlog spread over the days it covers), cached per
        online-store state; empty when no forecaster is served or the counts cannot be forecast."""
        stamp = (self.features.stamp, horizon)
        cached = self._outlook
        if cached is not None and cached[0] == stamp:
            return cached[1]
        demand = self.forecaster()
        counts = self.online.counts()
        fc = pd.DataFrame(columns=["series_id", "date", "horizon", "forecast", "lower", "upper"])
        if demand is not None and not counts.empty:
            try:
                fc = demand.spec.forecast(demand.loaded, counts, horizon=horizon, basis="occurring")
            except ValueError as exc:
                log.warning("no demand outlook: %s", exc)
        self._outlook = (stamp, fc)
        return fc

    def ranked_scores(self, model: str, band: str | None = None,
                      limit: int | None = None) -> tuple[str, list[ScoreRecord]]:
        """Residents by `model`'s score, highest first (`band` only, at most `limit`): the latest
        nightly scores ("stored"), or every resident scored now when no batch has stored any
        ("live")."""
        stored = self.store.latest_scores(model, band=band, limit=limit or 1_000_000)
        if stored:
            return "stored", stored
        ranked = self.live_ranking(model)
        if band is not None:
            ranked = ranked[ranked["band"] == band]
        if limit is not None:
            ranked = ranked.head(limit)
        version = self.champions[model].version
        return "live", [
            ScoreRecord(r.resident_id, model, version, None if pd.isna(r.as_of_date) else pd.Timestamp(r.as_of_date).date(),
                        float(r.probability), r.band, r.reasons, missing_data=r.missing_data)
            for r in ranked.itertuples()
        ]

    def live_ranking(self, model: str) -> pd.DataFrame:
        """Every resident in the online store scored now (cached per online-store state and version)."""
        self.features.refresh()
        key = (model, self.champions[model].version, self.features.stamp)
        with self._lock:
            cached = self._live_cache.get(key)
        if cached is not None:
            return cached
        ids = self.features.ids
        rows = []
        for k in range(0, len(ids), self.config.batch_chunk):
            chunk = self.score_residents(ids[k : k + self.config.batch_chunk], [model], self.config.top_reasons)
            s = chunk.by_model[model]
            rows.append(
                pd.DataFrame(
                    {
                        "resident_id": chunk.resident_ids,
                        "as_of_date": chunk.as_of,
                        "probability": s.probability,
                        "band": s.band,
                        "reasons": [chunk.reasons(model, i) for i in range(len(chunk))],
                        "missing_data": [chunk.missing_data(model, i) for i in range(len(chunk))],
                    }
                )
            )
        ranked = (
            pd.concat(rows, ignore_index=True).sort_values("probability", ascending=False, kind="stable")
            if rows
            else pd.DataFrame(columns=["resident_id", "as_of_date", "probability", "band", "reasons", "missing_data"])
        )
        with self._lock:
            self._live_cache = {key: ranked, **{k: v for k, v in self._live_cache.items() if k[2] == key[2]}}
        return ranked


def _grids(history: HistoryStore) -> dict[str, str]:
    if not history.has("residents"):
        return {}
    df = history.read("residents", ["resident_id", "grid_id"])
    return dict(zip(df["resident_id"].astype(str), df["grid_id"].astype(str), strict=True))


def _scarcity(champions: dict[str, Champion], online: OnlineStore, history: HistoryStore) -> dict[str, Scarcity]:
    """Scarcity per grid from the demand forecast of the coming week and volunteer supply."""
    demand = next((c for c in champions.values() if isinstance(c.spec, ForecastSpec)), None)
    if demand is None or not history.has("volunteers"):
        return {}
    counts = online.counts()
    if counts.empty:
        return {}
    try:
        fc = demand.spec.forecast(demand.loaded, counts, horizon=7, basis="occurring")
    except ValueError as exc:
        log.warning("no demand forecast for scarcity (credits use scarcity 1): %s", exc)
        return {}
    volunteers = history.read("volunteers", ["grid_id", "weekly_hours"])
    return grid_scarcity(fc, volunteers, horizon_days=7)


def build_runtime(config: ServingConfig, *, need_keys: bool = True, deliver_webhooks: bool = False) -> Runtime:
    """Load champions, open the stores and the key ring; refuse with a clear message if any fails.

    The nightly batch passes `need_keys=False`: it answers no requests. The serving process passes
    `deliver_webhooks=True` to send task events (from the outbox every writer fills) to
    TWINCARE_WEBHOOK_URL, when one is configured.
    """
    champions = load_champions(config.served_models(), config.tracking_uri)
    online = OnlineStore(config.online_db)
    try:
        online.check()
    except OnlineStoreError as exc:
        raise StartupError(str(exc)) from None
    except sqlite3.Error as exc:
        raise StartupError(f"online store {config.online_db} is not a readable SQLite database: {exc}") from None
    history = HistoryStore(config.history_dir)
    check_history(history)
    check_fresh(online, history, config.max_online_lag_days)
    try:
        keyring = KeyRing.from_file(config.api_keys_path) if need_keys else KeyRing([])
    except (FileNotFoundError, ValueError) as exc:
        raise StartupError(str(exc)) from None
    try:
        webhook_config = WebhookConfig(url=config.webhook_url, secret=config.webhook_secret) if config.webhook_url else None
    except ValueError as exc:
        raise StartupError(f"TWINCARE_WEBHOOK_URL: {exc}") from None
    try:
        volunteer_secret = read_secret(config.api_keys_path.with_name(VOLUNTEER_SECRET))
    except (OSError, ValueError) as exc:
        raise StartupError(str(exc)) from None
    try:
        store = TimeBankStore(config.store_url)
    except Exception as exc:  # noqa: BLE001 - any driver error is a start-up fault to name
        raise StartupError(f"time-bank store {redact_url(config.store_url)} cannot be opened: {exc}") from None
    webhook = WebhookDeliverer(store, webhook_config) if webhook_config and deliver_webhooks else None
    try:
        features = OnlineFeatures(online)
    except (OnlineStoreError, sqlite3.Error, ValueError) as exc:
        raise StartupError(f"online store {config.online_db} holds unreadable vectors: {exc}") from None
    try:
        grid_of, scarcity = _grids(history), _scarcity(champions, online, history)
    except (OSError, pa.ArrowException, KeyError, ValueError) as exc:
        raise StartupError(f"history {history.root} cannot be read: {exc}") from None
    runtime = Runtime(
        config=config,
        champions=champions,
        online=online,
        features=features,
        store=store,
        keyring=keyring,
        history=history,
        grid_of=grid_of,
        scarcity=scarcity,
        audit=AuditTrail(store),
        webhook=webhook,
        sessions=SessionBook(ttl_seconds=60 * config.session_minutes),
        volunteer_secret=volunteer_secret,
        visit_writer=VisitWriteBack(store, history, config.visit_flush_s) if deliver_webhooks else None,
        _scarcity_stamp=features.stamp,
    )
    runtime.live = _live_alerts(config, runtime)
    return runtime


def _live_alerts(config: ServingConfig, runtime: Runtime) -> LiveAlerts | None:
    """The live events and alerts, when a sensor map of the homes is configured."""
    path = config.sensor_map_path
    if path is None or not path.is_file():
        return None
    try:
        sensor_map = read_sensor_map(path)
    except ValueError as exc:
        raise StartupError(f"sensor map {path}: {exc}") from None
    alerts = LiveAlerts(
        runtime.store,
        sensor_map,
        grid_of=runtime.grid_of.get,
        scarcity_of=lambda grid: runtime.grid_scarcity().get(grid, NEUTRAL_SCARCITY),
        escalate_after=timedelta(seconds=config.alert_escalate_seconds),
        batch_lag=timedelta(seconds=config.alert_batch_lag_seconds),
        days_every=float(config.live_days_seconds),
    )
    features = runtime.features
    alerts.vectors = LiveVectors(
        runtime.history, alerts.live.days, features.nightly_as_of,
        lambda rid, as_of, vector: features.set_live(rid, as_of, live_row(features.columns, vector)),
    )
    return alerts


def check_history(history: HistoryStore) -> None:
    """Every Parquet part of the history opens (its footer is intact); else StartupError naming it."""
    for table in history.tables():
        for part in history.parts(table):
            try:
                pq.read_metadata(part)
            except (OSError, pa.ArrowException) as exc:
                raise StartupError(f"history part {part} is unreadable ({exc}); restore or remove it") from None


def history_last_day(history: HistoryStore) -> date | None:
    """The last sensor day the history records (from the parts' column statistics when present)."""
    last: date | None = None
    for part in history.parts("sensor_days"):
        meta = pq.read_metadata(part)
        col = meta.schema.to_arrow_schema().get_field_index("date")
        days = []
        for g in range(meta.num_row_groups):
            st = meta.row_group(g).column(col).statistics
            days.append(st.max if st is not None and st.has_min_max else None)
        if not days or any(d is None for d in days):
            days = [pq.read_table(part, columns=["date"]).column("date").to_pandas().max()]
        for d in days:
            if d is not None and not pd.isna(d):
                d = pd.Timestamp(d).date()
                last = d if last is None or d > last else last
    return last


def check_fresh(online: OnlineStore, history: HistoryStore, max_lag_days: int) -> None:
    """Refuse an online store older than the history it serves.

    The store is fresh when its as-of date (the day after the last sensor day it saw) is at most
    `max_lag_days` days before the day after the history's last sensor day; otherwise its
    vectors describe residents as they were, and tasks opened from them would be wrong.
    """
    try:
        last = history_last_day(history)
    except (OSError, pa.ArrowException) as exc:
        raise StartupError(f"history {history.root}: sensor days unreadable ({exc})") from None
    as_of = online.as_of
    if last is None or as_of is None:
        return
    lag = (last - as_of.date()).days + 1
    if lag > max_lag_days:
        raise StartupError(
            f"online store {online.path} is stale: built as of {as_of.date()}, but the history at "
            f"{history.root} runs to {last} ({lag} days later; at most {max_lag_days} allowed); "
            "run `twincare materialise` again"
        )


def preflight(config: ServingConfig) -> None:
    """Check what start-up needs (champions, online store, key file) without serving."""
    build_runtime(config).close()


