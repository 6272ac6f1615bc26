"""Malformed, truncated, oversized and wrong-version records published straight
to every consumed topic. Each lands on the topic's dead-letter topic with the reason in its
headers, and the next good record (a new course, a heartbeat) reaches the totals promptly."""

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts.accounts import Role
from contracts.codec import encode
from contracts.events import (
    AccountGrant,
    Channel,
    DeskAction,
    Event,
    Heartbeat,
    Level,
    PointRegistration,
    PointState,
    PointStatus,
    Response,
    SessionSchedule,
)
from contracts.topics import (
    DESK_ACTIONS,
    HEARTBEATS,
    POINT_STATUS,
    REGISTRY_ACCOUNTS,
    REGISTRY_POINTS,
    REGISTRY_SESSIONS,
    Topic,
)
from devstack.kafka import Broker
from devstack.services import ServiceProcess
from devstack.simulate import send_heartbeat
from tests.conftest import Figures
from tests.e2e.helpers import eventually
from tests.e2e.test_thin_path import fresh_plan, registered_points, totals

pytestmark = [pytest.mark.e2e, pytest.mark.fault]
PROMPTLY_SECONDS = 30.0  # a liveness bound, not a speed claim
NOW = datetime.now(UTC)


def good_records(code: str) -> dict[str, Event]:
    """A valid record of each consumed topic, for a point and session nobody else uses."""
    return {
        REGISTRY_POINTS.name: PointRegistration(
            code=code, name="Xã Thử", level=Level.COMMUNE, channel=Channel.OTHER
        ),
        REGISTRY_SESSIONS.name: SessionSchedule(
            code=code, course_code=code, starts_at=NOW, ends_at=NOW + timedelta(hours=1)
        ),
        HEARTBEATS.name: Heartbeat(
            point_code=code, session_code=code, seq=1, sent_at=NOW, received_at=NOW, learners=3
        ),
        POINT_STATUS.name: PointStatus(
            session_code=code, point_code=code, state=PointState.CONNECTED, learners=3, since=NOW
        ),
        REGISTRY_ACCOUNTS.name: AccountGrant(name=code.lower(), role=Role.VIEWER),
        DESK_ACTIONS.name: DeskAction(
            id=uuid.uuid4().hex,
            session_code=code,
            subject=f"point:{code}",
            response=Response.ACKNOWLEDGE,
            by="lan",
            at=NOW,
        ),
    }


def _with(good: Event, **fields: object) -> bytes:
    return json.dumps(json.loads(encode(good)) | fields).encode()


# What is wrong with each bad record, made from a good one.
BAD: dict[str, Callable[[Event], bytes]] = {
    "malformed": lambda good: b"\x00\xff{not json at all",
    "truncated": lambda good: encode(good)[: len(encode(good)) // 2],
    "oversized": lambda good: _with(good, padding="x" * 300_000),
    "wrong version": lambda good: _with(good, schema_version=2),
}
CONSUMED = (
    REGISTRY_POINTS,
    REGISTRY_SESSIONS,
    REGISTRY_ACCOUNTS,
    HEARTBEATS,
    POINT_STATUS,
    DESK_ACTIONS,
)


async def publish_bad(bootstrap: str, run: str) -> dict[bytes, str]:
    """Every bad kind to every consumed topic; the key of each names it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2**20)
    await producer.start()
    sent: dict[bytes, str] = {}
    try:
        for topic in CONSUMED:
            good = good_records(f"DLQ-{run}")[topic.name]
            for kind, spoil in BAD.items():
                key = f"{run}/{topic.name}/{kind}".encode()
                await producer.send_and_wait(topic.name, spoil(good), key=key)
                sent[key] = topic.name
    finally:
        await producer.stop()
    return sent


async def parked(
    bootstrap: str, topics: tuple[Topic, ...], run: str
) -> dict[bytes, dict[str, str]]:
    """Records of this run on the dead-letter topics, by key, with their headers."""
    consumer = AIOKafkaConsumer(
        *(t.dead_letters.name for t in topics),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        fetch_max_bytes=8 * 2**20,
        max_partition_fetch_bytes=4 * 2**20,
    )
    await consumer.start()
    found: dict[bytes, dict[str, str]] = {}
    try:
        while batches := await consumer.getmany(timeout_ms=1500):
            for records in batches.values():
                for r in records:
                    if r.key is not None and r.key.startswith(run.encode()):
                        found[r.key] = {k: v.decode() for k, v in r.headers}
    finally:
        await consumer.stop()
    return found


async def test_bad_records_on_every_consumed_topic_are_parked_with_the_reason(
    kafka: Broker,
    stack: dict[str, ServiceProcess],
    clients: dict[str, httpx.AsyncClient],
    figures: Figures,
) -> None:
    run = uuid.uuid4().hex[:8]
    began = time.monotonic()
    sent = await publish_bad(kafka.bootstrap, run)
    # The next good records: a course (registry topics), a heartbeat, its status, the totals.
    plan = fresh_plan(points=1)
    (point,) = await registered_points(clients, plan)
    assert (await send_heartbeat(clients["attendance"], point, plan.session_code)).status_code
    await eventually(
        lambda: totals(clients, plan), lambda t: t.get("connected") == 1, PROMPTLY_SECONDS
    )
    good_after = time.monotonic() - began
    found = await eventually(
        lambda: parked(kafka.bootstrap, CONSUMED, run),
        lambda found: set(found) >= set(sent),
        PROMPTLY_SECONDS,
    )
    reasons = {key.decode(): headers.get("dlq-error", "") for key, headers in found.items()}
    figures(
        published_bad=len(sent),
        parked=len(set(found) & set(sent)),
        good_record_in_totals_after_seconds=round(good_after, 1),
        reasons={k.split("/", 1)[1]: v[:90] for k, v in sorted(reasons.items())},
    )
    for key, topic in sent.items():
        assert found[key]["dlq-topic"] == topic
        assert found[key]["dlq-error"], f"no reason given for {key!r}"
