"""Wiring of the reporting service: fold the compacted topics into live totals, serve them."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry

from contracts.codec import ContractError, decode, encode
from contracts.events import PointRegistration, PointState, PointStatus, SessionSchedule, Totals
from contracts.topics import (
    POINT_STATUS,
    REGISTRY_POINTS,
    REGISTRY_SESSIONS,
    TOTALS,
    session_key,
)
from reporting.api import reporting_router
from reporting.config import Settings
from reporting.incidents import IncidentDetector
from reporting.live import PRESENT, LiveTotals, totals_of
from reporting.metrics import TotalsCollector
from reporting.timeline import TimelineSample, make_engine, peaks_of, save
from servicekit.http import service_app
from servicekit.kafka import DeadLetters, Record, make_broker, records_of, subscribe_whole

log = logging.getLogger(__name__)
settings = Settings()
metrics = CollectorRegistry()
broker = make_broker(settings.kafka_bootstrap_servers, client_id="reporting", registry=metrics)
dead_letters = DeadLetters(broker, metrics)
live = LiveTotals()
detector = IncidentDetector()
engine = make_engine(settings.database_url)
metrics.register(TotalsCollector(live, detector))
to_totals = broker.publisher(TOTALS.name, schema=Totals, title="to_reporting_totals")
STATIC = Path(__file__).parent / "static"


@subscribe_whole(broker, REGISTRY_POINTS.name, REGISTRY_SESSIONS.name, title="on_registry")
async def on_registry(message: KafkaMessage) -> None:
    for record in records_of(message):
        try:
            _apply_registry(record, datetime.now(UTC))
        except ContractError as error:
            await dead_letters.park(record, error)


@subscribe_whole(broker, POINT_STATUS.name, title="on_point_status")
async def on_point_status(message: KafkaMessage) -> None:
    for record in records_of(message):
        try:
            status = decode(PointStatus, record.value)
        except ContractError as error:
            await dead_letters.park(record, error)
            continue
        before = live.statuses.get((status.session_code, status.point_code))
        live.put_status(status, status.last_heartbeat_at or status.since)
        _watch_for_incidents(before, status)


def _apply_registry(record: Record, now: datetime) -> None:
    code = (record.key or b"").decode(errors="replace")
    if record.topic == REGISTRY_POINTS.name:
        if record.value is None:
            live.remove_point(code, now)
        else:
            live.put_point(decode(PointRegistration, record.value), now)
    elif record.value is None:
        live.remove_session(code)
    else:
        session = decode(SessionSchedule, record.value)
        live.put_session(session, now)
        _restore_peaks(session.code)


def _restore_peaks(session_code: str) -> None:
    view = live.view(session_code)
    if view is None:
        return
    try:
        connected, learners = peaks_of(engine, session_code)
    except Exception:
        return  # no timeline table yet
    view.peak_connected.value = max(view.peak_connected.value, connected)
    view.peak_learners.value = max(view.peak_learners.value, learners)


def _watch_for_incidents(before: PointStatus | None, after: PointStatus) -> None:
    point = live.registry.points.get(after.point_code)
    if point is None:
        return
    if after.state is PointState.DISCONNECTED and (before is None or before.state in PRESENT):
        groups = [
            (after.session_code, "province", point.province_code or "--"),
            (after.session_code, "channel", point.channel.value),
        ]
        detector.dropped(after.session_code, after.point_code, groups, after.since)
    elif after.state in PRESENT:
        detector.back(after.session_code, after.point_code)


async def publish_snapshots(every: float) -> None:
    """At most one snapshot a second per session on `reporting.totals`, only when it changed."""
    published: dict[str, int] = {}
    while True:
        await asyncio.sleep(every)
        for code, view in list(live.sessions.items()):
            if published.get(code) == view.version:
                continue
            try:
                totals = totals_of(code, view, datetime.now(UTC))
                await to_totals.publish(encode(totals), key=session_key(code))
                published[code] = view.version
            except Exception as error:
                log.warning("totals snapshot of %s not published (%s)", code, error)


async def sample_timeline(every: float) -> None:
    while True:
        await asyncio.sleep(every)
        now = datetime.now(UTC).replace(microsecond=0)
        samples = [
            TimelineSample(
                session_code=code,
                at=now,
                registered=v.overall.registered,
                connected=v.overall.connected,
                late=v.overall.states[PointState.LATE],
                disconnected=v.overall.states[PointState.DISCONNECTED],
                learners_present=v.overall.learners_present,
                learners_expected=v.overall.learners_expected,
            )
            for code, v in list(live.sessions.items())
            if _running(code, now)
        ]
        try:
            await asyncio.to_thread(save, engine, samples)
        except Exception as error:
            log.warning("timeline samples not saved (%s)", error)


async def watch_incidents(every: float) -> None:
    while True:
        await asyncio.sleep(every)
        registered = {
            (code, kind, group): tally.registered
            for code, view in list(live.sessions.items())
            for kind, groups in (("province", view.provinces), ("channel", view.channels))
            for group, tally in groups.items()
        }
        opened, _ = detector.tick(datetime.now(UTC), registered)
        for incident in opened:
            log.warning(
                "incident: %s %s of %s, %d points down",
                incident.kind,
                incident.group,
                incident.session_code,
                len(incident.points),
            )


def _running(code: str, now: datetime) -> bool:
    session = live.registry.sessions.get(code)
    return session is not None and session.starts_at <= now <= session.ends_at


@asynccontextmanager
async def background(_: FastAPI) -> AsyncIterator[None]:
    from sqlmodel import SQLModel

    await asyncio.to_thread(SQLModel.metadata.create_all, engine)
    tasks = [
        asyncio.create_task(publish_snapshots(settings.snapshot_seconds)),
        asyncio.create_task(sample_timeline(settings.timeline_seconds)),
        asyncio.create_task(watch_incidents(1.0)),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with suppress(asyncio.CancelledError):
            await task


app = service_app(title="reporting", broker=broker, registry=metrics, lifespan=background)
app.include_router(reporting_router(live, detector, engine, settings.viewer_token))
app.mount("/static", StaticFiles(directory=STATIC), name="static")


@app.get("/", include_in_schema=False)
def dashboard() -> FileResponse:
    return FileResponse(STATIC / "index.html")
