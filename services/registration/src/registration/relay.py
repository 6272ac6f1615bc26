"""The outbox relay: committed events go to Kafka in commit order, retried while Kafka is down.

An event is deleted from the outbox only after Kafka acknowledged it. A crash in between
publishes it again, which the compacted registry topics absorb.
"""

import asyncio
import logging

from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import Engine, delete
from sqlmodel import Session, col

from registration.store import OutboxEvent, pending_events

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self, *, engine: Engine, broker: KafkaBroker, registry: CollectorRegistry, batch: int
    ) -> None:
        self._engine = engine
        self._broker = broker
        self._batch = batch
        self._published = Counter(
            "outbox_published_total", "Outbox events acknowledged by Kafka", registry=registry
        )
        self._backlog = Gauge(
            "outbox_backlog",
            "Outbox events read in the last pass, not yet on Kafka",
            registry=registry,
        )

    async def run(self, poll_seconds: float) -> None:
        failures = 0
        while True:
            try:
                sent = await self.relay_once()
                failures = 0
            except Exception as error:
                failures += 1
                log.warning("outbox relay: Kafka or database unavailable (%s); retrying", error)
                sent = 0
            if sent < self._batch:
                await asyncio.sleep(poll_seconds * min(2**failures, 50))

    async def relay_once(self) -> int:
        events = await asyncio.to_thread(self._read)
        self._backlog.set(len(events))
        if not events:
            return 0
        # Sent in id order by one idempotent producer: Kafka keeps that order within a key.
        pending = [
            await self._broker.publish(
                event.payload, topic=event.topic, key=event.key, no_confirm=True
            )
            for event in events
        ]
        await asyncio.gather(*pending)
        await asyncio.to_thread(
            self._forget, [event.id for event in events if event.id is not None]
        )
        self._published.inc(len(events))
        return len(events)

    def _read(self) -> list[OutboxEvent]:
        with Session(self._engine, expire_on_commit=False) as db:
            return pending_events(db, self._batch)

    def _forget(self, ids: list[int]) -> None:
        with Session(self._engine) as db:
            db.exec(delete(OutboxEvent).where(col(OutboxEvent.id).in_(ids)))
            db.commit()
