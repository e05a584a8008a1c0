"""Serving configuration: read from the environment once, at the edge, then passed in."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from models.registry import default_tracking_uri


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is outside {lo}..{hi}")
    return value


@dataclass(frozen=True)
class ServingConfig:
    """Where the service finds its models, features and stores, and its request limits.

    Everything lives under one workdir (TWINCARE_HOME) unless a variable points elsewhere.
    """

    home: Path
    tracking_uri: str
    history_dir: Path
    online_db: Path
    store_url: str
    api_keys_path: Path
    max_batch: int = 1000
    top_reasons: int = 3
    batch_chunk: int = 5000
    models: tuple[str, ...] = ()  # the models to serve; empty: every registered model
    webhook_url: str | None = None
    webhook_secret: str | None = None
    session_minutes: int = 30  # how long a web sign-in lasts
    model_poll_seconds: int = 30  # how often the service asks where @champion points (0: never)
    sensor_map_path: Path | None = None  # home gateways' sensor ids -> roles; no map: no live events
    max_events: int = 5000  # events in one POST /events batch
    alert_escalate_seconds: int = 900  # an urgent alert no one acknowledged or claimed goes to the care manager
    alert_tick_seconds: int = 15  # how often home clocks move on and escalations are checked (0: never)
    alert_batch_lag_seconds: int = 120  # how late a gateway's batch may be before its home's clock moves on
    live_days_seconds: int = 60  # a home's live sensor_days rows are rebuilt at most this often
    max_online_lag_days: int = 1  # how far the online store's as-of may trail the history
    visit_flush_s: float = 30.0  # completed visits are written back at most this often

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingConfig:
        """Build the config from TWINCARE_* variables (defaults: files under TWINCARE_HOME)."""
        env = os.environ if env is None else env
        home = Path(env.get("TWINCARE_HOME") or "demo-data").resolve()
        tracking_uri = env.get("TWINCARE_TRACKING_URI") or default_tracking_uri(home)
        history_dir = Path(env.get("TWINCARE_HISTORY") or home / "history")
        online_db = Path(env.get("TWINCARE_ONLINE_DB") or home / "online.db")
        store_url = env.get("TWINCARE_STORE_URL") or f"sqlite:///{home / 'timebank.db'}"
        api_keys = Path(env.get("TWINCARE_API_KEYS") or home / "api_keys.json")
        return cls(
            home=home,
            tracking_uri=tracking_uri,
            history_dir=history_dir,
            online_db=online_db,
            store_url=store_url,
            api_keys_path=api_keys,
            max_batch=_int(env, "TWINCARE_MAX_BATCH", 1000, 1, 100_000),
            top_reasons=_int(env, "TWINCARE_TOP_REASONS", 3, 1, 20),
            batch_chunk=_int(env, "TWINCARE_BATCH_CHUNK", 5000, 1, 1_000_000),
            max_online_lag_days=_int(env, "TWINCARE_MAX_ONLINE_LAG_DAYS", 1, 0, 3650),
            visit_flush_s=float(_int(env, "TWINCARE_VISIT_FLUSH_S", 30, 1, 86_400)),
            webhook_url=(env.get("TWINCARE_WEBHOOK_URL") or "").strip() or None,
            webhook_secret=env.get("TWINCARE_WEBHOOK_SECRET") or None,
            session_minutes=_int(env, "TWINCARE_SESSION_MINUTES", 30, 1, 24 * 60),
            model_poll_seconds=_int(env, "TWINCARE_MODEL_POLL_SECONDS", 30, 0, 86_400),
            sensor_map_path=Path(env.get("TWINCARE_SENSOR_MAP") or home / "sensor_map.json"),
            max_events=_int(env, "TWINCARE_MAX_EVENTS", 5000, 1, 1_000_000),
            alert_escalate_seconds=_int(env, "TWINCARE_ALERT_ESCALATE_SECONDS", 900, 1, 7 * 86_400),
            alert_tick_seconds=_int(env, "TWINCARE_ALERT_TICK_SECONDS", 15, 0, 3600),
            alert_batch_lag_seconds=_int(env, "TWINCARE_ALERT_BATCH_LAG_SECONDS", 120, 0, 86_400),
            live_days_seconds=_int(env, "TWINCARE_LIVE_DAYS_SECONDS", 60, 0, 86_400),
        )

    def served_models(self) -> tuple[str, ...]:
        from models.registry import model_names

        return self.models or model_names()

    def as_env(self) -> dict[str, str]:
        """The variables that rebuild this config in a child process."""
        return {
            "TWINCARE_HOME": str(self.home),
            "TWINCARE_TRACKING_URI": self.tracking_uri,
            "TWINCARE_HISTORY": str(self.history_dir),
            "TWINCARE_ONLINE_DB": str(self.online_db),
            "TWINCARE_STORE_URL": self.store_url,
            "TWINCARE_API_KEYS": str(self.api_keys_path),
            "TWINCARE_MAX_BATCH": str(self.max_batch),
            "TWINCARE_TOP_REASONS": str(self.top_reasons),
            "TWINCARE_BATCH_CHUNK": str(self.batch_chunk),
            "TWINCARE_SESSION_MINUTES": str(self.session_minutes),
            "TWINCARE_MODEL_POLL_SECONDS": str(self.model_poll_seconds),
            **({"TWINCARE_SENSOR_MAP": str(self.sensor_map_path)} if self.sensor_map_path else {}),
            "TWINCARE_MAX_EVENTS": str(self.max_events),
            "TWINCARE_ALERT_ESCALATE_SECONDS": str(self.alert_escalate_seconds),
            "TWINCARE_ALERT_TICK_SECONDS": str(self.alert_tick_seconds),
            "TWINCARE_ALERT_BATCH_LAG_SECONDS": str(self.alert_batch_lag_seconds),
            "TWINCARE_LIVE_DAYS_SECONDS": str(self.live_days_seconds),
            "TWINCARE_MAX_ONLINE_LAG_DAYS": str(self.max_online_lag_days),
            "TWINCARE_VISIT_FLUSH_S": str(int(self.visit_flush_s)),
        }
