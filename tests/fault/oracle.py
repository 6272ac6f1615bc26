"""The truth of a session, recomputed from the raw records, and how the system differs from it.

The recomputation reads only what the system cannot have tampered with after the fact: the
records on `attendance.heartbeats` (each heartbeat with the server's receive time, each record
with the broker's append time) and the registry topics. It applies the rules of
docs/reliability.md on its own, without `attendance.domain` or `attendance.clock`: a shared bug
would otherwise agree with itself. Besides the session's timeouts:

- a heartbeat the broker appended more than the ingest's publish timeout after it was received
  was answered 503 (the ingest gives up by then): it was never accepted, and is not taken; but
  its room spoke, and waited for that answer: a present point's silence counts from then;
- in each partition, every record is evidence that the monitor was accepting at its moment (a
  heartbeat's receive time, a watermark's); where the evidence stops for longer than the outage
  allowance, the monitor could not accept, and that stretch is no silence of a point still
  present once its silence up to the last watermark before it is judged.

It is asked once the processor's consumer lag is zero, and its answer is compared with
attendance's latest committed status per point and reporting's totals.
"""

import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.codec import ContractError, decode
from contracts.events import (
    Heartbeat,
    IngestWatermark,
    PointRegistration,
    PointStatus,
    SessionSchedule,
)
from contracts.topics import HEARTBEATS, POINT_STATUS, REGISTRY_POINTS, REGISTRY_SESSIONS, Topic
from tests.conftest import ARTIFACTS
from tests.e2e.helpers import eventually

PROCESSOR_GROUP = "attendance-processor"
PRESENT = ("connected", "late")
STATES = ("connected", "late", "disconnected", "never_connected")
LOG_APPEND_TIME = 1


@dataclass(frozen=True)
class Allowances:
    """The figures of docs/reliability.md the truth depends on, as the services are set."""

    publish_timeout: float = 5.0  # ATTENDANCE_PUBLISH_TIMEOUT_SECONDS
    outage_after: float = 1.0  # ATTENDANCE_OUTAGE_AFTER_SECONDS


# --- reading topics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Landed:
    """A record as the broker keeps it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    appended_at: float | None  # the broker's append time, where the topic keeps it
    timestamp: float = 0.0  # the record's own timestamp, whichever kind the topic keeps


class Tail:
    """A `read_committed` reader of one topic from its beginning: each `read()` hands out only
    the records committed since the previous one, up to the end as of the call (what a
    reader, the desk among them, can ever see), in offset order within each partition. A long
    run reads each record once instead of the whole topic at every look. Its consumer stays
    open from `async with` to its end; entered again, it carries on where it stopped."""

    def __init__(self, bootstrap: str, topic: Topic) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self._partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        self._positions: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> "Tail":
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, isolation_level="read_committed"
        )
        await consumer.start()
        consumer.assign(self._partitions)
        await consumer.seek_to_beginning(*self._partitions)
        for tp, position in self._positions.items():
            consumer.seek(tp, position)
        self._consumer = consumer
        return self

    async def __aexit__(self, *_: object) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def read(self) -> list[Landed]:
        consumer = self._consumer
        assert consumer is not None, "read() outside `async with`"
        ends = await consumer.end_offsets(self._partitions)
        found: list[Landed] = []
        remaining = {tp for tp in self._partitions if await consumer.position(tp) < ends[tp]}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                found += [_landed(tp.partition, r) for r in records]
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        for tp in self._partitions:
            self._positions[tp] = await consumer.position(tp)
        return found


def _landed(partition: int, record: Any) -> Landed:
    stamped = record.timestamp / 1000
    appended = stamped if record.timestamp_type == LOG_APPEND_TIME else None
    return Landed(partition, record.offset, record.key, record.value, appended, stamped)


async def read_records(bootstrap: str, topic: Topic) -> list[Landed]:
    """Every committed record of `topic` up to its end as of now, partition by partition in
    offset order."""
    async with Tail(bootstrap, topic) as tail:
        found = await tail.read()
    return sorted(found, key=lambda r: (r.partition, r.offset))


async def read_topic(bootstrap: str, topic: Topic) -> list[tuple[bytes | None, bytes | None]]:
    """Every committed record of `topic`, partition by partition in offset order."""
    return [(r.key, r.value) for r in await read_records(bootstrap, topic)]


async def caught_up(bootstrap: str, patience: float, group: str = PROCESSOR_GROUP) -> None:
    """Wait until the group has committed every record the heartbeat topic holds now (the
    ingest's watermarks keep coming, so "no lag at all" would never be seen)."""
    ends = await read_end_offsets(bootstrap)

    def done(committed: dict[int, int]) -> bool:
        return all(committed.get(p, 0) >= end for p, end in ends.items())

    await eventually(lambda: committed_offsets(bootstrap, group), done, patience)


async def processor_lag(bootstrap: str, group: str = PROCESSOR_GROUP) -> int:
    """Heartbeats on the topic the processor group has not committed yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        partitions = [TopicPartition(HEARTBEATS.name, p) for p in range(HEARTBEATS.partitions)]
        ends = await consumer.end_offsets(partitions)
        return sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in partitions)
    finally:
        await consumer.stop()
        await admin.close()


# --- the registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    code: str
    province: str | None
    expected: int


async def enrolled(
    bootstrap: str, session_code: str
) -> tuple[SessionSchedule, dict[str, Registered]]:
    """The session and the active points enrolled in its course, from the registry topics."""
    sessions = {}
    for key, value in await read_topic(bootstrap, REGISTRY_SESSIONS):
        if key == session_code.encode() and value is not None:
            sessions[key] = decode(SessionSchedule, value)
    session = sessions[session_code.encode()]
    points: dict[bytes, PointRegistration | None] = {}
    for key, value in await read_topic(bootstrap, REGISTRY_POINTS):
        if key is None:
            continue
        try:
            points[key] = None if value is None else decode(PointRegistration, value)
        except ContractError:
            continue  # a dead letter: the services skip it too
    return session, {
        p.code: Registered(p.code, p.province_code, p.expected_learners)
        for p in points.values()
        if p is not None and p.active and session.course_code in p.courses
    }


# --- the connection states, recomputed ------------------------------------------------------------


@dataclass
class Truth:
    """One point of one session as the raw heartbeats say it must be."""

    state: str = "never_connected"
    seq: int = -1
    learners: int = 0
    reconnects: int = 0
    last_seen: float | None = None
    first_seen: float | None = None
    present_seconds: float = 0.0
    beats_applied: int = 0
    # The last heartbeat, or its answer if that came later (a sender waits for it), moved
    # later by each outage of the monitor since: silence counts from here.
    quiet_from: float | None = None

    def silence(self, until: float, late_after: float, disconnected_after: float) -> None:
        """What silence since the last heartbeat did to a present point by `until`."""
        if self.state not in PRESENT or self.quiet_from is None:
            return
        quiet = until - self.quiet_from
        if quiet >= disconnected_after:
            self.state = "disconnected"
        elif quiet >= late_after:
            self.state = "late"

    def outage(
        self,
        began: float,
        seconds: float,
        judged_until: float | None,
        late_after: float,
        disconnected_after: float,
    ) -> None:
        """The monitor accepted nothing for `seconds` after `began`: not this point's silence
        (nor the part of it after its answer, when that came after `began`). What the silence
        had done up to `judged_until` (the watermarks before the outage) is done: a point
        disconnected by then is excused nothing."""
        if judged_until is not None:
            self.silence(judged_until, late_after, disconnected_after)
        if self.state not in PRESENT or self.quiet_from is None:
            return
        if self.quiet_from <= began:
            self.quiet_from += seconds
        else:
            self.quiet_from = max(self.quiet_from, began + seconds)

    def refused(
        self, answered_at: float, judged_until: float | None, late_after: float, gone_after: float
    ) -> None:
        """One of its heartbeats answered 503 at `answered_at`: no silence before then, for a
        point still present once the silence up to `judged_until` was judged."""
        if judged_until is not None:
            self.silence(judged_until, late_after, gone_after)
        if self.state in PRESENT and self.quiet_from is not None:
            self.quiet_from = max(self.quiet_from, answered_at)

    def hear(
        self,
        beat: Heartbeat,
        late_after: float,
        disconnected_after: float,
        *,
        answered_at: float | None = None,
        ends_at: float = math.inf,
    ) -> None:
        """`answered_at`: when the ingest could answer it, once the broker had stored it.
        Attendance adds up until the session's `ends_at` only."""
        if beat.seq <= self.seq:
            return  # a duplicate or an older heartbeat changes nothing
        received = beat.received_at.timestamp()
        self.silence(received, late_after, disconnected_after)
        if self.state in PRESENT and self.last_seen is not None:
            self.present_seconds += max(0.0, min(received, ends_at) - min(self.last_seen, ends_at))
        coming_back = self.state in ("late", "disconnected") and received <= ends_at
        self.state = "disconnected" if beat.leaving else "connected"
        self.reconnects += self.state == "connected" and coming_back
        self.seq, self.learners = beat.seq, beat.learners
        self.last_seen = received if self.last_seen is None else max(self.last_seen, received)
        heard = max(self.last_seen, answered_at or self.last_seen)
        self.quiet_from = max(self.quiet_from or heard, heard)
        self.first_seen = received if self.first_seen is None else self.first_seen
        self.beats_applied += 1


@dataclass
class Oracle:
    session: SessionSchedule
    points: dict[str, Registered]
    truths: dict[str, Truth]
    # (point, seq) of every heartbeat of the session on the topic, and how many records.
    on_topic: set[tuple[str, int]] = field(default_factory=set)
    records: int = 0

    def totals(self) -> dict[str, Any]:
        counted: Counter[str] = Counter()
        provinces: dict[str, Counter[str]] = {}
        for code, point in self.points.items():
            truth = self.truths.get(code, Truth())
            counted["registered"] += 1
            counted[truth.state] += 1
            counted["learners_expected"] += point.expected
            counted["learners_present"] += truth.learners if truth.state in PRESENT else 0
            provinces.setdefault(point.province or "", Counter())[truth.state] += 1
        overall = {k: counted[k] for k in ("registered", *STATES)}
        overall |= {k: counted[k] for k in ("learners_present", "learners_expected")}
        return overall | {
            "by_province": {p: {s: c[s] for s in STATES} for p, c in sorted(provinces.items())}
        }


async def session_heartbeats(
    bootstrap: str, session_code: str
) -> list[tuple[bytes | None, bytes, Heartbeat]]:
    """The session's raw heartbeats in topic order, as key, value and decoded record; the
    dead-letter tests leave records on the same topic that are not heartbeats at all."""
    found = []
    for key, value in await read_topic(bootstrap, HEARTBEATS):
        try:
            beat = decode(Heartbeat, value)
        except ContractError:
            continue
        if value is not None and beat.session_code == session_code:
            found.append((key, value, beat))
    return found


class Recomputation:
    """The truth of one session, built as the raw heartbeat records are fed to it (in offset
    order within each partition; partitions may interleave) and asked for at any time."""

    def __init__(
        self,
        session: SessionSchedule,
        points: dict[str, Registered],
        allowances: Allowances = Allowances(),
    ) -> None:
        self.session, self.points, self.allowances = session, points, allowances
        self._partitions: dict[int, _PartitionTruth] = {}
        # (point, seq) of every heartbeat of the session on the topic, and how many records.
        self.on_topic: set[tuple[str, int]] = set()
        self.records = 0

    def feed(self, records: Iterable[Landed]) -> None:
        for record in records:
            self._feed(record)

    def _feed(self, record: Landed) -> None:
        moment, beat, taken = _moment_of(record, self.allowances)
        if moment is None:
            return
        partition = self._partitions.setdefault(record.partition, _PartitionTruth())
        if not taken:
            if beat is not None and beat.session_code == self.session.code:
                truth = partition.heard.get(beat.point_code)
                if truth is not None:
                    truth.refused(
                        moment + self.allowances.publish_timeout,
                        partition.proved,
                        self.session.late_after_s,
                        self.session.disconnected_after_s,
                    )
            return
        outage_after = self.allowances.outage_after
        evidence = partition.evidence
        if evidence is not None and moment - evidence > outage_after:
            late, gone = self.session.late_after_s, self.session.disconnected_after_s
            for truth in partition.heard.values():
                truth.outage(
                    evidence, moment - evidence - outage_after, partition.proved, late, gone
                )
        partition.evidence = moment if evidence is None else max(evidence, moment)
        if beat is None:
            proved = partition.proved
            partition.proved = moment if proved is None else max(proved, moment)
        elif beat.session_code == self.session.code:
            self.records += 1
            self.on_topic.add((beat.point_code, beat.seq))
            truth = partition.heard.setdefault(beat.point_code, Truth())
            truth.hear(
                beat,
                self.session.late_after_s,
                self.session.disconnected_after_s,
                answered_at=record.appended_at,
                ends_at=self.session.ends_at.timestamp(),
            )

    def oracle(self, now: float | None = None) -> Oracle:
        """The truth as of `now` (server time; by default, as far as each partition's
        watermarks prove the ingest was accepting). What was fed is left as it is: silence up
        to a moment is judged on copies, so feeding can go on."""
        late, gone = self.session.late_after_s, self.session.disconnected_after_s
        truths: dict[str, Truth] = {}
        for _, partition in sorted(self._partitions.items()):
            proved = partition.proved if partition.proved is not None else time.time()
            until = now if now is not None else proved
            for code, fed in partition.heard.items():
                truth = replace(fed)
                truth.silence(until, late, gone)
                truths[code] = truth
        return Oracle(self.session, self.points, truths, self.on_topic, self.records)


@dataclass
class _PartitionTruth:
    """What one heartbeat partition told so far."""

    heard: dict[str, Truth] = field(default_factory=dict)
    evidence: float | None = None  # the latest moment the ingest was proved accepting
    proved: float | None = None  # the newest watermark


async def recompute(
    bootstrap: str,
    session_code: str,
    now: float | None = None,
    allowances: Allowances = Allowances(),
) -> Oracle:
    """The truth as of `now` (server time; by default, as far as each partition's watermarks
    prove the ingest was accepting) from the raw records of the session."""
    session, points = await enrolled(bootstrap, session_code)
    recomputation = Recomputation(session, points, allowances)
    recomputation.feed(await read_records(bootstrap, HEARTBEATS))
    return recomputation.oracle(now)


def _moment_of(
    record: Landed, allowances: Allowances
) -> tuple[float | None, Heartbeat | None, bool]:
    """The record's moment, the heartbeat it is (if one), and whether it is taken: a record
    stored past the publish timeout proves no accepting (a heartbeat then was answered 503, and
    the ingest accepted nothing with that watermark). (None, None, False) if unreadable."""
    if record.key is not None and record.key.startswith(b"~"):
        try:
            mark = decode(IngestWatermark, record.value)
        except ContractError:
            return None, None, False
        moment, beat = mark.accepting_at.timestamp(), None
    else:
        try:
            beat = decode(Heartbeat, record.value)
        except ContractError:
            return None, None, False
        moment = beat.received_at.timestamp()
    stored_late = record.appended_at is not None and (
        record.appended_at - moment > allowances.publish_timeout
    )
    return moment, beat, not stored_late


# --- the system, compared ------------------------------------------------------------------------


async def latest_statuses(bootstrap: str, session_code: str) -> dict[str, PointStatus]:
    latest: dict[str, PointStatus] = {}
    prefix = f"{session_code}/".encode()
    for key, value in await read_topic(bootstrap, POINT_STATUS):
        if key is None or not key.startswith(prefix) or value is None:
            continue
        try:
            status = decode(PointStatus, value)
        except ContractError:
            continue
        latest[status.point_code] = status
    return latest


def served_totals(body: dict[str, Any]) -> dict[str, Any]:
    """Reporting's totals, reduced to what the oracle computes."""
    keys = ("registered", *STATES, "learners_present", "learners_expected")
    return {k: body.get(k) for k in keys} | {
        "by_province": {
            p: {s: c[s] for s in STATES} for p, c in sorted(body.get("by_province", {}).items())
        }
    }


@dataclass(repr=False)
class Comparison:
    oracle: Oracle
    totals: dict[str, Any]
    status_differences: dict[str, tuple[Any, Any]]
    totals_differences: dict[str, tuple[Any, Any]]

    @property
    def differences(self) -> int:
        return len(self.status_differences) + len(self.totals_differences)

    def __repr__(self) -> str:
        # What a failed `eventually` shows: the disagreements, not the whole oracle.
        return f"Comparison(statuses: {self.status_differences}, totals: {self.totals_differences})"


def status_differences(oracle: Oracle, statuses: dict[str, PointStatus]) -> dict[str, Any]:
    """Per point, (truth, status) where attendance's latest status disagrees."""
    differences = {}
    for code in oracle.points:
        truth = oracle.truths.get(code, Truth())
        status = statuses.get(code)
        expected = (truth.state, truth.learners if truth.state != "never_connected" else 0)
        expected_reconnects = truth.reconnects
        seen = ("never_connected", 0) if status is None else (status.state.value, status.learners)
        seen_reconnects = 0 if status is None else status.reconnects
        if (expected, expected_reconnects) != (seen, seen_reconnects):
            differences[code] = ((*expected, expected_reconnects), (*seen, seen_reconnects))
    return differences


async def compare(
    bootstrap: str,
    reporting: httpx.AsyncClient,
    session_code: str,
    allowances: Allowances = Allowances(),
) -> Comparison:
    oracle = await recompute(bootstrap, session_code, allowances=allowances)
    statuses = await latest_statuses(bootstrap, session_code)
    response = await reporting.get(f"/v1/sessions/{session_code}/totals")
    served = served_totals(response.json()) if response.status_code == 200 else {}
    return comparison_of(oracle, statuses, served)


def comparison_of(
    oracle: Oracle, statuses: dict[str, PointStatus], served: dict[str, Any]
) -> Comparison:
    """The oracle against attendance's latest statuses and reporting's totals (as
    `served_totals` reduces them)."""
    truth = oracle.totals()
    totals_differences = {
        key: (truth[key], served.get(key)) for key in truth if truth[key] != served.get(key)
    }
    return Comparison(oracle, served, status_differences(oracle, statuses), totals_differences)


async def missing_from_topic(
    bootstrap: str,
    session_code: str,
    accepted: Iterable[tuple[str, int]],
    allowances: Allowances = Allowances(),
) -> set[tuple[str, int]]:
    """Heartbeats answered 202 that are not on `attendance.heartbeats`, or landed there only
    after the publish timeout (read once the senders have stopped, so every answer counted was
    given before the read)."""
    on_topic = (await recompute(bootstrap, session_code, allowances=allowances)).on_topic
    return set(accepted) - on_topic


async def agreement(
    bootstrap: str,
    reporting_url: str,
    session_code: str,
    patience: float = 90.0,
    allowances: Allowances = Allowances(),
) -> Comparison:
    """Wait for the processor's lag to reach zero, then for the system to equal the oracle.

    Both sides move while points keep beating, so a disagreement is only final once the
    patience ran out: a state on the edge of `late_after` may be judged a moment apart.
    """
    await caught_up(bootstrap, patience)
    async with httpx.AsyncClient(base_url=reporting_url, timeout=10) as reporting:
        try:
            return await eventually(
                lambda: compare(bootstrap, reporting, session_code, allowances),
                lambda comparison: comparison.differences == 0,
                patience,
            )
        except AssertionError:
            await write_timelines(bootstrap, session_code)
            raise


async def write_timelines(bootstrap: str, session_code: str) -> None:
    """Each point's heartbeats and statuses in order, for whoever has to find out why."""
    lines: dict[str, list[str]] = {}
    for topic in (HEARTBEATS, POINT_STATUS):
        for _, value in await read_topic(bootstrap, topic):
            if value is None:
                continue
            try:
                record: Heartbeat | PointStatus = (
                    decode(Heartbeat, value) if topic is HEARTBEATS else decode(PointStatus, value)
                )
            except ContractError:
                continue
            if record.session_code == session_code:
                lines.setdefault(record.point_code, []).append(_timeline_line(record))
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"fault-timeline-{session_code}.txt"
    path.write_text(
        "".join(f"== {code}\n" + "\n".join(found) + "\n" for code, found in lines.items())
    )


def _timeline_line(record: Heartbeat | PointStatus) -> str:
    if isinstance(record, Heartbeat):
        return f"beat   seq={record.seq} received={record.received_at.timestamp():.3f}"
    last = record.last_heartbeat_at.timestamp() if record.last_heartbeat_at else None
    return (
        f"status {record.state.value} since={record.since.timestamp():.3f} last={last} "
        f"reconnects={record.reconnects} learners={record.learners}"
    )


async def read_end_offsets(bootstrap: str) -> dict[int, int]:
    """The end offset of each heartbeat partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(HEARTBEATS.name, p) for p in range(HEARTBEATS.partitions)]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def committed_offsets(bootstrap: str, group: str = PROCESSOR_GROUP) -> dict[int, int]:
    """The group's committed offset of each heartbeat partition (0 where none yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {
        tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == HEARTBEATS.name
    }


async def group_members(bootstrap: str, group: str = PROCESSOR_GROUP) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    # The raw DescribeGroups answer: (error, group, state, protocol type, protocol, members, ...)
    return len(response.groups[0][5])


async def status_history(bootstrap: str, session_code: str) -> dict[str, list[PointStatus]]:
    """Every status each point of the session was published with, in order."""
    history: dict[str, list[PointStatus]] = {}
    prefix = f"{session_code}/".encode()
    for key, value in await read_topic(bootstrap, POINT_STATUS):
        if key is not None and key.startswith(prefix) and value is not None:
            status = decode(PointStatus, value)
            history.setdefault(status.point_code, []).append(status)
    return history
