"""Heartbeats and the passing of time in; connection states out on `attendance.point-status`.

Offsets are committed (by the subscriber's ack policy) only after the handler returns, and the
handler returns only after Kafka acknowledged every status it produced.
"""

import asyncio
import logging
import time
from collections.abc import Sequence

from faststream.kafka.publisher.usecase import DefaultPublisher

from attendance.tracker import Tracker
from contracts.codec import ContractError, decode, encode
from contracts.events import Heartbeat, PointStatus
from contracts.topics import status_key
from servicekit.kafka import DeadLetters, Record

log = logging.getLogger(__name__)


class Processor:
    def __init__(
        self, tracker: Tracker, statuses: DefaultPublisher, dead_letters: DeadLetters
    ) -> None:
        self._tracker = tracker
        self._statuses = statuses
        self._dead_letters = dead_letters
        # Heartbeats and the clock both change tracks; one at a time keeps each key's
        # status records in the order the decisions were made.
        self._turn = asyncio.Lock()
        # Statuses decided but not yet acknowledged by Kafka. The tracker has already moved on,
        # so a failed publish must be retried from here, never recomputed.
        self._unsent: dict[bytes, PointStatus] = {}

    async def on_records(self, records: Sequence[Record]) -> None:
        heartbeats = []
        for record in records:
            try:
                heartbeats.append(decode(Heartbeat, record.value))
            except ContractError as error:
                await self._dead_letters.park(record, error)
        async with self._turn:
            await self._publish(self._tracker.on_heartbeats(heartbeats))

    async def on_tick(self, now: float) -> None:
        async with self._turn:
            await self._publish(self._tracker.on_time(now))

    async def run_clock(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.on_tick(time.time())
            except Exception:
                log.exception("expiry tick failed; retrying on the next tick")

    async def _publish(self, statuses: list[PointStatus]) -> None:
        for status in statuses:
            self._unsent[status_key(status.session_code, status.point_code)] = status
        pending = [
            await self._statuses.publish(encode(status), key=key, no_confirm=True)
            for key, status in self._unsent.items()
        ]
        await asyncio.gather(*pending)
        self._unsent.clear()
