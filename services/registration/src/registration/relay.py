"""The outbox relay: committed events go to Kafka in commit order, retried while Kafka is down.

An event is deleted from the outbox only after Kafka acknowledged it. A crash in between
publishes it again, which the compacted registry topics absorb. With several registration
instances on PostgreSQL, an advisory lock lets one relay at a time, which keeps the order.
"""

import asyncio
import logging

from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import Engine, delete, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col

from registration.store import OutboxEvent, outbox_size, pending_events
from servicekit.kafka import ACKNOWLEDGED_WITHIN_SECONDS, KAFKA_ERRORS

log = logging.getLogger(__name__)
RELAY_LOCK = 0x7265_6C61  # any constant shared by every instance


class OutboxRelay:
    def __init__(
        self, *, engine: Engine, broker: KafkaBroker, metrics: CollectorRegistry, batch: int
    ) -> None:
        self._engine = engine
        self._broker = broker
        self._batch = batch
        self._published = Counter(
            "outbox_published_total", "Outbox events acknowledged by Kafka", registry=metrics
        )
        self._backlog = Gauge(
            "outbox_backlog", "Outbox events committed but not yet on Kafka", registry=metrics
        )
        self._backlog.set_function(self._count)

    async def run(self, poll_seconds: float) -> None:
        failures = 0
        while True:
            try:
                sent = await self.relay_once()
                failures = 0
            except (*KAFKA_ERRORS, SQLAlchemyError) as error:
                failures += 1
                log.warning("outbox relay: Kafka or database unavailable (%s); retrying", error)
                sent = 0
            if sent < self._batch:
                await asyncio.sleep(poll_seconds * min(2**failures, 50))

    async def relay_once(self) -> int:
        with Session(self._engine, expire_on_commit=False) as db:
            if not await asyncio.to_thread(self._lead, db):
                return 0
            events = await asyncio.to_thread(pending_events, db, self._batch)
            if not events:
                return 0
            # Sent in id order by one producer, one batch in flight per partition: Kafka keeps
            # that order within a key.
            async with asyncio.timeout(ACKNOWLEDGED_WITHIN_SECONDS):
                pending = [
                    await self._broker.publish(e.payload, topic=e.topic, key=e.key, no_confirm=True)
                    for e in events
                ]
                await asyncio.gather(*pending)
            ids = [event.id for event in events]
            await asyncio.to_thread(self._forget, db, ids)
        self._published.inc(len(events))
        return len(events)

    def _lead(self, db: Session) -> bool:
        """Whether this instance may relay now (always, outside PostgreSQL)."""
        if db.get_bind().dialect.name != "postgresql":
            return True
        query = text("SELECT pg_try_advisory_xact_lock(:key)").bindparams(key=RELAY_LOCK)
        locked = db.connection().execute(query)
        return bool(locked.scalar())

    def _forget(self, db: Session, ids: list[int | None]) -> None:
        db.exec(delete(OutboxEvent).where(col(OutboxEvent.id).in_(ids)))
        db.commit()

    def _count(self) -> float:
        with Session(self._engine) as db:
            return float(outbox_size(db))
