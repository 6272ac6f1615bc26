"""The Kafka broker every service uses, set up for durability, and helpers for raw batches."""

import logging
from collections.abc import Sequence
from typing import Any, TypeAlias

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.message import StreamMessage
from prometheus_client import CollectorRegistry, Counter

from contracts.topics import dead_letter_name

log = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord[bytes | None, bytes | None]


def make_broker(
    bootstrap_servers: str, *, client_id: str, registry: CollectorRegistry
) -> KafkaBroker:
    """A broker whose publishes wait for every in-sync replica and are never duplicated by
    retries, and whose subscribers commit offsets only after the handler returned."""
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=10_000,
        ack_policy=AckPolicy.ACK,
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=client_id)],
        log_level=logging.DEBUG,
    )


def subscribe_whole(broker: KafkaBroker, *topics: str, title: str) -> BatchSubscriber:
    """A subscriber that reads `topics` whole, from the beginning, outside any consumer group.

    For compacted topics read as tables: every instance holds all of it, and a fresh instance
    rebuilds exactly the state the others hold.
    """
    return broker.subscriber(
        *topics,
        batch=True,
        group_id=None,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK_FIRST,
        decoder=undecoded,
        title=title,
    )


async def undecoded(message: StreamMessage[Any]) -> Any:
    """Leave the bytes alone: handlers decode each record with its contract, and FastStream's
    default decoder would parse every record's JSON once more for nothing."""
    return message.body


def records_of(message: KafkaMessage) -> Sequence[Record]:
    """The raw records of a batch message (a single record for a non-batch subscriber)."""
    raw: Any = message.raw_message
    return raw if isinstance(raw, tuple) else (raw,)


class DeadLetters:
    """Parks records a consumer cannot read on `<topic>.dlq`, so the consumer keeps going."""

    def __init__(self, broker: KafkaBroker, registry: CollectorRegistry) -> None:
        self._broker = broker
        self._parked = Counter(
            "dead_letters_total",
            "Records a consumer could not read and parked on the dead-letter topic",
            ["topic"],
            registry=registry,
        )

    async def park(self, record: Record, error: Exception) -> None:
        log.warning(
            "dead letter from %s[%s]@%s: %s", record.topic, record.partition, record.offset, error
        )
        self._parked.labels(record.topic).inc()
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
