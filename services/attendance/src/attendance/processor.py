"""Heartbeats and the passing of time in; point statuses and the changelog out.

State is held per owned partition of `attendance.heartbeats` and written to the co-partitioned
changelog; partitions are restored from it when assigned and dropped when revoked. Offsets are
committed (by the subscriber's ack policy) only after the handler returns, and the handler
returns only after Kafka acknowledged every status and changelog record it produced.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from attendance.domain import Track
from attendance.encoding import heartbeat_of, snapshot, status
from attendance.metrics import ProcessorMetrics
from attendance.quality import QualityRules
from attendance.restore import read_changelog
from attendance.tracker import Change, ExpectedOf, LivenessOf, Tracker, TrackKey
from contracts.topics import HEARTBEATS, status_key
from servicekit.kafka import DeadLetters, Record, publish_all

log = logging.getLogger(__name__)
# Longest an expiry tick waits to learn where the group stands (the broker may be down).
COMMITTED_TIMEOUT = 1.0
# The high watermark is believed only this long after the fetch that reported it: while the
# broker is away, or the process was paused, heartbeats may be waiting that it does not count.
FRESH_HIGHWATER_SECONDS = 2.0
# A clock tick this much later than planned means the process was stopped (SIGSTOP) or starved.
STALL_SECONDS = 1.0
# After a stall, a high watermark counts only from a fetch sent after it: aiokafka stamps a
# response when it reads it, so one that waited in the socket through the stall looks fresh
# while it describes the partition before the stall. A fetch waits at most 0.5 s (aiokafka's
# fetch_max_wait_ms); one second covers it.
AFTER_STALL_SECONDS = 1.0


class NotRestored(RuntimeError):
    """Heartbeats of a partition this instance owns but has not restored: try the batch again."""


class Publisher(Protocol):
    """Where records go: `servicekit.kafka.RawPublisher` (in batches), or any publisher with
    FastStream's `publish` (one by one)."""

    async def publish(
        self, value: bytes, *, key: bytes, partition: int | None, no_confirm: bool
    ) -> Awaitable[Any]: ...


class Processor:
    def __init__(
        self,
        *,
        bootstrap: str,
        statuses: Publisher,
        changelog: Publisher,
        dead_letters: DeadLetters,
        liveness_of: LivenessOf,
        expected_of: ExpectedOf,
        rules: QualityRules,
        grace: float,
    ) -> None:
        self._bootstrap = bootstrap
        self._statuses = statuses
        self._changelog = changelog
        self._dead_letters = dead_letters
        self._liveness_of, self._expected_of = liveness_of, expected_of
        self._rules, self._grace = rules, grace
        self._partitions: dict[int, Tracker] = {}
        self._processed: dict[int, int] = {}  # per partition, the next offset to process
        # Heartbeats, the clock and rebalances all change the partitions; one at a time keeps
        # each key's records in the order the decisions were made.
        self._turn = asyncio.Lock()
        self._settled = asyncio.Event()  # no restore under way
        self._woke_at = 0.0  # wall time the clock last woke from a stall
        # Records decided but not yet acknowledged by Kafka. The trackers have already moved
        # on, so a failed publish must be retried from here, never recomputed.
        # Per record key: the changelog's (value, partition) and the status topic's value.
        self._unsent_changelog: dict[bytes, tuple[bytes, int]] = {}
        self._unsent_statuses: dict[bytes, bytes] = {}
        self.consumer: Callable[[], AIOKafkaConsumer | None] = lambda: None
        self.metrics: ProcessorMetrics | None = None
        self.changed: Callable[[Iterable[tuple[TrackKey, Track]]], None] = lambda _: None

    # --- what the instance holds ---------------------------------------------------------------

    def tracks(self) -> Iterator[Track]:
        for tracker in list(self._partitions.values()):
            yield from list(tracker.tracks().values())

    # --- rebalances ----------------------------------------------------------------------------

    async def assign(self, partitions: set[int]) -> None:
        """Restore exactly these partitions from the changelog before any of their heartbeats."""
        fresh = partitions - set(self._partitions)
        self._settled.clear()
        try:
            await self._restore(fresh)
        finally:
            self._settled.set()

    async def _restore(self, fresh: set[int]) -> None:
        restored, seconds = await read_changelog(self._bootstrap, fresh)
        async with self._turn:
            for partition, tracks in restored.items():
                tracker = Tracker(
                    self._liveness_of, self._expected_of, rules=self._rules, grace=self._grace
                )
                for key, track in tracks.items():
                    tracker.restore(key, track)
                self._partitions[partition] = tracker
                self._processed.pop(partition, None)
                # Written again, so the attendance records are whole even if the database was
                # down when the previous owner held them.
                self.changed(tracks.items())
        if self.metrics is not None:
            self.metrics.restore_seconds.observe(seconds)
            self.metrics.restored_tracks.inc(sum(len(t) for t in restored.values()))
        log.info(
            "restored partitions %s (%d tracks) in %.2f s",
            sorted(fresh),
            sum(len(t) for t in restored.values()),
            seconds,
        )

    async def revoke(self, partitions: set[int]) -> None:
        async with self._turn:
            try:
                await self._flush()
            except Exception:
                # The new owner replays the heartbeats after the last commit: nothing is lost.
                log.warning("could not flush before giving up partitions %s", sorted(partitions))
                self._unsent_changelog.clear()
                self._unsent_statuses.clear()
            for partition in partitions:
                self._partitions.pop(partition, None)
                self._processed.pop(partition, None)

    # --- heartbeats and time -------------------------------------------------------------------

    async def on_records(self, records: Sequence[Record]) -> None:
        # aiokafka may fetch for new partitions while their restore is still running.
        await self._settled.wait()
        async with self._turn:
            merged: dict[tuple[int, TrackKey], Change] = {}
            newest = 0.0
            partitions = self._partitions
            for record in records:
                tracker = partitions.get(record.partition)
                if tracker is None:
                    if self._still_assigned(record.partition):
                        raise NotRestored(record.partition)  # rewinds: nothing is skipped
                    continue  # revoked meanwhile: its new owner replays it
                try:
                    key, beat = heartbeat_of(record.value)
                    flags_before = tracker.track(*key).flags
                    change = tracker.on_beat(key, beat)
                except Exception as error:
                    await self._dead_letters.park(record, error)
                    continue
                if beat.received_at > newest:
                    newest = beat.received_at
                if change is not None:
                    if change.track.flags is not flags_before:
                        self._count_new_flags(change.track.flags - flags_before)
                    slot = (record.partition, key)
                    if not change.visible:
                        earlier = merged.get(slot)
                        if earlier is not None and earlier.visible:
                            change = change._replace(visible=True)
                    merged[slot] = change
            for record in records:
                self._processed[record.partition] = record.offset + 1
            await self._emit(merged)
        self._observe(len(records), newest)

    async def on_tick(self, wall: float) -> None:
        async with self._turn:
            merged: dict[tuple[int, TrackKey], Change] = {}
            for partition, tracker in self._partitions.items():
                caught_up = await self._caught_up(partition)
                for change in tracker.on_time(wall, caught_up):
                    merged[(partition, change.key)] = change
            await self._emit(merged)

    async def run_clock(self, every: float) -> None:
        planned = time.monotonic() + every
        while True:
            await asyncio.sleep(max(0.0, planned - time.monotonic()))
            late = time.monotonic() - planned
            if late > STALL_SECONDS:
                self._woke_at = time.time()
                log.warning("the clock woke %.1f s late", late)
            try:
                await self.on_tick(time.time())
            except Exception:
                log.exception("expiry tick failed; retrying on the next tick")
            planned = time.monotonic() + every

    # --- output --------------------------------------------------------------------------------

    async def _emit(self, changes: dict[tuple[int, TrackKey], Change]) -> None:
        for (partition, key), change in changes.items():
            record_key = status_key(*key)
            self._unsent_changelog[record_key] = (snapshot(*key, change.track), partition)
            if change.visible:
                self._unsent_statuses[record_key] = status(*key, change.track)
        self.changed((key, change.track) for (_, key), change in changes.items())
        await self._flush()

    async def _flush(self) -> None:
        changelog = [(k, v, p) for k, (v, p) in self._unsent_changelog.items()]
        statuses = [(k, v, None) for k, v in self._unsent_statuses.items()]
        pending = [
            *await publish_all(self._changelog, changelog),
            *await publish_all(self._statuses, statuses),
        ]
        await asyncio.gather(*pending)
        self._unsent_changelog.clear()
        self._unsent_statuses.clear()

    async def _caught_up(self, partition: int) -> bool:
        consumer = self.consumer()
        if consumer is None:
            return False
        tp = TopicPartition(HEARTBEATS.name, partition)
        highwater = consumer.highwater(tp)
        if highwater is None or not highwater_is_current(
            _polled_at(consumer, tp), time.time(), self._woke_at
        ):
            return False
        done = self._processed.get(partition)
        if done is None:
            # Nothing processed since the restore. Not the consumer's position: it moves when a
            # batch is fetched, before the handler has processed it, and expiry would outrun
            # the heartbeats of that batch. The group's commit says what is really done.
            try:
                done = await asyncio.wait_for(consumer.committed(tp), COMMITTED_TIMEOUT)
            except Exception:
                return False
            if done is None:
                return False
            self._processed[partition] = done
        return bool(int(done) >= int(highwater))

    def _still_assigned(self, partition: int) -> bool:
        consumer = self.consumer()
        return consumer is not None and TopicPartition(HEARTBEATS.name, partition) in (
            consumer.assignment()
        )

    def _count_new_flags(self, flags: frozenset[str]) -> None:
        if self.metrics is not None:
            for flag in flags:
                self.metrics.flags.labels(flag).inc()

    def _observe(self, count: int, newest: float) -> None:
        if self.metrics is None or count == 0:
            return
        self.metrics.batch_size.observe(count)
        self.metrics.heartbeats.inc(count)
        if newest:
            self.metrics.lag_seconds.set(max(0.0, time.time() - newest))


def highwater_is_current(polled_at: float | None, now: float, woke_at: float) -> bool:
    """Whether a high watermark read at `polled_at` still says what Kafka holds: read lately,
    and by a fetch sent after the process last woke from a stall."""
    return (
        polled_at is not None
        and now - polled_at <= FRESH_HIGHWATER_SECONDS
        and polled_at > woke_at + AFTER_STALL_SECONDS
    )


def _polled_at(consumer: AIOKafkaConsumer, tp: TopicPartition) -> float | None:
    try:
        polled = consumer.last_poll_timestamp(tp)
    except AssertionError:  # no longer assigned
        return None
    return None if polled is None else polled / 1000


class RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka awaits these before fetching for newly assigned partitions."""

    def __init__(self, processor: Processor) -> None:
        self._processor = processor

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._processor.revoke(
            {tp.partition for tp in revoked if tp.topic == HEARTBEATS.name}
        )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._processor.assign(
            {tp.partition for tp in assigned if tp.topic == HEARTBEATS.name}
        )
