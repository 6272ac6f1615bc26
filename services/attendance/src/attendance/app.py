"""Wiring of the attendance service: heartbeat ingest and the connection-state processor."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import cache

from fastapi import FastAPI
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.message import KafkaAckableMessage
from prometheus_client import CollectorRegistry

from attendance.config import Settings
from attendance.domain import Liveness
from attendance.ingest import ingest_body_limits, ingest_metrics, ingest_router
from attendance.metrics import ProcessorMetrics
from attendance.processor import Processor, RebalanceListener
from attendance.quality import QualityRules
from attendance.records import RecordWriter, make_engine
from contracts.events import Heartbeat, PointStatus
from contracts.registry import RegistryTable
from contracts.topics import (
    HEARTBEATS,
    POINT_STATUS,
    REGISTRY_POINTS,
    REGISTRY_SESSIONS,
    STATE_CHANGELOG,
)
from servicekit.catchup import CatchUp
from servicekit.http import service_app
from servicekit.kafka import (
    DeadLetters,
    RawPublisher,
    Record,
    make_broker,
    records_of,
    subscribe_whole,
    undecoded,
)
from servicekit.registry_feed import apply_registry_records

settings = Settings()
metrics = CollectorRegistry()
broker = make_broker(settings.kafka_bootstrap_servers, client_id="attendance", registry=metrics)
dead_letters = DeadLetters(broker, metrics)
registry = RegistryTable()


DEFAULT_LIVENESS = Liveness()


def liveness_of(session_code: str) -> Liveness:
    session = registry.sessions.get(session_code)
    if session is None:
        return DEFAULT_LIVENESS
    return _liveness(session.late_after_s, session.disconnected_after_s)


@cache
def _liveness(late_after: float, disconnected_after: float) -> Liveness:
    """One object per distinct setting: asked for twice per heartbeat."""
    return Liveness(late_after, disconnected_after)


def expected_of(point_code: str) -> int:
    point = registry.points.get(point_code)
    return 0 if point is None else point.expected_learners


# Declared for the AsyncAPI document; ingest sends through the same producer directly.
broker.publisher(HEARTBEATS.name, schema=Heartbeat, title="to_heartbeats")
# Declared for the AsyncAPI document; the processor sends through the same producer directly.
broker.publisher(POINT_STATUS.name, schema=PointStatus, title="to_point_status")
broker.publisher(STATE_CHANGELOG.name, title="to_state_changelog")
processor = Processor(
    bootstrap=settings.kafka_bootstrap_servers,
    statuses=RawPublisher(broker, POINT_STATUS.name),
    changelog=RawPublisher(broker, STATE_CHANGELOG.name),
    dead_letters=dead_letters,
    liveness_of=liveness_of,
    expected_of=expected_of,
    rules=QualityRules(),
    grace=settings.clock_grace_seconds,
)
processor.metrics = ProcessorMetrics(metrics, processor.tracks)
records = RecordWriter(make_engine(settings.database_url))
processor.changed = records.changed


registry_in = subscribe_whole(
    broker, REGISTRY_POINTS.name, REGISTRY_SESSIONS.name, title="on_registry"
)
registry_load = CatchUp()


async def registry_loaded() -> bool:
    """Whether the registry holds all the registry topics held when this instance started:
    before that, an unknown token may only be one still to be read."""
    await registry_load.behind(getattr(registry_in, "consumer", None))
    return registry_load.done


@registry_in
async def on_registry(message: KafkaMessage) -> None:
    """Every instance keeps the whole registry: tokens for ingest, liveness for the processor."""
    await apply_registry_records(registry, records_of(message), dead_letters)


async def as_batch(records: tuple[Record, ...], _: object) -> KafkaAckableMessage:
    """The batch as a message that commits (or rewinds) with the group's consumer, without
    FastStream's parser: it turns every record's headers into a dict, which the processor
    never reads."""
    first, last = records[0], records[-1]
    return KafkaAckableMessage(
        records,
        b"",
        message_id=f"{first.offset}-{last.offset}-{first.timestamp}",
        consumer=heartbeats.consumer,
    )


if settings.processor:
    heartbeats = broker.subscriber(
        HEARTBEATS.name,
        batch=True,
        group_id=settings.consumer_group,
        auto_offset_reset="earliest",
        max_records=settings.max_batch,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        listener=RebalanceListener(processor),
        parser=as_batch,
        decoder=undecoded,
        title="on_heartbeats",
    )
    processor.consumer = lambda: heartbeats.consumer

    @heartbeats
    async def on_heartbeats(message: KafkaMessage) -> None:
        await processor.on_records(records_of(message))


@asynccontextmanager
async def processing(_: FastAPI) -> AsyncIterator[None]:
    if not settings.processor:
        yield
        return
    tasks = [
        asyncio.create_task(processor.run_clock(settings.tick_seconds)),
        asyncio.create_task(records.run(settings.records_flush_seconds)),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with suppress(asyncio.CancelledError):
            await task
    await records.write_once()


app = service_app(
    title="attendance",
    broker=broker,
    registry=metrics,
    lifespan=processing,
    max_body_per_path=ingest_body_limits(settings),
    on_body_refused=ingest_metrics(metrics).body_refused,
    ready=registry_loaded,
)
if settings.ingest:
    to_heartbeats = RawPublisher(broker, HEARTBEATS.name)
    app.include_router(
        ingest_router(registry, to_heartbeats, settings, metrics, loaded=registry_loaded)
    )
