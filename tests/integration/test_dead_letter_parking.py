"""A dead letter is written even when the producer it was handed to is closed under it (as
`servicekit.healing` replaces a producer): the consumer has moved past the record, so a dead
letter given up would lose it, and the rest of its batch with it."""

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry

from contracts.codec import ContractError
from contracts.topics import Topic, dead_letter_name
from devstack.kafka import Broker
from servicekit.healing import ProducerHealer
from servicekit.kafka import DeadLetters, aiokafka_producer, make_broker
from servicekit.provision import ensure_topics

pytestmark = pytest.mark.integration


async def test_a_dead_letter_waits_out_its_producer_being_replaced(kafka: Broker) -> None:
    source = Topic(f"it.{uuid.uuid4().hex}", 1, key="point code")
    parked_on = Topic(dead_letter_name(source.name), 1, key="point code")
    await ensure_topics(kafka.bootstrap, [source, parked_on])
    registry = CollectorRegistry()
    broker = make_broker(kafka.bootstrap, client_id="it-dead-letters", registry=registry)
    await broker.start()
    try:
        old = aiokafka_producer(broker)
        await old.stop()  # closed under whoever still holds it, as a replacement does
        record = ConsumerRecord(
            source.name, 0, 7, int(time.time() * 1000), 0, b"P1", b"{", None, 2, 1, ()
        )
        dead_letters = DeadLetters(broker, registry, [source.name])
        parking = asyncio.create_task(dead_letters.park(record, ContractError("not JSON")))
        await asyncio.sleep(0.5)
        assert not parking.done(), parking  # waiting for a producer, not failed
        await ProducerHealer(broker, registry).replace(old, reason="closed by the test")
        await asyncio.wait_for(parking, timeout=30)
    finally:
        await broker.stop()
    assert await _parked(kafka.bootstrap, parked_on.name) == [(b"P1", b"{", source.name)]


async def _parked(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None, str]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000)
    finally:
        await consumer.stop()
    return [
        (r.key, r.value, dict(r.headers)["dlq-topic"].decode())
        for records in batch.values()
        for r in records
    ]
