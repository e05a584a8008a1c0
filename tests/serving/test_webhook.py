"""Webhook delivery against a real HTTP server on 127.0.0.1 that fails the first attempts."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from serving.webhook import WebhookConfig, WebhookDeliverer, backoff_delay, deliverer_from_env
from tests.serving.conftest import Receiver, make_spec


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _cfg(url: str, **kw) -> WebhookConfig:
    return WebhookConfig(url=url, base_delay_s=1.0, max_delay_s=8.0, jitter=0.0, timeout_s=2.0, **kw)


def test_events_are_delivered_after_failures_with_exponential_backoff(store, clock, receiver):
    t = store.open_task(make_spec(), idempotency_key="o").task
    d = WebhookDeliverer(store, _cfg(receiver.url))
    try:
        r1 = d.deliver_due()
        assert (r1.delivered, r1.failed) == (0, 1)
        ev = store.events()[0]
        assert ev.attempts == 1 and ev.last_error == "HTTP 500"
        assert ev.next_attempt_at == clock() + timedelta(seconds=1)
        assert d.deliver_due().failed == 0  # not due yet
        clock.advance(seconds=1)
        assert d.deliver_due().failed == 1
        assert store.events()[0].next_attempt_at == clock() + timedelta(seconds=2)
        clock.advance(seconds=2)
        assert d.deliver_due().delivered == 1
        store.claim_task(t.task_id, "V1", idempotency_key="c")
        assert d.deliver_due().delivered == 1
    finally:
        d.stop()
    events = store.events()
    assert all(e.delivered_at is not None for e in events)
    assert [e.attempts for e in events] == [3, 1]
    assert receiver.event_ids() == [f"{t.task_id}.opened"] * 3 + [f"{t.task_id}.claimed"]
    body = json.loads(receiver.requests[-1]["body"])
    assert body["type"] == "task.claimed" and body["task"]["volunteer_id"] == "V1"
    assert body["event_id"] == f"{t.task_id}.claimed"


def test_a_slow_receiver_gets_the_event_again_with_the_same_id(store, clock):
    slow = Receiver(fail_first=0, delay_s=0.6)
    slow.thread.start()
    try:
        store.open_task(make_spec(), idempotency_key="o")
        d = WebhookDeliverer(store, WebhookConfig(url=slow.url, timeout_s=0.2, base_delay_s=1, jitter=0))
        assert d.deliver_due().failed == 1  # timed out, though the receiver got it
        d.stop()
        clock.advance(seconds=1)
        slow.delay_s = 0
        patient = WebhookDeliverer(store, WebhookConfig(url=slow.url, timeout_s=10, jitter=0))
        assert patient.deliver_due().delivered == 1
        patient.stop()
        time.sleep(0.7)  # let the first (slow) handler finish
        ids = slow.event_ids()
        assert len(ids) == 2 and len(set(ids)) == 1  # at least once; dedupe on the id
    finally:
        slow.server.shutdown()
        slow.server.server_close()


def test_requests_are_signed_when_a_secret_is_set(store, receiver):
    receiver.fail_first = 0
    store.open_task(make_spec(), idempotency_key="o")
    d = WebhookDeliverer(store, _cfg(receiver.url, secret="s3cret"))
    assert d.deliver_due().delivered == 1
    d.stop()
    req = receiver.requests[0]
    expected = "sha256=" + hmac.new(b"s3cret", req["body"], hashlib.sha256).hexdigest()
    assert req["headers"]["X-TwinCare-Signature"] == expected
    assert "s3cret" not in repr(d.config)


def test_unreachable_receiver_is_retried_later(store, clock):
    store.open_task(make_spec(), idempotency_key="o")
    d = WebhookDeliverer(store, _cfg("http://127.0.0.1:9/unreachable"))
    assert d.deliver_due().failed == 1
    d.stop()
    ev = store.events()[0]
    assert ev.delivered_at is None and ev.attempts == 1 and "Connect" in ev.last_error


def test_background_thread_delivers_everything(sqlite_store, receiver):
    from serving.store import TimeBankStore

    store = TimeBankStore(sqlite_store.url)  # real clock, so retries come due by themselves
    for i in range(3):
        store.open_task(make_spec(f"R{i}"), idempotency_key=f"o{i}")
    d = WebhookDeliverer(store, WebhookConfig(url=receiver.url, base_delay_s=0.05, jitter=0.0))
    d.start(interval_s=0.02)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(e.delivered_at is None for e in store.events()):
        time.sleep(0.05)
    d.stop()
    assert all(e.delivered_at is not None for e in store.events())
    assert len(set(receiver.event_ids())) == 3


def test_backoff_doubles_and_is_capped():
    cfg = WebhookConfig(url="http://127.0.0.1/x", base_delay_s=1, max_delay_s=30, jitter=0)
    assert [backoff_delay(n, cfg) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, 30, 30]
    with pytest.raises(ValueError, match="http"):
        WebhookConfig(url="ftp://example/x")


def test_deliverer_from_env_is_optional(sqlite_store):
    assert deliverer_from_env(sqlite_store, {}) is None
    d = deliverer_from_env(sqlite_store, {"TWINCARE_WEBHOOK_URL": "http://127.0.0.1:9/h", "TWINCARE_WEBHOOK_SECRET": "x"})
    assert d.config.url == "http://127.0.0.1:9/h" and d.config.secret == "x"
    d.stop()
