"""Wiring of the reporting service: fold the compacted topics into live totals, serve them."""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError

from contracts.codec import ContractError, decode, encode
from contracts.events import AccountGrant, DeskAction, MonitorClock, SessionSchedule, Totals
from contracts.topics import (
    DESK_ACTIONS,
    MONITOR_CLOCK,
    POINT_STATUS,
    REGISTRY_ACCOUNTS,
    REGISTRY_POINTS,
    REGISTRY_SESSIONS,
    TOTALS,
    action_key,
    session_key,
)
from contracts.wire import read_point, read_status
from reporting.access import Accounts
from reporting.actions import DeskLog
from reporting.api import STATIC, reporting_router
from reporting.catchup import Tables
from reporting.config import Settings
from reporting.desk import TOKEN_COOKIE, desk_router, identifying, kept
from reporting.history import PointHistory
from reporting.incidents import IncidentDetector
from reporting.live import LiveTotals, totals_of
from reporting.metrics import TotalsCollector
from reporting.snapshots import last_totals
from reporting.timeline import peaks_of, sampled, save
from reporting.webhooks import CLOSED, OPENED, WebhookMetrics, Webhooks
from servicekit.database import make_engine
from servicekit.heap import loading, settle
from servicekit.http import service_app
from servicekit.kafka import (
    ACKNOWLEDGED_WITHIN_SECONDS,
    KAFKA_ERRORS,
    DeadLetters,
    Record,
    make_broker,
    records_of,
    subscribe_whole,
)
from servicekit.logins import Logins

log = logging.getLogger(__name__)
settings = Settings()
metrics = CollectorRegistry()
broker = make_broker(settings.kafka_bootstrap_servers, client_id="reporting", metrics=metrics)
dead_letters = DeadLetters(
    broker,
    metrics,
    [
        REGISTRY_POINTS.name,
        REGISTRY_SESSIONS.name,
        REGISTRY_ACCOUNTS.name,
        POINT_STATUS.name,
        MONITOR_CLOCK.name,
        DESK_ACTIONS.name,
    ],
)
accounts = Accounts()
desk = DeskLog()
history = PointHistory()
live = LiveTotals(unknown_after=settings.unknown_after_seconds)
detector = IncidentDetector()
engine = make_engine(settings.database_url)
metrics.register(TotalsCollector(live, detector))
to_totals = broker.publisher(TOTALS.name, schema=Totals, title="to_reporting_totals")
to_actions = broker.publisher(DESK_ACTIONS.name, schema=DeskAction, title="to_desk_actions")
to_webhooks = httpx.AsyncClient(timeout=10, trust_env=False)
webhooks = Webhooks(
    settings.webhook_urls, settings.webhook_secret or "", to_webhooks, WebhookMetrics(metrics)
)


# Batches of at most 500 records: a rebuild keeps a record per point, and a smaller batch
# leaves fewer transient objects (raw records, their bytes) between those kept, so the heap
# does not stay fragmented at twice the size of what it holds (RSS 1.5 KB a point against
# 0.9 KB in the 100,000-point rebuild, at the same CPU time).
BATCH_RECORDS = 500


def subscribe_table(*topics: str, title: str) -> BatchSubscriber:
    return subscribe_whole(broker, *topics, title=title, max_records=BATCH_RECORDS)


registry_in = subscribe_table(REGISTRY_POINTS.name, REGISTRY_SESSIONS.name, title="on_registry")
statuses_in = subscribe_table(POINT_STATUS.name, title="on_point_status")
clock_in = subscribe_table(MONITOR_CLOCK.name, title="on_monitor_clock")
accounts_in = subscribe_table(REGISTRY_ACCOUNTS.name, title="on_accounts")
actions_in = subscribe_table(DESK_ACTIONS.name, title="on_desk_actions")
tables = Tables(registry_in, statuses_in)
last: dict[str, Totals] = {}
LAST_TOTALS_WITHIN_SECONDS = 5.0


@registry_in
async def on_registry(message: KafkaMessage) -> None:
    defer = await tables.loading()
    if defer:
        loading()
    now = datetime.now(UTC)
    for record in records_of(message):
        try:
            _apply_registry(record, now, defer)
        except ContractError as error:
            await dead_letters.park(record, error)
    if not await tables.loading():  # also when another handler finished loading meanwhile
        live.settle()


@statuses_in
async def on_point_status(message: KafkaMessage) -> None:
    defer = await tables.loading()
    if defer:
        loading()
    for record in records_of(message):
        try:
            status = read_status(record.value)
        except ContractError as error:
            await dead_letters.park(record, error)
            continue
        before = live.put_status(status, status.last_heartbeat_at or status.since, defer=defer)
        history.put(status)
        point = live.registry.points.get(status.point_code)
        on_air = live.on_air(status.session_code, status.since)
        detector.status_changed(before, status, point, on_air=on_air)
    if not await tables.loading():  # also when another handler finished loading meanwhile
        live.settle()


@clock_in
async def on_monitor_clock(message: KafkaMessage) -> None:
    for record in records_of(message):
        try:
            clock = decode(MonitorClock, record.value)
        except ContractError as error:
            await dead_letters.park(record, error)
            continue
        live.judged.put(clock.partition, clock.judged_until)


@accounts_in
async def on_accounts(message: KafkaMessage) -> None:
    for record in records_of(message):
        try:
            grant = None if record.value is None else decode(AccountGrant, record.value)
        except ContractError as error:
            await dead_letters.park(record, error)
            continue
        accounts.put((record.key or b"").decode(errors="replace"), grant)


@actions_in
async def on_desk_actions(message: KafkaMessage) -> None:
    for record in records_of(message):
        try:
            kept(live, desk, decode(DeskAction, record.value))
        except ContractError as error:
            await dead_letters.park(record, error)


async def record_action(action: DeskAction) -> None:
    async with asyncio.timeout(ACKNOWLEDGED_WITHIN_SECONDS):
        await to_actions.publish(encode(action), key=action_key(action.id))


def _apply_registry(record: Record, now: datetime, defer: bool) -> None:
    code = (record.key or b"").decode(errors="replace")
    if record.topic == REGISTRY_POINTS.name:
        if record.value is None:
            live.remove_point(code, now, defer=defer)
        else:
            live.put_point(read_point(record.value), now, defer=defer)
    elif record.value is None:
        live.remove_session(code)
        history.forget(code)
    else:
        session = decode(SessionSchedule, record.value)
        live.put_session(session, now, defer=defer)
        _restore_peaks(session.code)


def _restore_peaks(session_code: str) -> None:
    try:
        connected, learners = peaks_of(engine, session_code)
    except SQLAlchemyError as error:  # no timeline table yet, or the database away
        log.info("peaks of %s not restored from the timeline (%s)", session_code, error)
        return
    live.raise_peaks(session_code, connected, learners)


async def publish_snapshots(every: float) -> None:
    """At most one snapshot a second per session on `reporting.totals`, only when it changed."""
    published: dict[str, int] = {}
    while True:
        await asyncio.sleep(every)
        if not tables.loaded:  # a part of the tables: the last snapshots stay the truer ones
            continue
        for code, view in list(live.sessions.items()):
            if published.get(code) == view.version:
                continue
            try:
                totals = totals_of(code, view, datetime.now(UTC), live.judged)
                async with asyncio.timeout(ACKNOWLEDGED_WITHIN_SECONDS):
                    await to_totals.publish(encode(totals), key=session_key(code))
                published[code] = view.version
            except KAFKA_ERRORS as error:
                log.warning("totals snapshot of %s not published (%s)", code, error)


async def watch_judgement(every: float) -> None:
    """When the states become unknown or known again, every session's totals change: the
    streams and snapshots say so even though no point's status moved."""
    unknown = live.judged.unknown(datetime.now(UTC))
    while True:
        await asyncio.sleep(every)
        now_unknown = live.judged.unknown(datetime.now(UTC))
        if now_unknown != unknown:
            unknown = now_unknown
            log.warning("states %s", "unknown: the monitor is not judging" if unknown else "known")
            for view in list(live.sessions.values()):
                view.version += 1


async def sample_timeline(every: float) -> None:
    while True:
        await asyncio.sleep(every)
        samples = sampled(live, datetime.now(UTC).replace(microsecond=0))
        try:
            await asyncio.to_thread(save, engine, samples)
        except SQLAlchemyError as error:
            log.warning("timeline samples not saved (%s)", error)


async def watch_incidents(every: float) -> None:
    while True:
        await asyncio.sleep(every)
        now = datetime.now(UTC)
        on_air = {code for code in live.registry.sessions if live.on_air(code, now)}
        opened, closed = detector.tick(now, live.registered_by_group(), on_air)
        # Loading, incidents come and go as the history is read; and one opened and closed at
        # once in a session no longer on air is history, not news.
        news = tables.loaded
        for incident in opened:
            log.warning(
                "incident: %s %s of %s, %d points down",
                incident.kind,
                incident.group,
                incident.session_code,
                len(incident.points),
            )
            if news and incident.session_code in on_air:
                webhooks.notify(OPENED, incident)
        just_opened = {id(incident) for incident in opened}
        for incident in closed:
            log.info(
                "incident closed: %s %s of %s", incident.kind, incident.group, incident.session_code
            )
            if news and (id(incident) not in just_opened or incident.session_code in on_air):
                webhooks.notify(CLOSED, incident)


def settle_tables() -> None:
    """The tables read: their totals computed, and what they hold set aside from the garbage
    collector (`servicekit.heap`)."""
    live.settle()
    settle()


async def _read_last_totals() -> None:
    """What the desk saw before this start, to serve while the tables are read; bounded, so
    Kafka being away delays no start (the totals then wait for the tables, as they would)."""
    try:
        async with asyncio.timeout(LAST_TOTALS_WITHIN_SECONDS):
            last.update(await last_totals(settings.kafka_bootstrap_servers))
    except KAFKA_ERRORS as error:
        log.warning("last totals not read from %s (%r)", TOTALS.name, error)
    log.info("last totals of %d sessions read, served stale until the tables are", len(last))


@asynccontextmanager
async def background(_: FastAPI) -> AsyncIterator[None]:
    from sqlmodel import SQLModel

    await asyncio.to_thread(SQLModel.metadata.create_all, engine)
    await _read_last_totals()
    tasks = [
        asyncio.create_task(tables.settle_once_loaded(settle_tables, 0.1)),
        asyncio.create_task(publish_snapshots(settings.snapshot_seconds)),
        asyncio.create_task(sample_timeline(settings.timeline_seconds)),
        asyncio.create_task(watch_incidents(1.0)),
        asyncio.create_task(watch_judgement(0.5)),
        asyncio.create_task(webhooks.run()),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with suppress(asyncio.CancelledError):
            await task
    await to_webhooks.aclose()


app = service_app(title="reporting", broker=broker, metrics=metrics, lifespan=background)
identify = identifying(accounts, settings.viewer_token)
app.include_router(desk_router(live, accounts, desk, record_action, identify, Logins(TOKEN_COOKIE)))
app.include_router(
    reporting_router(live, detector, engine, desk, history, identify, lambda: tables.loaded, last)
)
app.mount("/static", StaticFiles(directory=STATIC), name="static")


@app.get("/", include_in_schema=False)
def dashboard() -> FileResponse:
    return FileResponse(STATIC / "index.html")


# What start-up built (modules, classes, routes) lives as long as the process: out of the
# garbage collector's sight, the full collections a rebuild triggers do not walk it each time
# (0.1 to 0.3 s of CPU in a 100,000-point rebuild, of about 1.2 s).
gc.freeze()
