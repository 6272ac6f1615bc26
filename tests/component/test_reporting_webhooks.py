"""Reporting's incident webhooks in process, against receivers that answer as real ones do
(httpx's MockTransport): signed, keyed, retried while a receiver fails, one receiver's failure
no other's delay."""

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from reporting.config import Settings
from reporting.incidents import Incident
from reporting.webhooks import (
    CLOSED,
    OPENED,
    QUEUE_LIMIT,
    WebhookMetrics,
    Webhooks,
    body_of,
    idempotency_key,
)
from servicekit.logs import QUIETER

SECRET = "a-secret-of-the-test"
HOOK_SECRET = "T0001-B0002-the-secret-part"  # a chat's hook carries its secret in its path
INCIDENT = Incident(
    "K2026-D1-AM", "province", "38", datetime(2026, 12, 1, 3, 12, tzinfo=UTC), {"P2", "P1"}
)


def posts_of(metrics: CollectorRegistry) -> dict[str, float]:
    return {
        sample.labels["outcome"]: sample.value
        for family in metrics.collect()
        if family.name == "webhook_posts"
        for sample in family.samples
        if sample.name == "webhook_posts_total" and sample.value
    }


def signed(request: httpx.Request) -> bool:
    """Checked as a receiver would, from the documentation, not from reporting's code."""
    fields = dict(part.split("=", 1) for part in request.headers["X-Monitor-Signature"].split(","))
    mac = hmac.new(SECRET.encode(), f"{fields['t']}.".encode() + request.content, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), fields["v1"])


async def delivered(
    answers: dict[str, list[int]],
    events: list[tuple[str, Incident]],
    enough: Callable[[dict[str, list[httpx.Request]]], bool],
) -> tuple[dict[str, list[httpx.Request]], CollectorRegistry]:
    """Post `events` to receivers answering each in turn with `answers[host]` (then 204),
    until `enough` holds of the requests they saw."""
    seen: dict[str, list[httpx.Request]] = {host: [] for host in answers}
    done = asyncio.Event()

    def receive(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        seen[host].append(request)
        if enough(seen):
            done.set()
        pending = answers[host]
        return httpx.Response(pending.pop(0) if pending else 204)

    metrics = CollectorRegistry()
    async with httpx.AsyncClient(transport=httpx.MockTransport(receive)) as client:
        hooks = Webhooks(
            [f"https://{host}/hooks/{HOOK_SECRET}" for host in answers],
            SECRET,
            client,
            WebhookMetrics(metrics),
            first_wait=0.01,
        )
        for event, incident in events:
            hooks.notify(event, incident)
        running = asyncio.create_task(hooks.run())
        try:
            async with asyncio.timeout(30):
                await done.wait()
            await asyncio.sleep(0.05)  # the answer to the last request is counted by now
        finally:
            running.cancel()
    return seen, metrics


async def test_a_failing_receiver_gets_the_same_event_again_signed_afresh() -> None:
    seen, metrics = await delivered(
        {"chat": [503, 503, 429]}, [(OPENED, INCIDENT)], lambda seen: len(seen["chat"]) == 4
    )
    requests = seen["chat"]
    assert len(requests) == 4
    assert all(signed(r) for r in requests)
    assert {r.headers["Idempotency-Key"] for r in requests} == {idempotency_key(OPENED, INCIDENT)}
    assert {r.content for r in requests} == {body_of(OPENED, INCIDENT)}
    assert posts_of(metrics) == {"delivered": 1}


async def test_a_refusal_is_not_retried_and_a_receiver_down_delays_no_other(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Logged as a service logs (servicekit.logs), whatever ran before in this process; the
    # handler's level last, since each call sets it too.
    for name, level in QUIETER.items():
        caplog.set_level(level, logger=name)
    caplog.set_level(logging.INFO)
    events = [(OPENED, INCIDENT), (CLOSED, INCIDENT)]

    def enough(seen: dict[str, list[httpx.Request]]) -> bool:
        return len(seen["chat"]) == 2 and len(seen["strict"]) == 2 and len(seen["down"]) >= 4

    seen, metrics = await delivered(
        {"down": [503] * 1000, "strict": [400], "chat": []}, events, enough
    )
    assert [json.loads(r.content)["event"] for r in seen["chat"]] == [OPENED, CLOSED]
    assert len(seen["strict"]) == 2  # the refused one once, then the next event
    # The one down still on its first event, the others through both.
    assert {json.loads(r.content)["event"] for r in seen["down"]} == {OPENED}
    assert posts_of(metrics) == {"delivered": 3, "refused": 1}
    assert "strict refused" in caplog.text and HOOK_SECRET not in caplog.text


def test_an_event_says_what_happened_and_is_keyed_by_it() -> None:
    body = json.loads(body_of(OPENED, INCIDENT))
    assert body == {
        "event": "incident.opened",
        "session_code": "K2026-D1-AM",
        "kind": "province",
        "group": "38",
        "group_name": "Thanh Hóa",
        "opened_at": "2026-12-01T03:12:00+00:00",
        "closed_at": None,
        "points": ["P1", "P2"],
    }
    keys = {idempotency_key(event, INCIDENT) for event in (OPENED, CLOSED)}
    assert len(keys) == 2
    later = Incident("K2026-D1-AM", "province", "38", datetime(2026, 12, 1, 4, tzinfo=UTC))
    assert idempotency_key(OPENED, later) not in keys


async def test_a_receiver_too_far_behind_loses_the_newest_and_says_so() -> None:
    metrics = CollectorRegistry()
    async with httpx.AsyncClient() as client:
        hooks = Webhooks(["https://slow/hook"], SECRET, client, WebhookMetrics(metrics))
        for _ in range(QUEUE_LIMIT + 3):
            hooks.notify(OPENED, INCIDENT)
    assert posts_of(metrics) == {"dropped": 3}


def test_webhooks_without_a_secret_are_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="REPORTING_WEBHOOK_SECRET"):
        Settings(webhook_urls=("https://chat.example/hook",))
    with pytest.raises(ValidationError, match="REPORTING_WEBHOOK_SECRET"):
        Settings(
            environment="production",
            database_url="postgresql://monitor:pw@db/reporting",
            webhook_urls=("https://chat.example/hook",),
            webhook_secret="short",
        )
