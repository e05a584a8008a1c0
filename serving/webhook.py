"""Task events to an optional webhook: at-least-once, with retries and exponential backoff.

Every task write puts its event (`task.opened`, `task.claimed`, `task.completed`,
`task.cancelled`, `task.expired`) in the store's outbox in the same transaction, so an event
exists exactly when its change does. `WebhookDeliverer` POSTs due events as JSON; a 2xx marks
one delivered, anything else schedules a retry after `base_delay * 2**(attempts-1)` (capped,
with jitter). An event can arrive more than once (e.g. the receiver answered after our
timeout), so receivers deduplicate on `event_id` (also in the `X-TwinCare-Event-Id` header),
which is stable: `<task_id>.<transition>`.

With a secret configured each request is signed: `X-TwinCare-Signature: sha256=<hex HMAC of
the body>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import httpx

from serving.store import OutboxEvent, TimeBankStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookConfig:
    """Where and how to deliver task events."""

    url: str
    secret: str | None = None
    timeout_s: float = 5.0
    base_delay_s: float = 1.0
    max_delay_s: float = 300.0
    jitter: float = 0.1  # +/- fraction of the delay, so retries of many events spread out
    batch_size: int = 100

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"webhook URL must be http(s)://host/..., got {self.url!r}")
        if self.timeout_s <= 0 or self.base_delay_s <= 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need timeout_s > 0 and 0 < base_delay_s <= max_delay_s")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def __repr__(self) -> str:  # never show the secret
        return f"WebhookConfig(url={self.url!r}, secret={'***' if self.secret else None})"


@dataclass(frozen=True)
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    skipped: int = 0  # taken by another deliverer


def backoff_delay(attempts: int, cfg: WebhookConfig, rng: random.Random | None = None) -> float:
    """Seconds to wait after the `attempts`-th failed attempt (1, 2, 4, ... x base, capped)."""
    delay = min(cfg.max_delay_s, cfg.base_delay_s * 2 ** max(0, attempts - 1))
    if cfg.jitter:
        delay *= 1 + (rng or random).uniform(-cfg.jitter, cfg.jitter)
    return delay


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookDeliverer:
    """Delivers the store's webhook outbox to one URL. Call `deliver_due()` or `start()`."""

    def __init__(self, store: TimeBankStore, config: WebhookConfig, *, client: httpx.Client | None = None):
        self.store = store
        self.config = config
        self._client = client or httpx.Client(timeout=config.timeout_s, follow_redirects=False)
        self._rng = random.Random()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _send(self, ev: OutboxEvent, attempt: int) -> str | None:
        """POST one event; None on success, else what went wrong."""
        body = json.dumps(ev.payload, sort_keys=True, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-TwinCare-Event-Id": ev.event_id,
            "X-TwinCare-Event-Type": ev.event_type,
            "X-TwinCare-Delivery-Attempt": str(attempt),
        }
        if self.config.secret:
            headers["X-TwinCare-Signature"] = sign(body, self.config.secret)
        try:
            r = self._client.post(self.config.url, content=body, headers=headers)
        except httpx.HTTPError as e:
            return f"{type(e).__name__}: {e}"
        if 200 <= r.status_code < 300:
            return None
        return f"HTTP {r.status_code}"

    def deliver_due(self) -> DeliveryReport:
        """Try every event that is due now, oldest first; returns what happened."""
        delivered = failed = skipped = 0
        now = self.store.now()
        lease = now + timedelta(seconds=self.config.timeout_s * 2 + 5)
        for ev in self.store.due_events(now=now, limit=self.config.batch_size):
            if not self.store.lease_event(ev, lease):
                skipped += 1
                continue
            attempt = ev.attempts + 1
            error = self._send(ev, attempt)
            if error is None:
                self.store.mark_delivered(ev.event_id, attempts=attempt)
                delivered += 1
            else:
                wait = backoff_delay(attempt, self.config, self._rng)
                self.store.mark_failed(
                    ev.event_id,
                    attempts=attempt,
                    next_attempt_at=self.store.now() + timedelta(seconds=wait),
                    error=error,
                )
                log.warning("webhook event %s attempt %d failed (%s); retry in %.1fs",
                            ev.event_id, attempt, error, wait)
                failed += 1
        return DeliveryReport(delivered, failed, skipped)

    def run(self, interval_s: float = 1.0) -> None:
        """Deliver until `stop()` is called (the body of the background thread)."""
        while not self._stop.is_set():
            try:
                self.deliver_due()
            except Exception:  # keep delivering after a transient store error
                log.exception("webhook delivery round failed")
            self._stop.wait(interval_s)

    def start(self, interval_s: float = 1.0) -> threading.Thread:
        """Run in a daemon thread; `stop()` ends it."""
        if self._thread is not None and self._thread.is_alive():
            return self._thread
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=(interval_s,), name="twincare-webhook", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._client.close()


def deliverer_from_env(store: TimeBankStore, env: Mapping[str, str]) -> WebhookDeliverer | None:
    """A deliverer for `TWINCARE_WEBHOOK_URL` (signed with `TWINCARE_WEBHOOK_SECRET` if set),
    or None when no URL is configured. Start it with `.start()`, end it with `.stop()`."""
    url = (env.get("TWINCARE_WEBHOOK_URL") or "").strip()
    if not url:
        return None
    return WebhookDeliverer(store, WebhookConfig(url=url, secret=env.get("TWINCARE_WEBHOOK_SECRET") or None))
