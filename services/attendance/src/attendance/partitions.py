"""The processor's hold on the heartbeat partitions it owns, in Kafka: one transactional
producer per partition, the group's committed offsets, and the changelog to restore from.

One transactional id per input partition (`<group>.<topic>.<partition>`): whoever starts a
producer with it fences every earlier holder, so an instance that lost the partition (frozen,
cut off, slow to hear of a rebalance) can never again commit a decision for it. aiokafka has
no fencing by group generation; this is the design Kafka Streams called `exactly_once`.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import OffsetAndMetadata

from attendance.restore import Restored, read_changelog
from contracts.topics import HEARTBEATS, MONITOR_CLOCK, POINT_STATUS, STATE_CHANGELOG
from servicekit.kafka import KAFKA_ERRORS, PRODUCER_SETTINGS, send_batches, started

log = logging.getLogger(__name__)
# How long a commit may take before it counts as failed (its outcome is then unknown, and the
# partition is restored from what Kafka says was committed).
COMMIT_TIMEOUT_SECONDS = 15.0
# The broker aborts a transaction left open this long and bumps the producer's epoch, which
# then fails as fenced though no other instance took the partition (aiokafka's default, set
# here because the writer tells the two apart by it).
TRANSACTION_TIMEOUT_SECONDS = 60.0


class Fenced(RuntimeError):
    """Another instance holds the partition now: drop it, never write for it again."""


class TimedOut(KafkaError):  # type: ignore[misc]  # aiokafka's errors are untyped
    """The broker aborted the transaction, open past its timeout (Kafka away that long): the
    partition is still this instance's, to take again from what was committed."""


@dataclass
class Outgoing:
    """What one commit writes for a partition, besides its input offset."""

    changelog: list[tuple[bytes, bytes]] = field(default_factory=list)
    statuses: list[tuple[bytes, bytes]] = field(default_factory=list)
    clock: tuple[bytes, bytes] | None = None


class PartitionWriter:
    """One owned partition's transactional producer."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        partition: int,
        group: str,
        *,
        transaction_timeout: float = TRANSACTION_TIMEOUT_SECONDS,
    ) -> None:
        self._producer = producer
        self._input = TopicPartition(HEARTBEATS.name, partition)
        self._partition = partition
        self._group = group
        self._transaction_timeout = transaction_timeout

    async def commit(self, out: Outgoing, offset: int, metadata: str) -> None:
        """Write `out` and commit `offset` (with `metadata`) as one transaction; Fenced if
        another instance took the partition, any other error if the outcome is unknown."""
        stopped = _sender_error(self._producer)
        if isinstance(stopped, ProducerFenced):
            raise Fenced(f"partition {self._partition}: {stopped}")
        if stopped is not None:
            raise KafkaError(f"partition {self._partition}: its producer stopped ({stopped!r})")
        began = time.monotonic()
        try:
            async with asyncio.timeout(COMMIT_TIMEOUT_SECONDS):
                await self._transaction(out, offset, metadata)
        except ProducerFenced as error:
            # aiokafka's abort of a timed-out commit waits for Kafka, so the commit can
            # outlast its own deadline by as long as Kafka is away.
            if time.monotonic() - began >= self._transaction_timeout:
                raise TimedOut(f"partition {self._partition}: {error}") from error
            raise Fenced(f"partition {self._partition}: {error}") from error

    async def _transaction(self, out: Outgoing, offset: int, metadata: str) -> None:
        producer = self._producer
        pending: list[asyncio.Future[object]] = []
        try:
            # aiokafka's transaction: aborted on an error, unless the producer is past aborting
            # (fenced, its sender stopped), where an abort would fail on its own state machine.
            async with producer.transaction():
                if out.changelog:
                    pending += await send_batches(
                        producer,
                        STATE_CHANGELOG.name,
                        [(k, v, self._partition) for k, v in out.changelog],
                    )
                if out.statuses:
                    pending += await send_batches(
                        producer, POINT_STATUS.name, [(k, v, None) for k, v in out.statuses]
                    )
                if out.clock is not None:
                    pending += await send_batches(
                        producer, MONITOR_CLOCK.name, [(*out.clock, None)]
                    )
                await producer.send_offsets_to_transaction(
                    {self._input: OffsetAndMetadata(offset, metadata)}, self._group
                )
                # aiokafka would commit even if a batch failed: every record must be
                # acknowledged.
                for outcome in await asyncio.gather(*pending, return_exceptions=True):
                    if isinstance(outcome, BaseException):
                        raise outcome
        except BaseException:
            await _settle(pending)
            raise

    async def close(self) -> None:
        with contextlib.suppress(*KAFKA_ERRORS):
            await self._producer.stop()


def _sender_error(producer: AIOKafkaProducer) -> BaseException | None:
    """What stopped the producer's sender, for good (aiokafka exposes no public health of it):
    a fenced producer's sender ends with ProducerFenced."""
    sender = producer._sender.sender_task
    if sender is None or not sender.done() or sender.cancelled():
        return None
    error: BaseException | None = sender.exception()
    return error


async def _settle(pending: Sequence["asyncio.Future[object]"]) -> None:
    """Retrieve every future's outcome, so none is left to be logged as never retrieved."""
    for future in pending:
        if not future.done():
            future.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


class KafkaPartitions:
    """Opens writers, reads committed offsets and restores, on one cluster for one group."""

    def __init__(self, bootstrap: str, group: str, *, client_id: str = "attendance") -> None:
        self._bootstrap = bootstrap
        self._group = group
        self._client_id = client_id
        self._admin: AIOKafkaAdminClient | None = None

    @property
    def group(self) -> str:
        return self._group

    def transactional_id(self, partition: int) -> str:
        return f"{self._group}.{HEARTBEATS.name}.{partition}"

    async def open(self, partition: int) -> PartitionWriter:
        """Start the partition's producer: this fences any earlier holder of the partition
        and ends its open transaction, so what it never committed is never seen."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._client_id}-{partition}",
            transactional_id=self.transactional_id(partition),
            transaction_timeout_ms=int(TRANSACTION_TIMEOUT_SECONDS * 1000),
            **PRODUCER_SETTINGS,
        )
        return PartitionWriter(await started(producer), partition, self._group)

    async def committed(self, partitions: Iterable[int]) -> dict[int, tuple[int | None, str]]:
        """The group's committed offset of each partition (None where it has none yet), with
        the metadata committed beside it."""
        wanted = [TopicPartition(HEARTBEATS.name, p) for p in partitions]
        if not wanted:
            return {}
        admin = await self._admin_client()
        try:
            found = await admin.list_consumer_group_offsets(self._group, partitions=wanted)
        except BaseException:
            await self._drop_admin()
            raise
        answer: dict[int, tuple[int | None, str]] = {}
        for tp in wanted:
            meta = found.get(tp)
            if meta is None or meta.offset < 0:
                answer[tp.partition] = (None, "")
            else:
                answer[tp.partition] = (meta.offset, meta.metadata or "")
        return answer

    async def restore(self, partitions: Iterable[int]) -> tuple[Restored, float]:
        return await read_changelog(self._bootstrap, partitions)

    async def close(self) -> None:
        await self._drop_admin()

    async def _admin_client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._bootstrap, client_id=f"{self._client_id}-offsets"
            )
            await admin.start()
            self._admin = admin
        return self._admin

    async def _drop_admin(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(*KAFKA_ERRORS):
                await admin.close()
