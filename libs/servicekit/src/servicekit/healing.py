"""A service's producer that stops for good is replaced, so no service stays broken once Kafka
is back.

aiokafka's idempotent producer can never deliver again after some errors, the common one being
`OutOfOrderSequenceNumber` after a broker outage longer than its request timeout: it spends a
sequence number on a batch it expires, and the broker refuses every later batch of that
partition. Its sender may even keep running, so the healer watches what its batches end with
(`Watch`) as well as the sender itself. A broken producer is replaced by a new one with the
same settings (backing off while Kafka is away), put where the broker's publishers and
`servicekit.kafka.RawPublisher` find it. Batches the broken producer held fail: their senders
see an error (ingest answers 503) and send again; a send it leaves unanswered ends at its
sender's deadline (`servicekit.kafka.ACKNOWLEDGED_WITHIN_SECONDS`).
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
from faststream.exceptions import IncorrectState
from faststream.kafka import KafkaBroker
from faststream.kafka.publisher.state import RealProducer
from prometheus_client import CollectorRegistry, Counter
from tenacity import AsyncRetrying, wait_exponential_jitter

from servicekit.kafka import KAFKA_ERRORS, aiokafka_producer, started

log = logging.getLogger(__name__)
CHECK_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 5.0
# What a batch can fail with after which the producer never delivers again.
FATAL = (OutOfOrderSequenceNumber, ProducerFenced, UnknownProducerId, InvalidProducerEpoch)


class Watch:
    """Notes when one of `producer`'s record batches failed in a way it cannot recover from
    (one callback per record batch, not per record), installed on the producer where it
    stands: replacing a healthy producer only to watch it would close it under the sends in
    flight (one waiting for a topic's metadata then waits forever)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.broken: str | None = None
        accumulator = producer._message_accumulator
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

    def stopped_for_good(self) -> str | None:
        """Why the producer can never send again, or None while it can."""
        if self.broken is not None:
            return self.broken
        sender = self.producer._sender.sender_task  # aiokafka exposes no public health of it
        if sender is None or not sender.done():
            return None
        if sender.cancelled():
            return "its sender was cancelled"
        return repr(sender.exception())


class ProducerHealer:
    def __init__(self, broker: KafkaBroker, metrics: CollectorRegistry) -> None:
        self._broker = broker
        self._restarts = Counter(
            "kafka_producer_restarts_total",
            "Producers replaced after they stopped for good (OutOfOrderSequenceNumber, fenced,"
            " a fatal sender error)",
            registry=metrics,
        )

    async def run(self) -> None:
        """Watch the broker's producer until cancelled, replacing it when it stopped for good."""
        watch: Watch | None = None
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            try:
                current = aiokafka_producer(self._broker)
            except IncorrectState:
                continue  # not connected (yet, or any more)
            if watch is None or watch.producer is not current:
                watch = Watch(current)  # the one FastStream started, or started again
            reason = watch.stopped_for_good()
            if reason is not None:
                watch = await self.replace(current, reason)

    async def replace(self, old: AIOKafkaProducer, reason: str) -> Watch:
        """Put a new, watched producer in place of `old`, which is closed."""
        log.warning("Kafka producer stopped for good (%s); starting a new one", reason)
        async for attempt in AsyncRetrying(
            wait=wait_exponential_jitter(multiplier=0.5, max=10, jitter=0.5)
        ):
            with attempt:
                fresh = await self._started()
        self._broker.config.producer._producer = RealProducer(fresh.producer)  # type: ignore[attr-defined]
        with contextlib.suppress(*KAFKA_ERRORS):
            async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                await old.stop()
        self._restarts.inc()
        log.warning("Kafka producer replaced")
        return fresh

    async def _started(self) -> Watch:
        # The settings FastStream built the broker's own producer from; watched before it
        # makes its first batch.
        settings: dict[str, Any] = self._broker._connection_kwargs
        watch = Watch(AIOKafkaProducer(**settings))
        await started(watch.producer)
        return watch
