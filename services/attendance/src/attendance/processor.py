"""Heartbeats and watermarks in; point statuses, the changelog and the monitor's clock out, each
committed with its input offset in one Kafka transaction per owned partition.

The story of a partition:

1. Assigned: its transactional producer starts (fencing any earlier holder), the group's
   committed offset and clock are read, its tracks are restored from the changelog, and the
   consumer is set back to that offset.
2. Its records are decided in memory (`attendance.tracker`) into a table of pending changes.
3. Every `commit_seconds`, the statuses decided, the next offset and the clock go out in one
   transaction. A reader (`read_committed`) sees all of it or none of it.
4. Every `checkpoint_seconds`, that transaction also carries a checkpoint: the tracks changed
   since the last one, to the changelog, and the offset and clock they stand at, in the
   committed metadata. Taken again, a partition restores the checkpoint and replays the
   records from its offset to the committed one without writing what they decide a second
   time (it was committed): their decisions depend only on the records, so they come out the
   same. A point beating every 5 s is written to the changelog once per checkpoint rather than
   once per heartbeat, as Flink recovers a job from its last checkpoint.
5. A failed transaction drops the partition's state and takes it again as in 1; fenced
   (another instance holds it), it is dropped.
6. Revoked: what is decided is committed if it still can be, and the partition is let go.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from attendance.clock import IngestClock
from attendance.domain import NEVER_CONNECTED, Track
from attendance.encoding import (
    heartbeat_of,
    monitor_clock,
    snapshot,
    status,
    watermark_of,
)
from attendance.metrics import ProcessorMetrics
from attendance.partitions import Fenced, Outgoing
from attendance.quality import QualityRules
from attendance.restore import Restored
from attendance.tracker import ExpectedOf, LivenessOf, Pending, Tracker, TrackKey
from contracts.codec import ContractError
from contracts.topics import HEARTBEATS, WATERMARK_PREFIX, clock_key, status_key
from servicekit.kafka import KAFKA_ERRORS, DeadLetters, Record

log = logging.getLogger(__name__)
LOG_APPEND_TIME = 1  # a record's timestamp type when the broker stamped it
POLL_MS = 100
# On the way out, how long the processor may take to read its partitions to their end.
DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class Timing:
    """The processor's clock and commit settings (see `attendance.config.Settings`)."""

    commit_seconds: float = 0.25
    idle_commit_seconds: float = 1.0
    # How often a commit carries a checkpoint: what a partition taken again replays at most.
    checkpoint_seconds: float = 10.0
    outage_after: float = 1.0
    gone_after: float = 10.0
    # A heartbeat that reached Kafka this long after it was received was answered 503 (the
    # ingest's publish timeout): it was never accepted, and is not taken. Nor is a watermark
    # stored this late after its moment.
    stale_after: float = 5.0


class Writer(Protocol):
    async def commit(self, out: Outgoing, offset: int, metadata: str) -> None: ...

    async def close(self) -> None: ...


class Partitions(Protocol):
    """Where the processor's partitions live (`attendance.partitions.KafkaPartitions`)."""

    async def open(self, partition: int) -> Writer: ...

    async def committed(self, partitions: Iterable[int]) -> dict[int, tuple[int | None, str]]: ...

    async def restore(self, partitions: Iterable[int]) -> tuple[Restored, float]: ...


class Consumer(Protocol):
    """What the processor steers of its consumer (an `AIOKafkaConsumer`)."""

    def assignment(self) -> set[TopicPartition]: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def seek_to_beginning(self, *partitions: TopicPartition) -> bool: ...


@dataclass
class Owned:
    """A partition this instance holds."""

    tracker: Tracker
    writer: Writer
    position: int | None  # the next offset to process (None: from the topic's beginning)
    committed: int | None
    # The last checkpoint, as committed metadata; and below which offset the records are
    # replayed from it, their decisions already committed (None: not replaying).
    checkpoint: str = ""
    replay_until: int | None = None
    pending: Pending = field(default_factory=Pending)
    # Tracks changed since the checkpoint, for the next one to write.
    dirty: set[TrackKey] = field(default_factory=set)
    last_commit: float = 0.0  # time.monotonic()
    last_checkpoint: float = 0.0
    clock_sent: float | None = None


class Processor:
    def __init__(
        self,
        *,
        partitions: Partitions,
        dead_letters: DeadLetters,
        liveness_of: LivenessOf,
        expected_of: ExpectedOf,
        rules: QualityRules,
        timing: Timing,
        group: str,
        metrics: ProcessorMetrics | None = None,
        changed: Callable[[Iterable[tuple[TrackKey, Track]]], None] = lambda _: None,
    ) -> None:
        self._partitions = partitions
        self._dead_letters = dead_letters
        self._liveness_of, self._expected_of = liveness_of, expected_of
        self._rules, self._timing = rules, timing
        self._group = group
        self._metrics = metrics
        self._changed = changed
        self._owned: dict[int, Owned] = {}
        self._consumer: Consumer | None = None
        # Records, commits and rebalances all change the partitions: one at a time.
        self._turn = asyncio.Lock()
        self._stopping = asyncio.Event()

    # --- what the instance holds ---------------------------------------------------------------

    def tracks(self) -> Iterator[Track]:
        for owned in list(self._owned.values()):
            yield from list(owned.tracker.tracks().values())

    def owned(self) -> dict[int, Owned]:
        return self._owned

    # --- the loop ------------------------------------------------------------------------------

    async def run(self, consumer: AIOKafkaConsumer, max_records: int) -> None:
        """Fetch, decide, commit, until `stop`; then read what the partitions hold to their end,
        commit it and let them go, so a clean exit leaves nothing for the next owner."""
        self._consumer = consumer
        while not self._stopping.is_set():
            await self._round(consumer, max_records)
        deadline = time.monotonic() + DRAIN_SECONDS
        ends: dict[TopicPartition, int] = {}
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                ends = await consumer.end_offsets(list(self._held()))
        except (TimeoutError, *KAFKA_ERRORS) as error:
            log.warning("stopping without reading the partitions to their end (%r)", error)
        while time.monotonic() < deadline and await self._behind(consumer, ends):
            await self._round(consumer, max_records)
        await self.close()

    def stop(self) -> None:
        """Ask `run` to finish: the round under way ends, then the partitions are drained."""
        self._stopping.set()

    async def _round(self, consumer: AIOKafkaConsumer, max_records: int) -> None:
        batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=max_records)
        async with self._turn:
            for tp, records in batches.items():
                await self.apply(tp.partition, records)
            await self.commit_due()
            self._observe_lag(consumer)

    def _held(self) -> set[TopicPartition]:
        return {TopicPartition(HEARTBEATS.name, p) for p in self._owned}

    async def _behind(self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
        """Whether a partition still held has records before `ends` left to process."""
        for tp, end in ends.items():
            owned = self._owned.get(tp.partition)
            if owned is not None and (owned.position or 0) < end:
                return True
        return False

    async def apply(self, partition: int, records: Sequence[Record]) -> None:
        """Decide on a partition's records, in offset order, into its pending changes."""
        owned = self._owned.get(partition)
        if owned is None or not records:
            return  # not ours (any more): its owner reads it
        if owned.position is not None:
            records = [r for r in records if r.offset >= owned.position]
            if not records:
                return
            if records[0].offset != owned.position:
                # Fetched before the consumer was set back: never leave a hole.
                await self._seek(partition, owned.position)
                return
        until = owned.replay_until
        if until is not None:
            replayed = [r for r in records if r.offset < until]
            records = records[len(replayed) :]
            if replayed:
                # Decided again as they were before, nothing of it written again but the tracks.
                scratch = Pending()
                await self._decide(owned.tracker, replayed, scratch, replaying=True)
                owned.dirty.update(scratch.latest)
                owned.position = replayed[-1].offset + 1
                self._changed((k, c.track) for k, c in scratch.latest.items())
            if owned.position is not None and owned.position >= until:
                owned.replay_until = None
                log.info("partition %s replayed from its checkpoint to offset %d", partition, until)
        if records:
            beats, newest = await self._decide(owned.tracker, records, owned.pending)
            owned.position = records[-1].offset + 1
            self._observe(beats, newest)

    async def _decide(
        self,
        tracker: Tracker,
        records: Sequence[Record],
        pending: Pending,
        *,
        replaying: bool = False,
    ) -> tuple[int, float]:
        """Decide on records into `pending`; the heartbeats taken and the newest one's time.
        Replaying, what was parked and counted the first time is not again."""
        newest, beats = 0.0, 0
        tracks, stale_after = tracker.tracks(), self._timing.stale_after
        for record in records:
            key = record.key
            # When the broker stored the record (the ingest answers once it has), if it says.
            stored_at = (
                record.timestamp / 1000 if record.timestamp_type == LOG_APPEND_TIME else None
            )
            if key is not None and key.startswith(WATERMARK_PREFIX):
                try:
                    ingest, at, final = watermark_of(record.value)
                except ContractError as error:
                    if not replaying:
                        await self._dead_letters.park(record, error)
                    continue
                # Written that late, it proves no accepting: the heartbeats handed over with it
                # were answered 503. Taken, it would fill the gap that excuses the outage.
                if not self._stale(stored_at, at):
                    tracker.on_watermark(ingest, at, final, pending)
                continue
            try:
                track_key, beat = heartbeat_of(record.value, stored_at)
            except ContractError as error:
                if not replaying:
                    await self._dead_letters.park(record, error)
                continue
            received_at = beat.received_at
            # `_stale`, inline: this loop runs once per heartbeat.
            if stored_at is not None and stored_at - received_at > stale_after:
                # Answered 503 at the timeout: not taken, yet its room spoke and then waited
                # for that answer.
                if not replaying:
                    self._count_stale()
                tracker.on_refused(track_key, received_at + stale_after, pending)
                continue
            beats += 1
            if received_at > newest:
                newest = received_at
            flags_before = tracks.get(track_key, NEVER_CONNECTED).flags
            change = tracker.on_beat(track_key, beat, pending)
            if not replaying and change is not None and change.track.flags is not flags_before:
                self._count_new_flags(change.track.flags - flags_before)
        return beats, newest

    async def commit_due(self, *, force: bool = False) -> None:
        """Commit every partition whose changes (or, less often, bare progress) are due."""
        now = time.monotonic()
        due = [p for p, owned in self._owned.items() if force or self._is_due(owned, now)]
        if due:
            await asyncio.gather(*(self._commit_or_recover(p) for p in due))

    def _is_due(self, owned: Owned, now: float) -> bool:
        if owned.replay_until is not None:
            return False  # behind what is committed: nothing to commit yet
        if owned.position is None or (owned.position == owned.committed and not owned.pending):
            return False
        wait = self._timing.commit_seconds if owned.pending else self._timing.idle_commit_seconds
        return now - owned.last_commit >= wait

    async def _commit_or_recover(self, partition: int) -> None:
        try:
            await self._commit(partition)
        except Fenced as error:
            log.warning("fenced: %s; another instance holds it now", error)
            self._count_transaction("fenced")
            owned = self._owned.pop(partition, None)
            if owned is not None:
                await owned.writer.close()
        except KAFKA_ERRORS as error:
            log.warning("commit of partition %s failed (%r); taking it again", partition, error)
            self._count_transaction("failed")
            await self._recover(partition)

    async def _commit(self, partition: int) -> None:
        owned = self._owned[partition]
        if owned.position is None or owned.replay_until is not None:
            return
        pending, tracker = owned.pending, owned.tracker
        clock, latest = tracker.clock, pending.latest
        out = Outgoing(
            statuses=[(status_key(*k), status(*k, t)) for k, t in pending.passed]
            + [(status_key(*k), status(*k, c.track)) for k, c in latest.items() if c.visible],
        )
        owned.dirty.update(latest)
        now = time.monotonic()
        # With nothing changed since, a checkpoint costs nothing: the replay gets shorter.
        checkpointing = (
            not owned.dirty or now - owned.last_checkpoint >= self._timing.checkpoint_seconds
        )
        metadata = owned.checkpoint
        if checkpointing:
            tracks = tracker.tracks()
            out.changelog = [(status_key(*k), snapshot(*k, tracks[k])) for k in owned.dirty]
            metadata = _checkpoint(owned.position, clock.saved())
        if clock.now is not None and clock.now != owned.clock_sent:
            out.clock = (clock_key(partition), monitor_clock(partition, clock.now))
        await owned.writer.commit(out, owned.position, metadata)
        owned.committed, owned.clock_sent = owned.position, clock.now
        owned.pending, owned.last_commit = Pending(), now
        if checkpointing:
            owned.checkpoint, owned.dirty, owned.last_checkpoint = metadata, set(), now
        self._count_transaction("committed")
        if latest:
            self._changed((k, c.track) for k, c in latest.items())

    async def _recover(self, partition: int) -> None:
        """Drop what this instance decided for the partition and take it again from what Kafka
        committed: the new producer also settles the failed transaction's outcome."""
        owned = self._owned.pop(partition, None)
        if owned is not None:
            await owned.writer.close()
        if self._metrics is not None:
            self._metrics.recoveries.inc()
        async for attempt in _retrying():
            with attempt:
                if not self._still_assigned(partition):
                    return
                await self._take({partition})

    # --- rebalances ----------------------------------------------------------------------------

    async def assign(self, partitions: set[int]) -> None:
        async with self._turn:
            fresh = partitions - set(self._owned)
            async for attempt in _retrying():
                with attempt:
                    await self._take(fresh - set(self._owned))

    async def revoke(self, partitions: set[int]) -> None:
        async with self._turn:
            ours = partitions & set(self._owned)
            if not ours:
                return
            # Committed if it still can be; otherwise the next owner reads it again.
            await asyncio.gather(*(self._commit_quietly(p) for p in ours))
            for partition in ours:
                owned = self._owned.pop(partition, None)
                if owned is not None:
                    await owned.writer.close()
            log.info("gave up partitions %s", sorted(ours))

    async def close(self) -> None:
        await self.revoke(set(self._owned))

    async def _commit_quietly(self, partition: int) -> None:
        try:
            await self._commit(partition)
        except (Fenced, *KAFKA_ERRORS) as error:
            log.warning("partition %s not committed before letting it go (%r)", partition, error)

    async def _take(self, partitions: set[int]) -> None:
        """Hold `partitions`: writers first (fencing whoever held them), then the committed
        offsets and clocks, then the tracks; the consumer is set back to those offsets."""
        if not partitions:
            return
        writers: dict[int, Writer] = {}
        try:
            opened = await asyncio.gather(*(self._partitions.open(p) for p in partitions))
            writers = dict(zip(partitions, opened, strict=True))
            committed = await self._partitions.committed(partitions)
            restored, seconds = await self._partitions.restore(partitions)
        except BaseException:
            for writer in writers.values():
                await writer.close()
            raise
        for partition in partitions:
            offset, metadata = committed.get(partition, (None, ""))
            replay_from, clock = _checkpointed(metadata, offset)
            tracker = self._tracker(clock)
            tracks = restored.get(partition, {})
            for key, track in tracks.items():
                tracker.restore(key, track)
            self._owned[partition] = Owned(
                tracker,
                writers[partition],
                position=replay_from,
                committed=offset,
                checkpoint=_checkpoint(replay_from, clock) if replay_from is not None else "",
                replay_until=offset if replay_from != offset else None,
            )
            await self._seek(partition, replay_from)
            # Written again, so the attendance records are whole even if the database was
            # down when the previous owner held them.
            self._changed(tracks.items())
        count = sum(len(t) for t in restored.values())
        if self._metrics is not None:
            self._metrics.restore_seconds.observe(seconds)
            self._metrics.restored_tracks.inc(count)
        log.info("took partitions %s (%d tracks) in %.2f s", sorted(partitions), count, seconds)

    def _tracker(self, saved: dict[str, object] | None) -> Tracker:
        timing = self._timing
        clock = IngestClock.resumed(
            saved, outage_after=timing.outage_after, gone_after=timing.gone_after
        )
        return Tracker(self._liveness_of, self._expected_of, clock=clock, rules=self._rules)

    async def _seek(self, partition: int, offset: int | None) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        tp = TopicPartition(HEARTBEATS.name, partition)
        if offset is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, offset)

    def _still_assigned(self, partition: int) -> bool:
        consumer = self._consumer
        return consumer is not None and TopicPartition(HEARTBEATS.name, partition) in (
            consumer.assignment()
        )

    # --- metrics -------------------------------------------------------------------------------

    def _count_transaction(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.transactions.labels(outcome).inc()

    def _stale(self, stored_at: float | None, stamped_at: float) -> bool:
        """Whether Kafka stored the record past the ingest's publish timeout after its stamp."""
        return stored_at is not None and stored_at - stamped_at > self._timing.stale_after

    def _count_stale(self) -> None:
        if self._metrics is not None:
            self._metrics.stale.inc()

    def _count_new_flags(self, flags: frozenset[str]) -> None:
        if self._metrics is not None:
            for flag in flags:
                self._metrics.flags.labels(flag).inc()

    def _observe_lag(self, consumer: AIOKafkaConsumer) -> None:
        if self._metrics is None:
            return
        lag = 0
        for partition, owned in self._owned.items():
            end = consumer.highwater(TopicPartition(HEARTBEATS.name, partition))
            if end is not None:
                lag += max(0, end - (owned.position or 0))
        self._metrics.lag_records.set(lag)

    def _observe(self, count: int, newest: float) -> None:
        if self._metrics is None or count == 0:
            return
        self._metrics.batch_size.observe(count)
        self._metrics.heartbeats.inc(count)
        if newest:
            self._metrics.lag_seconds.set(max(0.0, time.time() - newest))


def _checkpoint(offset: int, clock: dict[str, object] | None) -> str:
    """The committed metadata of a checkpoint: where its replay starts, and the clock there."""
    return json.dumps({"replay_from": offset, "clock": clock})


def _checkpointed(
    metadata: str, committed: int | None
) -> tuple[int | None, dict[str, object] | None]:
    """The offset to replay from and the clock there, from the committed metadata. Metadata
    of before checkpoints was the clock at the committed offset: nothing to replay."""
    try:
        saved = json.loads(metadata) if metadata else None
    except ValueError:
        return committed, None
    if not isinstance(saved, dict):
        return committed, None
    if "replay_from" not in saved:
        return committed, saved
    replay_from, clock = saved["replay_from"], saved.get("clock")
    if committed is None or not isinstance(replay_from, int) or not 0 <= replay_from <= committed:
        return committed, None
    return replay_from, clock if isinstance(clock, dict) else None


def _retrying() -> AsyncRetrying:
    """Kafka may be away while a partition is taken: try again, backing off, until it answers."""
    return AsyncRetrying(
        retry=retry_if_exception_type(KAFKA_ERRORS),
        wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2),
        before_sleep=lambda state: log.warning(
            "taking partitions failed (%r); retrying", state.outcome and state.outcome.exception()
        ),
        reraise=True,
    )


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
