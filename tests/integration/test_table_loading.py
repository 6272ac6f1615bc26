"""A table read whole through FastStream counts as loaded only once its handler applied the last
record, as attendance's ingest asks before it may refuse a token as unknown
(`servicekit.catchup.CatchUp`), on a real broker.

FastStream takes each batch from the consumer (its positions move past it) before the handler
applies it; a handler that waits on something (parking a dead letter) leaves that batch
handed out and not applied, and a restarted ingest once told a known point 401 there.
"""

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from contracts.topics import Topic
from devstack.kafka import Broker
from servicekit.catchup import CatchUp
from servicekit.kafka import records_of, subscribe_whole
from servicekit.provision import ensure_topics

pytestmark = pytest.mark.integration
RECORDS = 20_000
BATCH = 2_000


async def new_table(kafka: Broker, records: int) -> Topic:
    topic = Topic(f"it.{uuid.uuid4().hex}", partitions=1, key="point", compacted=True)
    await ensure_topics(kafka.bootstrap, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, linger_ms=20)
    await producer.start()
    try:
        for n in range(records):
            await producer.send(topic.name, b"row", key=b"point-%d" % n, partition=0)
        await producer.flush()
    finally:
        await producer.stop()
    return topic


async def test_a_table_is_loaded_only_once_its_last_batch_is_applied(kafka: Broker) -> None:
    topic = await new_table(kafka, RECORDS)
    broker = KafkaBroker(kafka.bootstrap)
    table = subscribe_whole(broker, topic.name, title="table", max_records=BATCH)
    load = CatchUp()
    applied: list[int] = []
    looked = asyncio.Event()  # readiness was asked

    @table
    async def on_rows(message: KafkaMessage) -> None:
        # As a handler parking a dead letter waits for Kafka; here until readiness has been
        # asked all through the wait at least once, so every batch meets the question.
        for _ in range(2):
            looked.clear()
            await looked.wait()
        applied.extend(record.offset for record in records_of(message))
        await load.behind(table.consumer)

    early, handed_out_ahead = [], 0
    partition = TopicPartition(topic.name, 0)
    await broker.start()
    try:
        async with asyncio.timeout(60):
            while len(applied) < RECORDS:
                consumer = table.consumer
                if consumer is not None and consumer.assignment():
                    handed_out_ahead += await consumer.position(partition) > len(applied)
                if await load.held_nothing(consumer) and len(applied) < RECORDS:
                    early.append(len(applied))
                looked.set()
                await asyncio.sleep(0)
    finally:
        await broker.stop()
    # Each batch was handed out before it was applied (what a loader trusting positions
    # alone would take for loaded)...
    assert handed_out_ahead >= RECORDS // BATCH
    # ...and readiness never falls in it.
    assert early == []
    assert load.done


async def test_an_empty_table_is_loaded_without_a_handler(kafka: Broker) -> None:
    topic = await new_table(kafka, 0)
    broker = KafkaBroker(kafka.bootstrap)
    table = subscribe_whole(broker, topic.name, title="table")

    @table
    async def on_rows(message: KafkaMessage) -> None:
        raise AssertionError("an empty topic hands out nothing")

    load = CatchUp()
    await broker.start()
    try:
        async with asyncio.timeout(30):
            while not await load.held_nothing(table.consumer):  # noqa: ASYNC110 (a question to the consumer, not an event)
                await asyncio.sleep(0.05)
    finally:
        await broker.stop()
    assert load.done
