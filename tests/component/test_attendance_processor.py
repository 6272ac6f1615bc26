"""The processor in process, on fakes of Kafka that keep what was committed: what a commit
carries, what a failed or fenced transaction leaves, how a restart resumes, how a stop drains.
The real broker's side of the same story is in tests/fault."""

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry

from attendance.domain import Liveness, Track
from attendance.encoding import heartbeat_record, restored, watermark_record
from attendance.metrics import ProcessorMetrics
from attendance.partitions import Fenced, Outgoing, TimedOut
from attendance.processor import LOG_APPEND_TIME, Processor, Timing
from attendance.quality import QualityRules
from attendance.restore import Restored
from attendance.tracker import TrackKey
from contracts.codec import decode
from contracts.events import MonitorClock, PointState, PointStatus, SessionSchedule
from contracts.topics import HEARTBEATS, point_key, watermark_key
from servicekit.kafka import Record
from tests.fault.oracle import Landed, Recomputation, Registered

LIVENESS = Liveness(late_after=3.0, disconnected_after=6.0)
START = 1_800_000_000.0


@dataclass
class Committed:
    """What the fake Kafka holds for one partition: committed transactions only."""

    offset: int | None = None
    metadata: str = ""
    changelog: dict[bytes, bytes] = field(default_factory=dict)
    statuses: list[bytes] = field(default_factory=list)
    clocks: list[bytes] = field(default_factory=list)


class FakeKafka:
    def __init__(self) -> None:
        self.partitions: dict[int, Committed] = {}
        self.epochs: dict[int, int] = {}
        # The error the next commit of a partition fails with, its outcome unknown (here: not
        # committed).
        self.fail_next: dict[int, Exception] = {}

    def held(self, partition: int) -> Committed:
        return self.partitions.setdefault(partition, Committed())


class FakeWriter:
    """A transactional producer: fenced once another one opened the same partition."""

    def __init__(self, kafka: FakeKafka, partition: int) -> None:
        self._kafka, self._partition = kafka, partition
        kafka.epochs[partition] = kafka.epochs.get(partition, 0) + 1
        self._epoch = kafka.epochs[partition]
        self.closed = False

    async def commit(self, out: Outgoing, offset: int, metadata: str) -> None:
        if self._kafka.epochs[self._partition] != self._epoch:
            raise Fenced(f"partition {self._partition}")
        failure = self._kafka.fail_next.pop(self._partition, None)
        if failure is not None:
            raise failure
        held = self._kafka.held(self._partition)
        held.changelog.update(out.changelog)
        held.statuses += [value for _, value in out.statuses]
        held.clocks += [out.clock[1]] if out.clock else []
        held.offset, held.metadata = offset, metadata

    async def close(self) -> None:
        self.closed = True


class FakePartitions:
    def __init__(self, kafka: FakeKafka) -> None:
        self._kafka = kafka
        self.writers: list[FakeWriter] = []

    async def open(self, partition: int) -> FakeWriter:
        writer = FakeWriter(self._kafka, partition)
        self.writers.append(writer)
        return writer

    async def committed(self, partitions: Iterable[int]) -> dict[int, tuple[int | None, str]]:
        return {p: (self._kafka.held(p).offset, self._kafka.held(p).metadata) for p in partitions}

    async def restore(self, partitions: Iterable[int]) -> tuple[Restored, float]:
        found: Restored = {}
        for p in partitions:
            found[p] = dict(restored(v) for v in self._kafka.held(p).changelog.values())
        return found, 0.0


class FakeConsumer:
    """One topic's records, fetched from where the processor last set each partition."""

    def __init__(self, log: dict[int, list[Record]]) -> None:
        self.log = log
        self.positions: dict[int, int] = {}

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(HEARTBEATS.name, p) for p in self.log}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp.partition] = offset

    async def seek_to_beginning(self, *tps: TopicPartition) -> bool:
        for tp in tps:
            self.positions[tp.partition] = 0
        return True

    async def getmany(
        self, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Record]]:
        await asyncio.sleep(0)
        batches = {}
        for p, records in self.log.items():
            start = self.positions.get(p, 0)
            if start < len(records):
                batches[TopicPartition(HEARTBEATS.name, p)] = records[start:]
                self.positions[p] = len(records)
        return batches

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.log[tp.partition]) for tp in tps}

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.log[tp.partition])


class NoDeadLetters:
    async def park(self, record: Record, error: Exception) -> None:
        raise AssertionError(f"a good record parked: {error}")


def record(partition: int, offset: int, key: bytes, value: bytes, at: float) -> Record:
    return ConsumerRecord(
        HEARTBEATS.name, partition, offset, int(at * 1000), LOG_APPEND_TIME, key, value,
        None, len(key), len(value), (),
    )  # fmt: skip


def moment(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


class Log:
    """The heartbeat partition 0 as an ingest writes it: heartbeats and watermarks."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def beat(
        self, point: str, seq: int, at: float, learners: int = 10, *, appended: float = 0.0
    ) -> None:
        """A heartbeat received at `at`, in the log `appended` seconds later."""
        value = heartbeat_record(point, "S1", seq, moment(at), moment(at), learners, None, False)
        self.records.append(record(0, len(self.records), point_key(point), value, at + appended))

    def marks(
        self,
        start: float,
        until: float,
        every: float = 0.25,
        *,
        appended: float = 0.0,
        ingest: str = "ingest-1",
    ) -> None:
        at = start
        while at <= until + 1e-9:
            value = watermark_record(ingest, at)
            key = watermark_key(ingest)
            self.records.append(record(0, len(self.records), key, value, at + appended))
            at += every


def processor(
    kafka: FakeKafka, metrics: ProcessorMetrics | None = None, *, checkpoint_seconds: float = 0.0
) -> tuple[Processor, FakePartitions]:
    """A processor committing at every chance, each commit a checkpoint unless told."""
    partitions = FakePartitions(kafka)
    made = Processor(
        partitions=partitions,
        dead_letters=NoDeadLetters(),  # type: ignore[arg-type]
        liveness_of=lambda _: LIVENESS,
        expected_of=lambda _: 0,
        rules=QualityRules(),
        timing=Timing(
            commit_seconds=0.0, idle_commit_seconds=0.0, checkpoint_seconds=checkpoint_seconds
        ),
        group="g",
        metrics=metrics,
    )
    return made, partitions


async def take(made: Processor, consumer: FakeConsumer) -> None:
    made._consumer = consumer  # as `run` does
    await made.assign({0})


async def feed(made: Processor, consumer: FakeConsumer) -> None:
    for tp, records in (await consumer.getmany(0, 10_000)).items():
        await made.apply(tp.partition, records)
    await made.commit_due()


async def decided(log: Log) -> FakeKafka:
    """What one processor, taking partition 0, commits of the whole log."""
    kafka = FakeKafka()
    made, _ = processor(kafka)
    consumer = FakeConsumer({0: log.records})
    await take(made, consumer)
    await feed(made, consumer)
    return kafka


def states(kafka: FakeKafka, point: str) -> list[str]:
    return [
        s.state.value
        for s in (decode(PointStatus, v) for v in kafka.held(0).statuses)
        if s.point_code == point
    ]


def track(kafka: FakeKafka, point: str) -> Track:
    saved: dict[TrackKey, Track] = dict(restored(v) for v in kafka.held(0).changelog.values())
    return saved[("S1", point)]


def oracle_says(log: Log, point: str) -> tuple[str, int]:
    """The state and reconnects the fault suite's oracle (tests/fault/oracle.py, written
    without attendance's code) recomputes from the same log."""
    session = SessionSchedule(
        code="S1",
        course_code="C1",
        starts_at=moment(START - 60),
        ends_at=moment(START + 3600),
        late_after_s=LIVENESS.late_after,
        disconnected_after_s=LIVENESS.disconnected_after,
    )
    recomputation = Recomputation(session, {point: Registered(point, None, 0)})
    recomputation.feed(
        Landed(r.partition, r.offset, r.key, r.value, r.timestamp / 1000) for r in log.records
    )
    truth = recomputation.oracle().truths[point]
    return truth.state, truth.reconnects


@pytest.fixture
def log() -> Log:
    log = Log()
    log.beat("A", 1, START)
    log.beat("B", 1, START + 0.1)
    log.marks(START + 0.25, START + 2.0)
    log.beat("A", 2, START + 2.1)
    log.marks(START + 2.25, START + 4.0)  # B silent since START + 0.1: late at + 3.1
    return log


async def test_a_commit_carries_the_decisions_the_clock_and_the_offset(log: Log) -> None:
    kafka = await decided(log)
    held = kafka.held(0)
    assert held.offset == len(log.records)
    assert states(kafka, "A") == ["connected"]
    assert states(kafka, "B") == ["connected", "late"]  # both, though in one commit
    assert decode(MonitorClock, held.clocks[-1]).judged_until == moment(START + 4.0)
    assert json.loads(held.metadata) == {
        "replay_from": len(log.records),
        "clock": json.loads(held.metadata)["clock"] | {"now": START + 4.0},
    }


def course_log() -> Log:
    """Three points over 40 s: A steady, B silent from 5 s (late, then disconnected) and back
    at 30 s, C leaving at 20 s."""
    log = Log()
    for second in range(40):
        at = START + second
        log.beat("A", second + 1, at, learners=10 + second % 3)
        if second < 5 or second >= 30:
            log.beat("B", second + 1, at + 0.1)
        if second <= 20:
            log.beat("C", second + 1, at + 0.2, learners=20)
        log.marks(at + 0.25, at + 1.0)
    return log


async def test_a_partition_taken_between_checkpoints_replays_to_the_same_decisions() -> None:
    """The first owner checkpoints once, commits twice more, and is fenced; the next replays
    from the checkpoint without writing those statuses again. What is committed, status for
    status, and the tracks checkpointed at the end, are those of one owner committing at the
    same offsets."""
    log = course_log()
    cuts = [len(log.records) // 4, len(log.records) // 2, 3 * len(log.records) // 4]
    alone, taken_over = FakeKafka(), FakeKafka()
    first, _ = processor(taken_over, checkpoint_seconds=3600)
    only, _ = processor(alone)
    consumers = [FakeConsumer({0: log.records[: cuts[0]]}) for _ in range(2)]
    for made, consumer in zip((first, only), consumers, strict=True):
        await take(made, consumer)
        for cut in cuts:
            consumer.log[0] = log.records[:cut]
            await feed(made, consumer)  # the first owner's first commit checkpoints
    assert json.loads(taken_over.held(0).metadata)["replay_from"] == cuts[0]
    assert taken_over.held(0).offset == cuts[-1]
    successor, _ = processor(taken_over)
    consumer = FakeConsumer({0: log.records})
    await take(successor, consumer)
    assert consumer.positions[0] == cuts[0]
    await feed(successor, consumer)
    consumers[1].log[0] = log.records
    await feed(only, consumers[1])
    assert taken_over.held(0).statuses == alone.held(0).statuses
    for point in "ABC":
        assert track(taken_over, point) == track(alone, point)
    assert states(alone, "B") == ["connected", "late", "disconnected", "connected"]
    assert taken_over.held(0).offset == len(log.records)


async def test_a_partition_committed_before_checkpoints_resumes_at_its_offset(log: Log) -> None:
    kafka = await decided(log)
    held = kafka.held(0)
    held.metadata = json.dumps(json.loads(held.metadata)["clock"])  # as it was written then
    log.beat("B", 2, START + 4.1)
    made, _ = processor(kafka)
    consumer = FakeConsumer({0: log.records})
    await take(made, consumer)
    assert consumer.positions[0] == held.offset
    await feed(made, consumer)
    assert states(kafka, "B") == ["connected", "late", "connected"]


@pytest.mark.parametrize(
    "failure",
    [KafkaTimeoutError(), TimedOut("partition 0: aborted by the broker, open past its timeout")],
    ids=["unknown outcome", "timed out on the broker"],
)
async def test_a_failed_commit_is_decided_again_the_same_way(log: Log, failure: Exception) -> None:
    kafka = FakeKafka()
    made, partitions = processor(kafka)
    consumer = FakeConsumer({0: log.records})
    await take(made, consumer)
    kafka.fail_next[0] = failure
    await feed(made, consumer)  # fails: nothing committed, the partition taken again
    assert kafka.held(0).offset is None and partitions.writers[0].closed
    assert consumer.positions[0] == 0  # set back to what was committed: the beginning
    await feed(made, consumer)
    assert kafka.held(0).offset == len(log.records)
    assert states(kafka, "B") == ["connected", "late"]  # once: the failed commit left nothing
    assert track(kafka, "B").state is PointState.LATE


async def test_a_fenced_instance_writes_nothing_more(log: Log) -> None:
    kafka = FakeKafka()
    zombie, _ = processor(kafka)
    consumer = FakeConsumer({0: log.records[:3]})
    await take(zombie, consumer)
    await feed(zombie, consumer)
    committed = kafka.held(0).offset
    successor, _ = processor(kafka)
    await take(successor, FakeConsumer({0: log.records}))  # opening fences the zombie
    consumer.log[0] = log.records
    await feed(zombie, consumer)
    assert kafka.held(0).offset == committed
    assert zombie.owned() == {}


async def test_a_restart_resumes_where_the_commit_left_off_outages_included() -> None:
    kafka = FakeKafka()
    first = Log()
    first.beat("A", 1, START)
    first.marks(START + 0.25, START + 1.0)
    made, _ = processor(kafka)
    consumer = FakeConsumer({0: first.records})
    await take(made, consumer)
    await feed(made, consumer)
    await made.close()
    # Kafka away for a minute; then A beats again, and the watermarks resume.
    later = Log()
    later.records = list(first.records)
    later.beat("A", 2, START + 61.0)
    later.marks(START + 61.25, START + 62.0)
    again, _ = processor(kafka)
    consumer = FakeConsumer({0: later.records})
    await take(again, consumer)
    assert consumer.positions[0] == len(first.records)
    await feed(again, consumer)
    assert states(kafka, "A") == ["connected"]  # never late, no reconnect
    assert track(kafka, "A").reconnects == 0


async def test_what_kafka_took_too_late_to_acknowledge_is_the_monitors_outage() -> None:
    """The partition without a leader from START + 1 to START + 12: what the ingest handed
    over meanwhile lands at once when it has one again. What waited longer than the ingest's
    timeout was answered 503: those heartbeats are not taken, and those watermarks prove no
    accepting either, so that stretch is no point's silence."""
    log = Log()
    log.beat("A", 1, START)
    log.marks(START + 0.25, START + 1.0)
    back = START + 12.0
    for step in range(5, 48):  # START + 1.25 to START + 11.75, in the order handed over
        at = START + step * 0.25
        if step % 8 == 4:  # A beats every 2 s, from START + 3
            log.beat("A", step // 8 + 1, at, appended=back - at)
        log.marks(at, at, appended=back - at)
    log.beat("A", 7, back + 0.1)
    log.marks(back + 0.25, back + 2.0)
    kafka = await decided(log)
    assert states(kafka, "A") == ["connected"]
    assert track(kafka, "A").reconnects == 0
    assert oracle_says(log, "A") == ("connected", 0)


async def test_a_point_waiting_for_its_answer_is_not_silent() -> None:
    """Kafka slow for 4 s, within the ingest's timeout: A's heartbeat at START + 1 is answered
    (202) only when it is stored, at START + 5, and A, like every agent, sends the next one
    after the answer. The watermarks of those 4 s are stored with it: the monitor was
    accepting, but A was waiting on the monitor, not silent."""
    log = Log()
    log.beat("A", 1, START)
    log.marks(START + 0.25, START + 0.75)
    log.beat("A", 2, START + 1.0, appended=4.0)
    for step in range(5, 20):  # START + 1.25 to START + 4.75, stored at START + 5
        at = START + step * 0.25
        log.marks(at, at, appended=START + 5.0 - at)
    log.beat("A", 3, START + 5.05)
    log.marks(START + 5.25, START + 7.0)
    kafka = await decided(log)
    assert states(kafka, "A") == ["connected"]
    assert track(kafka, "A").reconnects == 0
    assert oracle_says(log, "A") == ("connected", 0)


async def test_a_point_refused_while_others_got_through_is_not_silent() -> None:
    """The partition's leader moves: what the ingest handed over from START + 1 is stored at
    START + 6.2. A's heartbeat of START + 1 waited past the ingest's 5 s timeout: answered 503
    at START + 6, it is not taken. What came after it waited less and is taken, the
    watermarks too, so the monitor was accepting from START + 1.25. A sent again after its
    answer, as every agent does: it was waiting on the monitor, not silent."""
    log = Log()
    log.beat("A", 1, START)
    log.marks(START + 0.25, START + 0.75)
    stored = START + 6.2
    log.beat("A", 2, START + 1.0, appended=stored - (START + 1.0))
    for step in range(5, 25):  # START + 1.25 to START + 6.0
        at = START + step * 0.25
        log.marks(at, at, appended=stored - at)
    log.beat("A", 3, START + 6.05, appended=0.15)
    log.marks(START + 6.25, START + 8.0)
    kafka = await decided(log)
    assert states(kafka, "A") == ["connected"]
    assert track(kafka, "A").reconnects == 0
    assert oracle_says(log, "A") == ("connected", 0)


async def test_an_ingest_still_delivering_after_an_outage_is_waited_for() -> None:
    """Kafka away from START + 2.5 to START + 22.5 for both ingests: no instance proves
    anything meanwhile. When it is back, ingest-1's watermark lands first, ingest-2's
    heartbeat of A (received at START + 20.5, stored 2.1 s later: answered 202) right after.
    ingest-2 is 20 s behind ingest-1 then, but only because of the outage: it must still be
    waited for. A's silence, outage excused, lasted 1.5 s."""
    log = Log()
    log.beat("A", 1, START)
    for ingest in ("ingest-1", "ingest-2"):
        log.marks(START + 0.25, START + 2.5, ingest=ingest)
    back = START + 22.5
    log.marks(back, back, appended=0.05)
    log.beat("A", 2, START + 20.5, appended=back + 0.1 - (START + 20.5))
    for ingest in ("ingest-2", "ingest-1"):
        log.marks(back + 0.25, back + 2.0, ingest=ingest)
    kafka = await decided(log)
    assert oracle_says(log, "A") == ("connected", 0)
    assert states(kafka, "A") == ["connected"]
    assert track(kafka, "A").reconnects == 0


async def test_a_point_gone_before_an_outage_comes_back_reconnected() -> None:
    """A falls silent at START and is disconnected at START + 6, while the monitor is still
    accepting; Kafka is away from START + 7 to START + 30. The outage excuses nothing of a
    silence already judged: neither does A's heartbeat refused meanwhile (received at
    START + 24.9, stored past the timeout), and A's heartbeat after the outage is a reconnect.
    What shows the outage first is B's heartbeat, not a watermark."""
    log = Log()
    log.beat("A", 1, START)
    log.beat("B", 1, START + 0.1)
    log.marks(START + 0.25, START + 7.0)
    back = START + 30.0
    log.beat("B", 2, START + 29.0, appended=back + 0.1 - (START + 29.0))
    log.beat("A", 2, START + 24.9, appended=back + 0.2 - (START + 24.9))
    log.beat("A", 3, back + 0.1, appended=0.2)
    log.marks(back + 0.5, back + 2.0)
    kafka = await decided(log)
    assert oracle_says(log, "A") == ("connected", 1)
    assert states(kafka, "A") == ["connected", "late", "disconnected", "connected"]
    assert track(kafka, "A").reconnects == 1


async def test_a_point_answered_just_before_an_outage_is_excused_like_the_rest() -> None:
    """A's heartbeat is answered at START + 0.6, after the last watermark of the partition
    (START + 0.5): then Kafka is away for a minute. Silence since the answer is the outage's
    as much as anyone's."""
    log = Log()
    log.beat("A", 1, START, appended=0.6)
    log.marks(START + 0.25, START + 0.5, appended=0.1)
    log.beat("A", 2, START + 60.1)
    log.marks(START + 60.25, START + 62.0)
    kafka = await decided(log)
    assert states(kafka, "A") == ["connected"]
    assert track(kafka, "A").reconnects == 0
    assert oracle_says(log, "A") == ("connected", 0)


async def test_a_stop_drains_the_partitions_and_commits_them(log: Log) -> None:
    kafka = FakeKafka()
    made, _ = processor(kafka)
    consumer = FakeConsumer({0: log.records})
    made._consumer = consumer
    await made.assign({0})
    made.stop()
    await made.run(consumer, max_records=10_000)
    assert kafka.held(0).offset == len(log.records)
    assert made.owned() == {}


async def test_the_lag_counts_the_records_the_partitions_hold_beyond_what_was_processed(
    log: Log,
) -> None:
    registry = CollectorRegistry()
    made, _ = processor(FakeKafka(), ProcessorMetrics(registry, lambda: ()))
    consumer = FakeConsumer({0: log.records})
    await take(made, consumer)
    await made._round(consumer, max_records=10_000)
    assert registry.get_sample_value("processor_lag_records") == 0
    log.beat("A", 3, START + 4.1)
    log.marks(START + 4.25, START + 5.0)  # written after that fetch: 5 records not processed
    consumer.getmany = fetch_nothing  # type: ignore[method-assign]
    await made._round(consumer, max_records=10_000)
    assert registry.get_sample_value("processor_lag_records") == 5


async def fetch_nothing(timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
    return {}
