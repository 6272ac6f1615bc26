"""Wiring of the reporting service: fold the compacted topics, serve the totals."""

from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry

from contracts.codec import ContractError, decode
from contracts.events import PointStatus
from contracts.registry import RegistryTable
from contracts.topics import POINT_STATUS, REGISTRY_POINTS, REGISTRY_SESSIONS
from reporting.api import totals_router
from reporting.config import Settings
from reporting.totals import StatusKey
from servicekit.http import service_app
from servicekit.kafka import DeadLetters, make_broker, records_of, subscribe_whole
from servicekit.registry_feed import apply_registry_records

settings = Settings()
metrics = CollectorRegistry()
broker = make_broker(settings.kafka_bootstrap_servers, client_id="reporting", registry=metrics)
dead_letters = DeadLetters(broker, metrics)
registry = RegistryTable()
statuses: dict[StatusKey, PointStatus] = {}


@subscribe_whole(broker, REGISTRY_POINTS.name, REGISTRY_SESSIONS.name, title="on_registry")
async def on_registry(message: KafkaMessage) -> None:
    await apply_registry_records(registry, records_of(message), dead_letters)


@subscribe_whole(broker, POINT_STATUS.name, title="on_point_status")
async def on_point_status(message: KafkaMessage) -> None:
    for record in records_of(message):
        try:
            status = decode(PointStatus, record.value)
        except ContractError as error:
            await dead_letters.park(record, error)
            continue
        statuses[(status.session_code, status.point_code)] = status


app = service_app(title="reporting", broker=broker, registry=metrics)
app.include_router(totals_router(registry, statuses))
