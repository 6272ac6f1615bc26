"""Wiring of the attendance service: heartbeat ingest and the connection-state processor."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from attendance.config import Settings
from attendance.domain import Liveness, Track
from attendance.fast_path import FastHeartbeats
from attendance.ingest import Intake, ingest_body_limits, ingest_metrics, ingest_router
from attendance.metrics import ProcessorMetrics
from attendance.partitions import KafkaPartitions
from attendance.processor import Processor, RebalanceListener, Timing
from attendance.quality import QualityRules
from attendance.records import RecordWriter
from attendance.registry import Registry
from attendance.watermarks import Stamps, Watermarks, instance_name
from contracts.events import (
    Heartbeat,
    IngestWatermark,
    MonitorClock,
    PointStatus,
    SessionSchedule,
)
from contracts.topics import (
    HEARTBEATS,
    MONITOR_CLOCK,
    POINT_STATUS,
    REGISTRY_POINTS,
    REGISTRY_SESSIONS,
    STATE_CHANGELOG,
)
from servicekit.catchup import CatchUp
from servicekit.database import make_engine
from servicekit.heap import settle
from servicekit.http import service_app
from servicekit.kafka import (
    KAFKA_ERRORS,
    DeadLetters,
    RawPublisher,
    make_broker,
    records_of,
    subscribe_whole,
)
from servicekit.registry_feed import apply_registry_records

log = logging.getLogger(__name__)
# How long a stopping processor may take to drain and commit (Kafka away, a commit waits for
# it), well inside the grace a supervisor gives before SIGKILL (15 s in devstack, 30 s in
# Kubernetes): the heartbeats it leaves uncommitted are read again by the next owner.
STOP_SECONDS = 10.0

settings = Settings()
metrics = CollectorRegistry()
broker = make_broker(settings.kafka_bootstrap_servers, client_id="attendance", metrics=metrics)
dead_letters = DeadLetters(
    broker, metrics, [REGISTRY_POINTS.name, REGISTRY_SESSIONS.name, HEARTBEATS.name]
)
registry = Registry()


DEFAULT_LIVENESS = Liveness()


# Per session code, the schedule a liveness was made from: asked for on every heartbeat, it
# is made again only when registration sends the session anew.
_livenesses: dict[str, tuple[SessionSchedule, Liveness]] = {}


def liveness_of(session_code: str) -> Liveness:
    session = registry.sessions.get(session_code)
    if session is None:
        return DEFAULT_LIVENESS
    known = _livenesses.get(session_code)
    if known is not None and known[0] is session:
        return known[1]
    made = Liveness(session.late_after_s, session.disconnected_after_s, session.ends_at.timestamp())
    _livenesses[session_code] = (session, made)
    return made


def expected_of(point_code: str) -> int:
    return registry.expected_learners.get(point_code, 0)


# Declared for the AsyncAPI document; ingest and the processor send through producers of their
# own (the broker's, and one transactional producer per owned partition).
broker.publisher(HEARTBEATS.name, schema=Heartbeat, title="to_heartbeats")
broker.publisher(HEARTBEATS.name, schema=IngestWatermark, title="to_heartbeats_watermarks")
broker.publisher(POINT_STATUS.name, schema=PointStatus, title="to_point_status")
broker.publisher(STATE_CHANGELOG.name, title="to_state_changelog")
broker.publisher(MONITOR_CLOCK.name, schema=MonitorClock, title="to_monitor_clock")
records = RecordWriter(make_engine(settings.database_url))
partitions = KafkaPartitions(settings.kafka_bootstrap_servers, settings.consumer_group)
processor = Processor(
    partitions=partitions,
    dead_letters=dead_letters,
    liveness_of=liveness_of,
    expected_of=expected_of,
    rules=QualityRules(),
    timing=Timing(
        commit_seconds=settings.commit_seconds,
        checkpoint_seconds=settings.checkpoint_seconds,
        outage_after=settings.outage_after_seconds,
        gone_after=settings.ingest_gone_after_seconds,
        stale_after=settings.publish_timeout_seconds,
    ),
    group=settings.consumer_group,
    metrics=ProcessorMetrics(metrics, lambda: held_tracks()),
    changed=records.changed,
)


def held_tracks() -> Iterator[Track]:
    return processor.tracks()


registry_in = subscribe_whole(
    broker, REGISTRY_POINTS.name, REGISTRY_SESSIONS.name, title="on_registry"
)
registry_load = CatchUp()


async def registry_loaded() -> bool:
    """Whether the registry holds all the registry topics held when this instance started:
    before that, an unknown token may only be one still to be read. Only the handler can say
    so (the topics are written without transactions: their last record is the end), unless
    they held nothing."""
    return await registry_load.held_nothing(getattr(registry_in, "consumer", None))


@registry_in
async def on_registry(message: KafkaMessage) -> None:
    """Every instance keeps the whole registry: tokens for ingest, liveness for the processor."""
    await apply_registry_records(registry, records_of(message), dead_letters)
    await registry_load.behind(registry_in.consumer)


def heartbeats_consumer() -> AIOKafkaConsumer:
    """The processor's consumer: offsets go with its transactions, never through the group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.consumer_group,
        client_id="attendance-processor",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        # Up to 20 ms for 64 KiB to gather: with none, each request of the ingest's producer
        # made a fetch of its own (B2: an ingest instance apart took 6,600 requests/s, the
        # broker at 0.52 of a core; with the wait 9,300/s, the broker at 0.44).
        fetch_min_bytes=64 * 1024,
        fetch_max_wait_ms=20,
    )
    consumer.subscribe([HEARTBEATS.name], listener=RebalanceListener(processor))
    return consumer


async def until_registry_loaded() -> None:
    while not await registry_loaded():  # noqa: ASYNC110 (a question to the consumer, not an event)
        await asyncio.sleep(0.1)


async def settle_once_loaded() -> None:
    """The registry read, out of the garbage collector's full passes (`servicekit.heap`)."""
    await until_registry_loaded()
    settle()


async def run_processor() -> None:
    """Once the registry is read (liveness settings are part of every decision), take
    partitions and process them until cancelled; then let them go."""
    await until_registry_loaded()
    consumer = heartbeats_consumer()
    await consumer.start()
    try:
        await processor.run(consumer, settings.max_batch)
    except asyncio.CancelledError:
        raise
    except BaseException:
        log.critical("the processor stopped", exc_info=True)
        raise
    finally:
        await consumer.stop()
        await partitions.close()


stamps = Stamps(time.time())
to_heartbeats = RawPublisher(broker, HEARTBEATS.name, within=settings.publish_timeout_seconds)
watermarks = Watermarks(
    to_heartbeats, stamps, ingest=instance_name(), timeout=settings.publish_timeout_seconds
)
running: list[asyncio.Task[None]] = []


@asynccontextmanager
async def processing(_: FastAPI) -> AsyncIterator[None]:
    background, processing_task = [], None
    # Not among `running`: it ends once it has done its work.
    settling = asyncio.create_task(settle_once_loaded())
    if settings.ingest:
        background.append(asyncio.create_task(watermarks.run(settings.watermark_seconds)))
    if settings.processor:
        processing_task = asyncio.create_task(run_processor())
        background.append(asyncio.create_task(records.run(settings.records_flush_seconds)))
    running.extend([*background, *([processing_task] if processing_task else [])])
    yield
    if processing_task is not None:
        processor.stop()  # it drains and commits its partitions, then ends
        await asyncio.wait({processing_task}, timeout=STOP_SECONDS)
        if not processing_task.done():
            log.warning(
                "Kafka did not take the last commits in %s s: stopping without them, the next "
                "owner of the partitions reads those heartbeats again",
                STOP_SECONDS,
            )
            processing_task.cancel()
        with suppress(Exception, asyncio.CancelledError):  # a failure was logged as critical
            await processing_task
    for task in [*background, settling]:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
    if settings.ingest:
        with suppress(*KAFKA_ERRORS):
            await watermarks.write(final=True)  # the processors need not wait for this instance
    if settings.processor:
        await records.write_once()


async def ready() -> bool:
    """Loaded, and nothing of this instance has stopped (a stopped processor is a bug)."""
    return await registry_loaded() and not any(task.done() for task in running)


api = service_app(
    title="attendance",
    broker=broker,
    metrics=metrics,
    lifespan=processing,
    max_body_per_path=ingest_body_limits(settings),
    on_body_refused=ingest_metrics(metrics).body_refused,
    ready=ready,
)
STATIC = Path(__file__).parent / "static"

if settings.ingest:
    intake = Intake(registry, to_heartbeats, settings, metrics, registry_loaded, stamps)
    api.include_router(ingest_router(intake))
    # A point's own page: a browser is all a room needs (static/point.js).
    api.mount("/static", StaticFiles(directory=STATIC), name="static")

    @api.get("/point", include_in_schema=False)
    def point_page() -> FileResponse:
        return FileResponse(STATIC / "point.html")


# A point's accepted heartbeat is answered ahead of every layer FastAPI adds
# (`attendance.fast_path`); every other request is the API's.
app: ASGIApp = FastHeartbeats(api, intake=intake) if settings.ingest else api
