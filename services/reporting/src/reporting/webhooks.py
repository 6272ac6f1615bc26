"""Incidents posted to the desk's own webhooks (a chat, a paging or ticket system) as they open
and close.

Each post is signed: header `X-Monitor-Signature: t=<unix seconds>,v1=<hex>`, the HMAC-SHA256
with the shared secret of `<t>.` followed by the body, so a receiver can tell it comes from us
and is fresh. Each carries an `Idempotency-Key`, the same on every retry and from every
reporting instance (it is made of the event and the incident), so a receiver hearing an event
twice (a retry whose answer was lost, a restarted or second instance) can tell. A receiver that
fails (no answer, 5xx, 408, 429) is tried again with backoff for a while; one per URL, so one
receiver down delays no other.
"""

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx
from prometheus_client import CollectorRegistry, Counter
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from reporting.incidents import Incident
from reporting.provinces import province_name

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Monitor-Signature"
KEY_HEADER = "Idempotency-Key"
OPENED, CLOSED = "incident.opened", "incident.closed"
# Events waiting for one receiver; past it the newest are dropped (and counted), not memory.
QUEUE_LIMIT = 10_000
RETRIED_STATUSES = frozenset({408, 429})


class ReceiverFailed(Exception):
    """The receiver answered with a status worth trying again."""


def idempotency_key(event: str, incident: Incident) -> str:
    what = f"{event}|{incident.session_code}|{incident.kind}|{incident.group}"
    return hashlib.sha256(f"{what}|{incident.opened_at.isoformat()}".encode()).hexdigest()[:32]


def body_of(event: str, incident: Incident) -> bytes:
    closed_at = incident.closed_at.isoformat() if incident.closed_at else None
    name = province_name(incident.group) if incident.kind == "province" else ""
    document = {
        "event": event,
        "session_code": incident.session_code,
        "kind": incident.kind,
        "group": incident.group,
        "group_name": name,
        "opened_at": incident.opened_at.isoformat(),
        "closed_at": closed_at,
        "points": sorted(incident.points),
    }
    return json.dumps(document, ensure_ascii=False).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class WebhookMetrics:
    def __init__(self, metrics: CollectorRegistry) -> None:
        self.posts = Counter(
            "webhook_posts_total",
            "Incident events posted to the configured webhooks, by outcome",
            ["outcome"],
            registry=metrics,
        )
        for outcome in ("delivered", "refused", "failed", "dropped"):
            self.posts.labels(outcome)


class Webhooks:
    """Posts incident events to each of `urls`, signed with `secret`; retries a failing
    receiver for `give_up_after` seconds."""

    def __init__(
        self,
        urls: Sequence[str],
        secret: str,
        client: httpx.AsyncClient,
        metrics: WebhookMetrics,
        *,
        give_up_after: float = 600.0,
        first_wait: float = 1.0,
    ) -> None:
        self._secret = secret
        self._client = client
        self._metrics = metrics
        self._give_up_after = give_up_after
        self._first_wait = first_wait
        self._queues: dict[str, asyncio.Queue[tuple[str, bytes]]] = {
            url: asyncio.Queue(QUEUE_LIMIT) for url in urls
        }

    def notify(self, event: str, incident: Incident) -> None:
        key, body = idempotency_key(event, incident), body_of(event, incident)
        for url, queue in self._queues.items():
            try:
                queue.put_nowait((key, body))
            except asyncio.QueueFull:
                self._metrics.posts.labels("dropped").inc()
                log.warning(
                    "webhook %s: %s events waiting, %s dropped", _shown(url), QUEUE_LIMIT, event
                )

    async def run(self) -> None:
        async with asyncio.TaskGroup() as running:
            for url, queue in self._queues.items():
                running.create_task(self._deliver_to(url, queue))

    async def _deliver_to(self, url: str, queue: "asyncio.Queue[tuple[str, bytes]]") -> None:
        while True:
            key, body = await queue.get()
            try:
                await self._post(url, key, body)
            except (httpx.HTTPError, ReceiverFailed) as error:
                self._metrics.posts.labels("failed").inc()
                log.error("webhook %s: event %s given up (%s)", _shown(url), key, error)

    async def _post(self, url: str, key: str, body: bytes) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((httpx.TransportError, ReceiverFailed)),
            wait=wait_exponential_jitter(
                multiplier=self._first_wait, max=60, jitter=self._first_wait
            ),
            stop=stop_after_delay(self._give_up_after),
            reraise=True,
        )
        answer: httpx.Response = await retrying(self._attempt, url, key, body)
        if answer.is_success:
            self._metrics.posts.labels("delivered").inc()
        else:
            # A 4xx the receiver means: sending it again would be refused again.
            self._metrics.posts.labels("refused").inc()
            log.error("webhook %s refused event %s: %s", _shown(url), key, answer.status_code)

    async def _attempt(self, url: str, key: str, body: bytes) -> httpx.Response:
        # Signed on each attempt: the signature carries its time.
        headers = {
            "Content-Type": "application/json",
            KEY_HEADER: key,
            SIGNATURE_HEADER: signature(self._secret, int(time.time()), body),
        }
        answer = await self._client.post(url, content=body, headers=headers)
        if answer.status_code >= 500 or answer.status_code in RETRIED_STATUSES:
            raise ReceiverFailed(f"answered {answer.status_code}")
        return answer


def _shown(url: str) -> str:
    """A webhook's URL as logs may show it: its host only, since a chat's hook carries its
    secret in the path."""
    return urlsplit(url).netloc
