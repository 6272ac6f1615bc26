"""How a partition's writer names a fenced transaction: Fenced when another instance took the
partition, TimedOut when the broker aborted it for staying open past its timeout (Kafka away
that long), which leaves the partition this instance's. The real broker's fencing is in
tests/integration/test_partition_writers.py."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import ProducerFenced

from attendance.partitions import Fenced, Outgoing, PartitionWriter, TimedOut


class FencedProducer:
    """A transactional producer whose commit is refused as fenced after `seconds`."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._sender = SimpleNamespace(sender_task=None)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield

    async def send_offsets_to_transaction(self, offsets: Any, group: str) -> None:
        await asyncio.sleep(self._seconds)
        raise ProducerFenced()


async def commit_on(producer: FencedProducer, transaction_timeout: float) -> None:
    writer = PartitionWriter(producer, 3, "g", transaction_timeout=transaction_timeout)
    await writer.commit(Outgoing(), offset=1, metadata="")


async def test_fenced_within_the_transaction_timeout_is_another_instance() -> None:
    with pytest.raises(Fenced):
        await commit_on(FencedProducer(seconds=0.0), transaction_timeout=60.0)


async def test_fenced_past_the_transaction_timeout_is_the_broker_aborting_it() -> None:
    with pytest.raises(TimedOut):
        await commit_on(FencedProducer(seconds=0.2), transaction_timeout=0.1)
