"""Wiring of the attendance service: heartbeat ingest and the connection-state processor."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry

from attendance.config import Settings
from attendance.domain import Liveness
from attendance.ingest import ingest_router
from attendance.processor import Processor
from attendance.tracker import Tracker
from contracts.events import Heartbeat, PointStatus
from contracts.registry import RegistryTable
from contracts.topics import HEARTBEATS, POINT_STATUS, REGISTRY_POINTS, REGISTRY_SESSIONS
from servicekit.http import service_app
from servicekit.kafka import DeadLetters, make_broker, records_of, subscribe_whole
from servicekit.registry_feed import apply_registry_records

settings = Settings()
metrics = CollectorRegistry()
broker = make_broker(settings.kafka_bootstrap_servers, client_id="attendance", registry=metrics)
dead_letters = DeadLetters(broker, metrics)
registry = RegistryTable()


def liveness_of(session_code: str) -> Liveness:
    session = registry.sessions.get(session_code)
    if session is None:
        return Liveness()
    return Liveness(session.late_after_s, session.disconnected_after_s)


to_heartbeats = broker.publisher(HEARTBEATS.name, schema=Heartbeat, title="to_heartbeats")
to_point_status = broker.publisher(POINT_STATUS.name, schema=PointStatus, title="to_point_status")
processor = Processor(Tracker(liveness_of), to_point_status, dead_letters)


@subscribe_whole(broker, REGISTRY_POINTS.name, REGISTRY_SESSIONS.name, title="on_registry")
async def on_registry(message: KafkaMessage) -> None:
    """Every instance keeps the whole registry: tokens for ingest, liveness for the processor."""
    await apply_registry_records(registry, records_of(message), dead_letters)


@broker.subscriber(
    HEARTBEATS.name,
    batch=True,
    group_id=settings.consumer_group,
    auto_offset_reset="earliest",
    max_records=settings.max_batch,
    ack_policy=AckPolicy.NACK_ON_ERROR,
    title="on_heartbeats",
)
async def on_heartbeats(message: KafkaMessage) -> None:
    await processor.on_records(records_of(message))


@asynccontextmanager
async def clock(_: FastAPI) -> AsyncIterator[None]:
    ticking = asyncio.create_task(processor.run_clock(settings.tick_seconds))
    yield
    ticking.cancel()
    with suppress(asyncio.CancelledError):
        await ticking


app = service_app(title="attendance", broker=broker, registry=metrics, lifespan=clock)
app.include_router(ingest_router(registry, to_heartbeats, settings.publish_timeout_seconds))
