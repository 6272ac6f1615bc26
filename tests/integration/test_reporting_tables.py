"""Reporting's tables count as loaded on a real broker when a read-committed topic ends with a
transaction's commit marker that comes with no record (`reporting.catchup.Tables`)."""

import asyncio
import contextlib
import uuid
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts.topics import Topic
from devstack.kafka import Broker
from reporting.catchup import Tables
from servicekit.provision import ensure_topics

pytestmark = pytest.mark.integration
RECORDS = 7


@dataclass
class Subscriber:
    """What `Tables` reads of a FastStream subscriber."""

    consumer: AIOKafkaConsumer


async def test_a_table_ending_with_a_commit_marker_is_loaded_without_another_record(
    kafka: Broker,
) -> None:
    topic = Topic(f"it.{uuid.uuid4().hex}", partitions=1, key="point", compacted=True)
    await ensure_topics(kafka.bootstrap, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, transactional_id=topic.name)
    await producer.start()
    try:
        async with producer.transaction():
            for n in range(RECORDS):
                await producer.send(topic.name, b"status", key=b"point-%d" % n, partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic.name, 0)])
        tables = Tables(Subscriber(consumer))
        # A handler's batch as the subscriber hands it out: the whole transaction, to its size.
        batch = await consumer.getmany(timeout_ms=10_000, max_records=RECORDS)
        assert sum(map(len, batch.values())) == RECORDS
        assert await tables.loading(), "the marker is still to read: the handler sees it behind"
        settled = asyncio.Event()
        polling = asyncio.create_task(_poll(consumer))  # as the subscriber goes on fetching
        try:
            await asyncio.wait_for(tables.settle_once_loaded(settled.set, 0.05), timeout=30)
        finally:
            polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await polling
        assert settled.is_set() and not await tables.loading()
    finally:
        await consumer.stop()


async def _poll(consumer: AIOKafkaConsumer) -> None:
    while True:
        assert not await consumer.getmany(timeout_ms=100), "no record after the transaction"
