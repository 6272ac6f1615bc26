"""The healer on the real broker: a healthy producer is left where it is, with the sends in
flight through it; a producer that stopped for good is replaced and publishing goes on."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry

from contracts.topics import Topic
from devstack.kafka import Broker
from servicekit.healing import CHECK_SECONDS, ProducerHealer
from servicekit.kafka import aiokafka_producer, make_broker
from servicekit.provision import ensure_topics

pytestmark = pytest.mark.integration


@pytest.fixture
async def healed(kafka: Broker) -> AsyncIterator[tuple[KafkaBroker, CollectorRegistry, str]]:
    topic = Topic(f"it.healing.{uuid.uuid4().hex}", partitions=2, key="point")
    await ensure_topics(kafka.bootstrap, [topic])
    metrics = CollectorRegistry()
    broker = make_broker(kafka.bootstrap, client_id="healing-test", metrics=metrics)
    await broker.start()
    healer = asyncio.create_task(ProducerHealer(broker, metrics).run())
    try:
        yield broker, metrics, topic.name
    finally:
        healer.cancel()
        await asyncio.gather(healer, return_exceptions=True)
        await broker.stop()


def restarts(metrics: CollectorRegistry) -> float:
    return metrics.get_sample_value("kafka_producer_restarts_total") or 0.0


async def test_a_healthy_producer_is_left_in_place_under_sends_to_new_topics(
    healed: tuple[KafkaBroker, CollectorRegistry, str], kafka: Broker
) -> None:
    broker, metrics, topic = healed
    first = aiokafka_producer(broker)
    # Each send to a topic the producer has no metadata for waits on it: a producer closed
    # meanwhile (the healer once swapped every healthy one at start) left such a send waiting
    # forever.
    fresh = [Topic(f"it.healing.{uuid.uuid4().hex}", partitions=1, key="point") for _ in range(6)]
    await ensure_topics(kafka.bootstrap, fresh)
    for new in fresh:
        async with asyncio.timeout(15):
            await broker.publish(b"x", topic=new.name, key=b"k")
        await asyncio.sleep(CHECK_SECONDS / 2)
    async with asyncio.timeout(15):
        await broker.publish(b"x", topic=topic, key=b"k")
    assert aiokafka_producer(broker) is first
    assert restarts(metrics) == 0


async def test_a_producer_that_stopped_for_good_is_replaced(
    healed: tuple[KafkaBroker, CollectorRegistry, str],
) -> None:
    broker, metrics, topic = healed
    await broker.publish(b"before", topic=topic, key=b"k")
    broken = aiokafka_producer(broker)
    broken._sender.sender_task.cancel()  # it can never send again
    async with asyncio.timeout(30):
        while aiokafka_producer(broker) is broken:  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0.05)
        await broker.publish(b"after", topic=topic, key=b"k")
    assert restarts(metrics) == 1
    assert broken._closed
