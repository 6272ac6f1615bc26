"""The processor's per-partition transactional writers on the real broker: the instance that
opens a partition's writer fences the one before, whose commits then fail as Fenced, every
time, never as a broken state machine (a fenced producer cannot even abort), and only the
current writer's transaction is seen by a read_committed reader."""

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from attendance.partitions import Fenced, KafkaPartitions, Outgoing
from contracts.topics import STATE_CHANGELOG
from devstack.kafka import Broker

pytestmark = pytest.mark.integration
PARTITION = 3


@pytest.fixture
async def partitions(kafka: Broker) -> AsyncIterator[KafkaPartitions]:
    held = KafkaPartitions(kafka.bootstrap, f"it-writers-{uuid.uuid4().hex[:8]}")
    yield held
    await held.close()


def written(run: str, by: str) -> Outgoing:
    return Outgoing(changelog=[(f"{run}/{by}".encode(), b"{}")])


async def changelog_keys(bootstrap: str, run: str) -> list[str]:
    prefix = run.encode()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(STATE_CHANGELOG.name, PARTITION)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        keys: list[str] = []
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=1000)).values():
                keys += [r.key.decode() for r in records if r.key and r.key.startswith(prefix)]
        return keys
    finally:
        await consumer.stop()


async def test_a_fenced_writer_fails_as_fenced_every_time_and_writes_nothing(
    kafka: Broker, partitions: KafkaPartitions
) -> None:
    run = uuid.uuid4().hex
    old = await partitions.open(PARTITION)
    await old.commit(written(run, "old-before"), offset=1, metadata="")
    new = await partitions.open(PARTITION)  # another instance takes the partition
    try:
        for attempt in ("first", "again"):
            with pytest.raises(Fenced):
                await old.commit(written(run, f"old-{attempt}"), offset=2, metadata="")
        await new.commit(written(run, "new"), offset=3, metadata="m")
    finally:
        await old.close()
        await new.close()
    assert await changelog_keys(kafka.bootstrap, run) == [f"{run}/old-before", f"{run}/new"]
    assert await partitions.committed([PARTITION]) == {PARTITION: (3, "m")}
