"""The Kafka broker every service uses, set up for durability, and helpers for raw batches."""

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias, TypeVar

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import IllegalOperation, KafkaError
from aiokafka.partitioner import murmur2
from faststream import AckPolicy
from faststream.exceptions import IncorrectState
from faststream.kafka import KafkaBroker
from faststream.kafka.message import FAKE_CONSUMER, KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.message import StreamMessage
from prometheus_client import CollectorRegistry, Counter
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from contracts.topics import dead_letter_name

log = logging.getLogger(__name__)

# What Kafka's being away or a producer's failing looks like, as opposed to a bug: aiokafka's
# errors, a socket's, a deadline passed, and FastStream's broker not connected (yet, or again).
KAFKA_ERRORS = (KafkaError, IllegalOperation, IncorrectState, OSError, TimeoutError)

Record: TypeAlias = ConsumerRecord[bytes | None, bytes | None]
P = TypeVar("P", bound=AIOKafkaProducer)

# Every producer of the system: it waits for every in-sync replica, writes a record once however
# often it is retried (idempotence), and keeps the order within a partition.
PRODUCER_SETTINGS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 5,
    # A record batch per partition is sent at a time: aiokafka's 16 KiB default holds ~40
    # status records, and a handler's thousands then wait on round trips. Below the broker's
    # 1 MiB message limit.
    "max_batch_size": 512 * 1024,
    "request_timeout_ms": 10_000,
}
# A healthy producer acknowledges or fails a record within its request timeout; a send with no
# answer by this deadline was lost with its producer (closed under it) and is sent again.
ACKNOWLEDGED_WITHIN_SECONDS = 15.0


async def started(producer: P) -> P:
    """`producer`, started; closed again if it could not start (Kafka away)."""
    try:
        await producer.start()
    except BaseException:
        with contextlib.suppress(*KAFKA_ERRORS):
            await producer.stop()
        raise
    return producer


def make_broker(
    bootstrap_servers: str, *, client_id: str, metrics: CollectorRegistry
) -> KafkaBroker:
    """A broker whose publishes wait for every in-sync replica, are written once however
    often they are retried (idempotence), and keep their order within a partition; and whose
    subscribers commit offsets only after the handler returned. A producer that stops for good
    is replaced by `servicekit.healing`."""
    return KafkaBroker(
        # A list: FastStream takes a string for one address, not aiokafka's comma-separated list.
        bootstrap_servers.split(","),
        client_id=client_id,
        **PRODUCER_SETTINGS,
        ack_policy=AckPolicy.ACK,
        middlewares=[KafkaPrometheusMiddleware(registry=metrics, app_name=client_id)],
        # A logger of ours: FastStream's own gives itself a coloured handler on stdout that
        # does not propagate, past the services' one format (`servicekit.logs`).
        logger=logging.getLogger("faststream.kafka"),
        log_level=logging.DEBUG,
    )


def subscribe_whole(
    broker: KafkaBroker, *topics: str, title: str, max_records: int | None = None
) -> BatchSubscriber:
    """A subscriber that reads `topics` whole, from the beginning, outside any consumer group,
    in batches (of at most `max_records`) of raw records that handlers decode themselves.

    For compacted topics read as tables: every instance holds all of it, and a fresh instance
    rebuilds exactly the state the others hold.
    """
    return broker.subscriber(
        *topics,
        batch=True,
        max_records=max_records,
        group_id=None,
        auto_offset_reset="earliest",
        # Statuses are written in the processor's transactions: only committed ones are true.
        isolation_level="read_committed",
        ack_policy=AckPolicy.ACK_FIRST,
        parser=as_batch,
        decoder=undecoded,
        title=title,
    )


async def as_batch(records: tuple[Record, ...], _: object) -> KafkaMessage:
    """The batch as a message, without FastStream's parser: it turns every record's headers
    into a dict, which these handlers never read, for a tenth of a rebuild's time."""
    first, last = records[0], records[-1]
    return KafkaMessage(
        records,
        b"",
        message_id=f"{first.offset}-{last.offset}-{first.timestamp}",
        consumer=FAKE_CONSUMER,
    )


async def undecoded(message: StreamMessage[Any]) -> Any:
    """Leave the bytes alone: handlers decode each record with its contract, and FastStream's
    default decoder would parse every record's JSON once more for nothing."""
    return message.body


# A record to send: key, value, and the partition (None: the key's, as Kafka's default
# partitioner places it).
Outgoing: TypeAlias = tuple[bytes, bytes, int | None]


class RawPublisher:
    """Sends bytes to one topic through the broker's own aiokafka producer (the same acks and
    idempotence), without FastStream's envelope, in record batches that what concurrent
    callers send to a partition share.

    FastStream's publisher makes a message per record (a uuid4 correlation id, headers, its
    middlewares) and aiokafka's `send` a future per record. aiokafka's `send_batch` waits until
    the partition's batch before it has left: a hundred gateways' requests, each sending a batch
    to every partition, queued behind one another past the ingest's deadline (B7 at 100,000
    points: 503s, and rooms that never stopped shown late). So a partition has one batch of
    this publisher's with the producer until Kafka acknowledged it, and one filling here that
    every record sent meanwhile joins, in the order sent; its senders share its
    acknowledgement.

    A batch not acknowledged within `within` seconds of its first record fails (TimeoutError)
    for all its senders at once: one timer a batch, where a deadline of each caller's own was
    a fifth of the ingest's CPU on a point's heartbeat (B2).
    """

    def __init__(
        self, broker: KafkaBroker, topic: str, *, within: float = ACKNOWLEDGED_WITHIN_SECONDS
    ) -> None:
        self._broker = broker
        self.topic = topic
        self._within = within
        # A partition's batches not handed to the producer yet, the last one filling.
        self._waiting: dict[int, deque[_Filling]] = {}
        self._senders: dict[int, asyncio.Task[None]] = {}

    async def partition_count(self) -> int:
        return len(await aiokafka_producer(self._broker).partitions_for(self.topic))

    async def publish_all(self, records: Sequence[Outgoing]) -> list["asyncio.Future[None]"]:
        """Queue the records (a partition of None: the key's); the futures, one per partition
        written to, are done when Kafka acknowledged them all."""
        producer = aiokafka_producer(self._broker)
        known = producer.client.cluster.partitions_for_topic(self.topic)
        if not known:  # metadata not read yet, or Kafka away: waited for, within the deadline
            async with asyncio.timeout(self._within):
                known = await producer.partitions_for(self.topic)
        every = sorted(known)
        joined: dict[int, asyncio.Future[None]] = {}
        for key, value, partition in records:
            if partition is None:
                partition = every[key_partition(key, len(every))]
            waiting = self._waiting.get(partition)
            if waiting is None:
                waiting = self._waiting[partition] = deque()
                if partition not in self._senders:
                    self._senders[partition] = asyncio.create_task(self._send(partition))
            # One past its deadline is not joined (a caller has the whole deadline), yet still
            # sent: a heartbeat answered 503 that lands late is its room's proof of speaking.
            if not waiting or waiting[-1].acknowledged.done():
                waiting.append(_Filling(self._within))
            filling = waiting[-1]
            filling.items.append((key, value))
            joined[partition] = filling.acknowledged
        # A caller cancelled must not cancel what others wait for too.
        return [asyncio.shield(acknowledged) for acknowledged in joined.values()]

    async def _send(self, partition: int) -> None:
        """Hand `partition`'s filling batches to the producer, one after the other, while
        records keep coming."""
        try:
            while waiting := self._waiting.get(partition):
                filling = waiting.popleft()
                if not waiting:
                    del self._waiting[partition]
                try:
                    producer = aiokafka_producer(self._broker)
                    acknowledgements = [
                        await producer.send_batch(batch, self.topic, partition=partition)
                        for batch in _batches(producer, filling.items)
                    ]
                # Its senders answer for it (ingest: 503); a record too large is theirs too.
                except (*KAFKA_ERRORS, ValueError) as error:
                    filling.fail(error)
                    continue
                except BaseException:  # cancelled: nobody must wait for it forever
                    filling.settle(None)
                    raise
                acknowledged = asyncio.gather(*acknowledgements)
                acknowledged.add_done_callback(filling.settle)
                # The next batch waits for Kafka's answer to this one, and so gathers all that
                # is sent meanwhile. Handed at once, it would take the first few records into
                # the next request (aiokafka has one in flight per broker) and leave the rest
                # for the one after. Bounded by its deadline: a producer closed under it never
                # answers.
                await asyncio.wait([filling.acknowledged])
        finally:
            del self._senders[partition]


class _Filling:
    """Records on their way to one partition, and the future of their acknowledgement, failed
    if Kafka has not given it `within` seconds from now."""

    def __init__(self, within: float) -> None:
        self.items: list[tuple[bytes, bytes]] = []
        loop = asyncio.get_running_loop()
        self.acknowledged: asyncio.Future[None] = loop.create_future()
        self._deadline = loop.call_later(
            within, self.fail, TimeoutError(f"records not acknowledged within {within} s")
        )

    def fail(self, error: BaseException) -> None:
        self._deadline.cancel()
        if not self.acknowledged.done():  # else past its deadline: its senders were told
            self.acknowledged.set_exception(error)

    def settle(self, acknowledgements: "asyncio.Future[Any] | None") -> None:
        """Done as `acknowledgements` are, an error if they never will be (None, cancelled):
        a sender waits for Kafka's answer, not for a cancellation of someone else's."""
        if acknowledgements is None or acknowledgements.cancelled():
            self.fail(KafkaError("the records were never sent"))
        elif (error := acknowledgements.exception()) is not None:
            self.fail(error)
        else:
            self._deadline.cancel()
            if not self.acknowledged.done():
                self.acknowledged.set_result(None)


async def send_batches(
    producer: AIOKafkaProducer, topic: str, records: Sequence[Outgoing]
) -> list["asyncio.Future[Any]"]:
    """Queue the records on `producer` as record batches, one per partition while they fit (in
    their order within each partition): a future per batch rather than per record."""
    every = sorted(await producer.partitions_for(topic))
    by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
    for key, value, partition in records:
        if partition is None:
            partition = every[key_partition(key, len(every))]
        by_partition.setdefault(partition, []).append((key, value))
    futures = []
    for partition, items in by_partition.items():
        for batch in _batches(producer, items):
            futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


@functools.lru_cache(maxsize=1 << 18)
def key_partition(key: bytes, partitions: int) -> int:
    """Which of `partitions` Kafka's default partitioner gives `key` (its index among them, in
    order). aiokafka's murmur2 is pure Python, a tenth of the ingest's time; the same points'
    keys come back every few seconds, so it is worked out once per key."""
    index: int = (murmur2(key) & 0x7FFFFFFF) % partitions
    return index


def _batches(producer: AIOKafkaProducer, items: list[tuple[bytes, bytes]]) -> list[Any]:
    """`items` in as few of the producer's record batches as they fit in."""
    batches = [producer.create_batch()]
    for key, value in items:
        if batches[-1].append(key=key, value=value, timestamp=None) is None:  # full
            batches.append(producer.create_batch())
            if batches[-1].append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a record of {len(value)} bytes is larger than a batch")
    # Closed, it leaves at once: aiokafka lingers (`linger_ms`) only on a batch still open, and
    # these are never added to. Records that come meanwhile gather in the next one (B2: a
    # point's heartbeat waited up to 5 ms for nothing, and 64 requests in flight made 4,300
    # requests/s of it).
    batches[-1].close()
    return batches


def aiokafka_producer(broker: KafkaBroker) -> AIOKafkaProducer:
    """The producer a connected broker publishes with (FastStream exposes no public handle)."""
    producer: AIOKafkaProducer = broker.config.producer._producer.producer  # type: ignore[attr-defined]
    return producer


def records_of(message: KafkaMessage) -> Sequence[Record]:
    """The raw records of a batch message (a single record for a non-batch subscriber)."""
    raw: Any = message.raw_message
    # A tuple from aiokafka, a list from FastStream's TestKafkaBroker.
    return raw if isinstance(raw, (tuple, list)) else (raw,)


class DeadLetters:
    """Parks records a consumer cannot read on `<topic>.dlq`, so the consumer keeps going."""

    def __init__(
        self, broker: KafkaBroker, metrics: CollectorRegistry, topics: Iterable[str]
    ) -> None:
        self._broker = broker
        self._parked = Counter(
            "dead_letters_total",
            "Records a consumer could not read and parked on the dead-letter topic",
            ["topic"],
            registry=metrics,
        )
        # A series at 0 for each topic read: Prometheus sees the first dead letter as an
        # increase, which it cannot of a series that appears with it.
        for topic in topics:
            self._parked.labels(topic)

    async def park(self, record: Record, error: Exception) -> None:
        log.warning(
            "dead letter from %s[%s]@%s: %s", record.topic, record.partition, record.offset, error
        )
        self._parked.labels(record.topic).inc()
        # Until Kafka takes it: the consumer has moved past the record, so a dead letter not
        # written is a record lost, and the rest of its batch with it. A producer being replaced
        # (`servicekit.healing`) or Kafka away is waited out.
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(KAFKA_ERRORS),
            wait=wait_exponential_jitter(multiplier=0.1, max=5.0),
            before_sleep=lambda state: log.warning(
                "dead letter not written yet (%r); retrying",
                state.outcome and state.outcome.exception(),
            ),
        ):
            with attempt:
                async with asyncio.timeout(ACKNOWLEDGED_WITHIN_SECONDS):
                    await self._broker.publish(
                        record.value or b"",
                        topic=dead_letter_name(record.topic),
                        key=record.key,
                        headers={
                            "dlq-error": str(error)[:2000],
                            "dlq-topic": record.topic,
                            "dlq-partition": str(record.partition),
                            "dlq-offset": str(record.offset),
                        },
                    )
