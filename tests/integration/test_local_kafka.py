"""The devstack launcher starts a real Kafka broker that aiokafka can use end to end."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from contracts.topics import ALL_TOPICS, HEARTBEATS, REGISTRY_POINTS, Topic
from devstack.kafka import Broker
from servicekit.provision import ensure_topics

pytestmark = pytest.mark.integration


async def test_the_project_topics_exist_as_the_design_says(kafka: Broker) -> None:
    topics = ALL_TOPICS
    await ensure_topics(kafka.bootstrap)  # already there: no error
    assert await _partition_counts(kafka.bootstrap, [t.name for t in topics]) == {
        t.name: t.partitions for t in topics
    }
    for topic in topics:
        assert await _cleanup_policy(kafka.bootstrap, topic.name) == topic.config["cleanup.policy"]
    assert await _cleanup_policy(kafka.bootstrap, REGISTRY_POINTS.name) == "compact"
    assert await _cleanup_policy(kafka.bootstrap, HEARTBEATS.name) == "delete"


async def test_a_record_round_trips_through_the_broker(kafka: Broker) -> None:
    topic = Topic(f"it.{uuid.uuid4().hex}", partitions=3, key="session", compacted=True)
    await ensure_topics(kafka.bootstrap, [topic])
    await _produce(kafka.bootstrap, topic.name, key=b"session-1", value=b"started")
    assert await _consume_one(kafka.bootstrap, topic.name) == (b"session-1", b"started")


async def _partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described: list[dict[str, Any]] = await admin.describe_topics(topics)
    finally:
        await admin.close()
    assert all(topic["error_code"] == 0 for topic in described), described
    return {topic["topic"]: len(topic["partitions"]) for topic in described}


async def _cleanup_policy(bootstrap: str, topic: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": None})
        responses = await admin.describe_configs([resource])
    finally:
        await admin.close()
    (_error_code, _message, _type, _name, entries) = responses[0].resources[0]
    values = {entry[0]: entry[1] for entry in entries}
    return str(values["cleanup.policy"])


async def _produce(bootstrap: str, topic: str, *, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def _consume_one(bootstrap: str, topic: str) -> tuple[bytes, bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    assert record.key is not None and record.value is not None
    return record.key, record.value
