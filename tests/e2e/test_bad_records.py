"""A malformed record on any consumed topic is parked on its dead-letter topic; work goes on."""

import functools
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts.topics import (
    HEARTBEATS,
    POINT_STATUS,
    REGISTRY_POINTS,
    REGISTRY_SESSIONS,
    dead_letter_name,
)
from devstack.kafka import Broker
from devstack.services import ServiceProcess
from devstack.simulate import send_heartbeat
from tests.e2e.helpers import eventually
from tests.e2e.test_thin_path import fresh_plan, registered_points, totals

pytestmark = pytest.mark.e2e
CONSUMED = (REGISTRY_POINTS, REGISTRY_SESSIONS, HEARTBEATS, POINT_STATUS)


async def dead_letters(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(
        dead_letter_name(topic),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=2000)
        return [(r.value or b"", dict(r.headers)) for records in batches.values() for r in records]
    finally:
        await consumer.stop()


async def test_malformed_records_are_parked_and_consumers_keep_going(
    kafka: Broker, stack: dict[str, ServiceProcess]
) -> None:
    marker = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for topic in CONSUMED:
            for garbage in (
                b"{not json " + marker,
                b'{"event_type":"wrong","m":"' + marker + b'"}',
            ):
                await producer.send_and_wait(topic.name, garbage, key=b"garbage")
    finally:
        await producer.stop()

    for topic in CONSUMED:
        parked = await eventually(
            functools.partial(dead_letters, kafka.bootstrap, topic.name),
            lambda records: sum(marker in value for value, _ in records) >= 2,
        )
        headers = next(h for value, h in parked if marker in value)
        assert headers["dlq-topic"] == topic.name.encode()
        assert headers["dlq-error"].startswith(b"not a valid")

    # The same consumers still turn heartbeats into totals.
    async with (
        httpx.AsyncClient(base_url=stack["registration"].url) as registration,
        httpx.AsyncClient(base_url=stack["attendance"].url) as attendance,
        httpx.AsyncClient(base_url=stack["reporting"].url) as reporting,
    ):
        clients = {"registration": registration, "attendance": attendance, "reporting": reporting}
        plan = fresh_plan(points=1)
        (point,) = await registered_points(clients, plan)
        assert (await send_heartbeat(attendance, point, plan.session_code)).status_code == 202
        await eventually(lambda: totals(clients, plan), lambda t: t.get("connected") == 1)
        metrics = (await attendance.get("/metrics")).text
        assert 'dead_letters_total{topic="attendance.heartbeats"}' in metrics
