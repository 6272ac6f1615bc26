"""Wiring of the registration service: the registry API and its outbox relay."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from contracts.events import AccountGrant, PointRegistration, SessionSchedule
from contracts.topics import REGISTRY_ACCOUNTS, REGISTRY_POINTS, REGISTRY_SESSIONS
from registration.api import install
from registration.config import Settings
from registration.migrate import upgrade
from registration.relay import OutboxRelay
from servicekit.database import make_engine
from servicekit.http import service_app
from servicekit.kafka import make_broker

settings = Settings()
metrics = CollectorRegistry()
broker = make_broker(settings.kafka_bootstrap_servers, client_id="registration", metrics=metrics)
engine = make_engine(settings.database_url)
relay = OutboxRelay(engine=engine, broker=broker, metrics=metrics, batch=settings.relay_batch)

# Declared for the AsyncAPI document; the relay publishes what the outbox holds.
broker.publisher(REGISTRY_POINTS.name, schema=PointRegistration, title="to_registry_points")
broker.publisher(REGISTRY_SESSIONS.name, schema=SessionSchedule, title="to_registry_sessions")
broker.publisher(REGISTRY_ACCOUNTS.name, schema=AccountGrant, title="to_registry_accounts")


@asynccontextmanager
async def outbox_relay(_: FastAPI) -> AsyncIterator[None]:
    await asyncio.to_thread(upgrade, engine)
    relaying = asyncio.create_task(relay.run(settings.relay_poll_seconds))
    yield
    relaying.cancel()
    with suppress(asyncio.CancelledError):
        await relaying


app = service_app(
    title="registration",
    broker=broker,
    metrics=metrics,
    lifespan=outbox_relay,
    max_body_per_path={"/v1/points/import": settings.max_import_bytes},
    # Operators prepare the registry whether or not Kafka is up: the outbox holds the events.
    serve_without_kafka=True,
)
install(
    app,
    engine=engine,
    operator_token=settings.operator_token,
    point_page=settings.point_page_url,
)

# The registry's pages (static/registry.js): a course prepared in the browser.
STATIC = Path(__file__).parent / "static"
app.mount("/static", StaticFiles(directory=STATIC), name="static")


@app.get("/", include_in_schema=False)
def registry_pages() -> FileResponse:
    return FileResponse(STATIC / "index.html")
