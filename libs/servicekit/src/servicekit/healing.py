"""A service's producer that stops for good is replaced, so no service stays broken once Kafka
is back.

aiokafka's idempotent producer can never deliver again after some errors, the common one being
`OutOfOrderSequenceNumber` after a broker outage longer than its request timeout: it spends a
sequence number on a batch it expires, and the broker refuses every later batch of that
partition. Its sender may even keep running, so the healer watches what its batches end with
(`WatchedProducer`) as well as the sender itself. A broken producer is replaced by a new one
with the same settings (backing off while Kafka is away), put where the broker's publishers and
`servicekit.kafka.RawPublisher` find it. Batches the broken producer held fail: their senders
see an error (ingest answers 503) and send again.
"""

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)
from faststream.kafka import KafkaBroker
from faststream.kafka.publisher.state import RealProducer
from prometheus_client import CollectorRegistry, Counter
from tenacity import AsyncRetrying, wait_exponential_jitter

from servicekit.kafka import aiokafka_producer, started

log = logging.getLogger(__name__)
CHECK_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 5.0
# What a batch can fail with after which the producer never delivers again.
FATAL = (OutOfOrderSequenceNumber, ProducerFenced, UnknownProducerId, InvalidProducerEpoch)


class WatchedProducer(AIOKafkaProducer):  # type: ignore[misc]
    """An aiokafka producer that notes when one of its batches failed in a way it cannot
    recover from (one callback per record batch, not per record)."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.broken: str | None = None
        accumulator = self._message_accumulator
        append = accumulator._append_batch  # where every record batch is made

        def watched(builder: Any, tp: Any) -> Any:
            batch = append(builder, tp)
            batch.future.add_done_callback(self._check)
            return batch

        accumulator._append_batch = watched

    def _check(self, future: "asyncio.Future[Any]") -> None:
        if future.cancelled() or self.broken is not None:
            return
        error = future.exception()
        if isinstance(error, FATAL):
            self.broken = repr(error)


class ProducerHealer:
    def __init__(self, broker: KafkaBroker, registry: CollectorRegistry) -> None:
        self._broker = broker
        self._restarts = Counter(
            "kafka_producer_restarts_total",
            "Producers replaced after they stopped for good (OutOfOrderSequenceNumber, fenced,"
            " a fatal sender error)",
            registry=registry,
        )

    async def run(self) -> None:
        """Watch the broker's producer until cancelled; the one FastStream started is first
        swapped for a watched one."""
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            try:
                current = aiokafka_producer(self._broker)
            except Exception:
                continue  # not connected (yet, or any more)
            if not isinstance(current, WatchedProducer):
                await self.replace(current, reason=None)
                continue
            reason = stopped_for_good(current)
            if reason is not None:
                await self.replace(current, reason)

    async def replace(self, old: AIOKafkaProducer, reason: str | None) -> None:
        """Put a new watched producer in place of `old`; `reason` None for the first swap."""
        if reason is not None:
            log.warning("Kafka producer stopped for good (%s); starting a new one", reason)
        async for attempt in AsyncRetrying(
            wait=wait_exponential_jitter(multiplier=0.5, max=10, jitter=0.5)
        ):
            with attempt:
                fresh = await self._started()
        self._broker.config.producer._producer = RealProducer(fresh)  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                await old.stop()
        if reason is not None:
            self._restarts.inc()
            log.warning("Kafka producer replaced")

    async def _started(self) -> AIOKafkaProducer:
        # The settings FastStream built the broker's own producer from.
        settings: dict[str, Any] = self._broker._connection_kwargs
        return await started(WatchedProducer(**settings))


def stopped_for_good(producer: AIOKafkaProducer) -> str | None:
    """Why `producer` can never send again, or None while it can."""
    broken = getattr(producer, "broken", None)
    if broken is not None:
        return str(broken)
    sender = producer._sender.sender_task  # aiokafka exposes no public health of its sender
    if sender is None or not sender.done():
        return None
    if sender.cancelled():
        return "its sender was cancelled"
    return repr(sender.exception())
