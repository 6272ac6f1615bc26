"""The raw publisher on the real broker: what concurrent callers send to a partition shares
record batches, lands once each in the order sent, a caller that gives up leaves the others'
acknowledgements alone, and a batch Kafka does not take in time fails for all its callers."""

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry

from contracts.topics import Topic
from devstack.kafka import Broker
from servicekit.kafka import Outgoing, RawPublisher, aiokafka_producer, make_broker
from servicekit.provision import ensure_topics

pytestmark = pytest.mark.integration
PARTITIONS = 12
CALLERS = 200  # a tick's gateway requests at 100,000 points
BURSTS = 20


@pytest.fixture
async def published(kafka: Broker) -> AsyncIterator[tuple[KafkaBroker, str, Counter[int]]]:
    """A connected broker, a fresh topic, and how many record batches its producer was handed
    for each partition."""
    topic = Topic(f"it.raw.{uuid.uuid4().hex}", partitions=PARTITIONS, key="point")
    await ensure_topics(kafka.bootstrap, [topic])
    broker = make_broker(kafka.bootstrap, client_id="raw-test", metrics=CollectorRegistry())
    await broker.start()
    handed: Counter[int] = Counter()
    producer = aiokafka_producer(broker)
    send_batch = producer.send_batch

    async def counted(batch: Any, topic: str, *, partition: int) -> Any:
        handed[partition] += 1
        return await send_batch(batch, topic, partition=partition)

    producer.send_batch = counted
    try:
        yield broker, topic.name, handed
    finally:
        await broker.stop()


def request(caller: int) -> list[Outgoing]:
    """A gateway request's records: one to each partition, and one by key."""
    records: list[Outgoing] = [
        (f"gw-{caller}".encode(), f"{caller}:{partition}".encode(), partition)
        for partition in range(PARTITIONS)
    ]
    return [*records, (f"point-{caller}".encode(), f"{caller}:key".encode(), None)]


async def read_back(kafka: Broker, topic: str, expected: int) -> dict[int, list[bytes]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    by_partition: dict[int, list[bytes]] = {}
    try:
        async with asyncio.timeout(30):
            while sum(map(len, by_partition.values())) < expected:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    by_partition.setdefault(tp.partition, []).extend(
                        record.value or b"" for record in records
                    )
    finally:
        await consumer.stop()
    return by_partition


async def test_callers_share_batches_and_each_record_lands_once_in_the_order_handed(
    published: tuple[KafkaBroker, str, Counter[int]], kafka: Broker
) -> None:
    broker, topic, handed = published
    publisher = RawPublisher(broker, topic)
    await publisher.partition_count()  # metadata known: handing records over never waits
    pending = []
    # Bursts of callers, as a tick's requests come, with batches in flight between them.
    for burst in range(BURSTS):
        for caller in range(burst * CALLERS // BURSTS, (burst + 1) * CALLERS // BURSTS):
            pending += await publisher.publish_all(request(caller))
        await asyncio.sleep(0.002)
    async with asyncio.timeout(30):
        await asyncio.gather(*pending)

    written = await read_back(kafka, topic, CALLERS * (PARTITIONS + 1))
    every = [value for values in written.values() for value in values]
    assert len(every) == len(set(every)) == CALLERS * (PARTITIONS + 1)  # each once
    for partition in range(PARTITIONS):
        # Handed over before another caller's, written before it: what the ingest's
        # watermarks rely on.
        addressed = [value for value in written[partition] if not value.endswith(b":key")]
        assert addressed == [f"{caller}:{partition}".encode() for caller in range(CALLERS)]
        # A burst's callers join one batch; a batch a caller had them queue behind one another.
        assert handed[partition] <= BURSTS


async def test_a_caller_that_gives_up_leaves_the_others_acknowledgements(
    published: tuple[KafkaBroker, str, Counter[int]],
) -> None:
    broker, topic, _ = published
    publisher = RawPublisher(broker, topic)
    quitter = await publisher.publish_all(request(0))
    staying = await publisher.publish_all(request(1))
    for future in quitter:
        future.cancel()
    async with asyncio.timeout(15):
        await asyncio.gather(*staying)


async def test_a_batch_kafka_does_not_take_in_time_fails_and_is_not_joined_after(
    published: tuple[KafkaBroker, str, Counter[int]], kafka: Broker
) -> None:
    broker, topic, _ = published
    publisher = RawPublisher(broker, topic, within=0.3)
    await publisher.partition_count()
    producer = aiokafka_producer(broker)
    send_batch, stalled = producer.send_batch, asyncio.Event()

    async def stalling(batch: Any, topic: str, *, partition: int) -> Any:
        await stalled.wait()  # as aiokafka does while the batch before has not left
        return await send_batch(batch, topic, partition=partition)

    producer.send_batch = stalling
    # On each of two partitions, a batch stuck with the producer and one filling behind it.
    handed = await publisher.publish_all([(b"k", b"handed", 0), (b"k", b"handed", 1)])
    await asyncio.sleep(0)
    waited = await publisher.publish_all([(b"k", b"waited", 0), (b"k", b"waited", 1)])
    async with asyncio.timeout(10):
        for futures in (handed, waited):
            for future in futures:
                with pytest.raises(TimeoutError):
                    await future
    # A batch past its deadline is not joined: a caller after it has the whole deadline.
    fresh = await publisher.publish_all([(b"k", b"fresh", 1)])
    assert not any(future.done() for future in fresh)
    stalled.set()
    async with asyncio.timeout(10):
        await asyncio.gather(*fresh)
        await asyncio.gather(*await publisher.publish_all([(b"k", b"last", 0)]))

    # All of it lands still, in the order handed over, as a heartbeat answered 503 did before:
    # Kafka may take what its senders were told it had not.
    written = await read_back(kafka, topic, 6)
    assert written == {0: [b"handed", b"waited", b"last"], 1: [b"handed", b"waited", b"fresh"]}
