"""The attendance service against a real Kafka broker: restore, processing, detection, ingest.

    uv run python bench/attendance_bench.py [--only NAME ...] [--size FACTOR] [--runs 3]
        [--profile] [--py-spy] [--client raw|httpx] [--clients 1] [--concurrency 64]

Every benchmark starts its own single-node Kafka broker on 127.0.0.1 (devstack), creates the
topics, and stops everything it started (broker, service processes, the trivial HTTP servers)
even on error. `--size 0.05` shrinks the data and the durations for a quick check. Medians and
spread over `--runs`; each compares ours with a baseline measured in the same run on the same
broker. Each table ends with how busy the machine already was before the benchmark started:
other work on the machine skews every number here.

- restore: `attendance.restore.read_changelog` over the 12 partitions of the state changelog
  (N = 100,000 track snapshots, decoded into Tracks) against a bare aiokafka consumer draining
  the same partitions with the same loop, without decoding; seconds, ratio, tracks/s, and the
  memory the restored dict holds per track (tracemalloc, in a separate untimed pass).
- processor: a backlog of M = 200,000 heartbeats of 10,000 points on `attendance.heartbeats`.
  Baseline: a bare consumer in its own group doing `getmany` + `json.loads` until it read M
  records. Ours: one attendance process (processor only), timed from its start until its
  group's committed offsets cover the backlog, and from its first processed record (its
  /metrics) to done. A fresh broker per run, so no run restores what the previous one wrote.
  `--profile` adds, on the last run's broker, an in-process `Processor` fed the same backlog with
  the service's publishers, bare aiokafka publishers and none, and a cProfile of it.
- detection: the three services; a course of 50 points beating every second (late after 3 s,
  disconnected after 6 s); 10 points stopped at known moments per round (`--runs` rounds);
  delay from the last accepted heartbeat's server `received_at` to the `disconnected` record
  seen on `attendance.point-status`. Also the freshness of ordinary changes (a 202 that changed
  the learner count -> its status record seen), against a bare produce -> consume round trip.
- ingest: `POST /v1/heartbeats` requests/s and latency from a load generator with 64 requests
  in flight (one keep-alive connection each) for 500 points (per-point rate limit raised for
  the bench), against the same generator on a trivial ASGI app (202, no work) and on a FastAPI
  app with the same route signature and no work, served by the same uvicorn. The default
  generator is a minimal HTTP/1.1 client on asyncio streams (`--client raw`): httpx with 64
  connections in one pool spends more CPU in httpcore's pool bookkeeping than the server spends
  answering; `--client httpx` uses one AsyncClient per connection instead. CPU of each process
  and of the machine over the window say which side bounds the rate.

`--py-spy` records the attendance process (`py-spy record --gil`; py-spy on PATH, else
`uvx py-spy`) while it processes the backlog and while it takes the ingest load, and prints
where the time with the GIL held goes.
"""

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import itertools
import json
import math
import os
import pstats
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated, Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from fastapi import Depends, FastAPI
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from harness import (
    Figure,
    Table,
    cpu_seconds,
    kafka,
    machine_busy,
    med,
    pct,
    py_spy_command,
    record_figure,
    spread,
    step,
)
from prometheus_client import CollectorRegistry

from attendance.domain import Liveness, Track
from attendance.encoding import snapshot
from attendance.ingest import Accepted, HeartbeatIn
from attendance.metrics import ProcessorMetrics
from attendance.partitions import KafkaPartitions, Outgoing
from attendance.processor import Processor, Timing
from attendance.quality import QualityRules
from attendance.records import RecordWriter
from attendance.restore import Restored, read_changelog
from contracts.codec import decode, encode
from contracts.events import Heartbeat, PointState, PointStatus, SessionSchedule
from contracts.topics import (
    HEARTBEATS,
    POINT_STATUS,
    REGISTRY_SESSIONS,
    STATE_CHANGELOG,
    Topic,
    point_key,
    session_key,
    status_key,
)
from devstack.ports import free_port
from devstack.services import ServiceProcess, running_services, start_service
from devstack.simulate import CoursePlan, SimulatedPoint, register_course
from servicekit.database import make_engine
from servicekit.kafka import DEFAULT_PARTITIONER, DeadLetters, make_broker
from servicekit.provision import ensure_topics

BENCHES = ("restore", "processor", "detection", "ingest")
ROUNDTRIP = Topic("bench.roundtrip", 1, key="sample number")

# --- small helpers ---------------------------------------------------------------------------


def partition_of(point_code: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives the point's key (murmur2)."""
    every = list(range(partitions))
    return int(DEFAULT_PARTITIONER(point_key(point_code), every, every))


class Spy:
    """`py-spy record --gil` of one process (by the pid this bench started), as collapsed
    stacks: where the process holds the GIL, i.e. where its Python time goes."""

    def __init__(self, pid: int, seconds: float, out: Path) -> None:
        self.out = out
        self._duration = max(1, int(seconds))
        self._began = time.monotonic()
        self.seconds = float(self._duration)
        self._process = subprocess.Popen(
            [
                *py_spy_command(),
                "record",
                "-p",
                str(pid),
                "-d",
                str(max(1, int(seconds))),
                "-r",
                "200",
                "--gil",
                "-f",
                "raw",
                "-o",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )

    def wait(self) -> None:
        try:
            self._process.wait(60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def stop(self) -> None:
        self.seconds = min(self._duration, time.monotonic() - self._began)
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # py-spy writes what it has
            self.wait()


REPORTS: list[str] = []  # profiles, printed again after the tables


Rule = tuple[str, Callable[[str], bool]]


def spy_report(raw: Path, title: str, rules: Sequence[Rule], seconds: float) -> str:
    """Share of the samples per category (the first rule matching the stack wins) and the
    functions with the most samples of their own."""
    if not raw.exists():
        return f"== {title}: no py-spy output (is py-spy runnable? {' '.join(py_spy_command())})"
    total = 0
    shares: dict[str, int] = {}
    own: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        joined = ";".join(frames)
        label = next((name for name, match in rules if match(joined)), "other")
        shares[label] = shares.get(label, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    if total == 0:
        return f"== {title}: no samples"
    possible = seconds * 200
    lines = [
        f"== {title}",
        f"   {total} samples with the GIL held of ~{possible:.0f} possible"
        f" ({100 * total / possible:.0f}% of the wall time)",
    ]
    for label, count in sorted(shares.items(), key=lambda kv: -kv[1]):
        lines.append(f"   {100 * count / total:5.1f}%  {label}")
    lines.append("   functions with the most own samples:")
    for name, count in sorted(own.items(), key=lambda kv: -kv[1])[:15]:
        lines.append(f"   {100 * count / total:5.1f}%  {name}")
    return "\n".join(lines)


def _frame(text: str) -> str:
    name, _, where = text.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].removesuffix(')')})" if where else name


def has(*parts: str) -> Callable[[str], bool]:
    return lambda stack: all(part in stack for part in parts)


PROCESSOR_RULES: list[Rule] = [
    (
        "attendance records: SQLAlchemy compiling the multi-row upsert",
        has("upsert (", "_compile_w_cache"),
    ),
    ("attendance records: upsert, the rest (execute, sqlite)", has("upsert (")),
    ("attendance records: record_of", has("record_of")),
    (
        "processor: transactions (send, offsets, commit)",
        has("Processor._commit", "PartitionWriter.commit"),
    ),
    ("processor: encode snapshot/status (msgspec)", has("Processor._commit", "encoding.py")),
    ("processor: _commit, the rest", has("Processor._commit")),
    ("processor: quality.flagged", has("Processor.apply", "flagged (")),
    (
        "processor: domain.on_heartbeat (state machine)",
        has("Processor.apply", "on_heartbeat ("),
    ),
    ("processor: watermarks (clock, expiry)", has("Processor.apply", "on_watermark")),
    (
        "processor: Tracker.on_beat, the rest (_store, wheel)",
        has("Processor.apply", "Tracker.on_beat"),
    ),
    ("processor: decode Heartbeat (msgspec)", has("Processor.apply", "heartbeat_of")),
    ("processor: apply, the rest", has("Processor.apply")),
    ("faststream subscriber: uuid4 per record of a batch", has("consume", "faststream", "uuid4")),
    ("faststream subscriber: the rest (parser, middlewares, fetch)", has("faststream", "consume")),
    ("/metrics scrape", has("generate_latest")),
    ("HTTP (uvicorn, FastAPI)", has("uvicorn/protocols")),
    ("aiokafka background (fetcher, sender, connections)", has("aiokafka")),
]

INGEST_RULES: list[Rule] = [
    (
        "ingest: dependencies (bearer, token hash, registry lookup, threadpool hop)",
        has("solve_dependencies"),
    ),
    ("ingest: publish heartbeat (faststream + aiokafka)", has("_publish_all")),
    ("ingest: handler, the rest (rate limit, admission, Heartbeat model)", has("post_heartbeat")),
    (
        "ingest: FastAPI request handler, the rest (body parse + validation, response)",
        has("get_request_handler"),
    ),
    ("HTTP: FastAPI/Starlette middlewares + routing", has("FastAPI.__call__")),
    ("HTTP: uvicorn h11 protocol", has("uvicorn/protocols")),
    ("anyio threadpool (sync dependency)", has("anyio")),
    *PROCESSOR_RULES,
]


async def produce_all(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes, bytes, int | None]],
    chunk: int = 10_000,
    timestamps: Sequence[int] | None = None,
) -> float:
    """Send (key, value, partition) with acks=all and idempotence, gathering the futures of each
    chunk instead of waiting for every record; returns the seconds it took. `timestamps` (ms)
    are the records' own, where the topic keeps the producer's."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    await producer.start()
    began = time.perf_counter()
    try:
        for start in range(0, len(records), chunk):
            futures = [
                await producer.send(
                    topic,
                    value,
                    key=key,
                    partition=partition,
                    timestamp_ms=None if timestamps is None else timestamps[start + n],
                )
                for n, (key, value, partition) in enumerate(records[start : start + chunk])
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - began


# --- 1. restore ------------------------------------------------------------------------------


def realistic_track(rng: random.Random, now: float) -> Track:
    """A point an hour into a session: mostly connected, a few late or gone."""
    first = now - 3600 + rng.uniform(0, 120)
    expected = rng.randint(15, 60)
    roll = rng.random()
    if roll < 0.9:
        state, last_seen = PointState.CONNECTED, now - rng.uniform(0, 5)
        since = first if rng.random() < 0.8 else now - rng.uniform(60, 1800)
    elif roll < 0.93:
        state, last_seen = PointState.LATE, now - rng.uniform(12, 30)
        since = last_seen + 12
    else:
        state, last_seen = PointState.DISCONNECTED, now - rng.uniform(30, 900)
        since = last_seen + 30
    learners = max(0, expected - rng.randint(0, 10))
    present = max(0.0, last_seen - first - rng.uniform(0, 60))
    return Track(
        state=state,
        seq=int((last_seen - first) / 5),
        learners=learners,
        last_seen=last_seen,
        since=since,
        reconnects=rng.choice((0, 0, 0, 0, 1, 2)),
        first_seen=first,
        present_seconds=present,
        learner_seconds=present * (learners + rng.uniform(-1, 1)),
        min_learners=max(0, learners - rng.randint(0, 4)),
        max_learners=learners + rng.randint(0, 4),
        count_varied=True,
        flags=frozenset({"jump"}) if rng.random() < 0.02 else frozenset(),
    )


def changelog_records(n: int) -> list[tuple[bytes, bytes, int | None]]:
    rng = random.Random(1)
    now = time.time()
    out: list[tuple[bytes, bytes, int | None]] = []
    for number in range(1, n + 1):
        point = f"P{number:06d}"
        value = snapshot("S1", point, realistic_track(rng, now))
        out.append(
            (status_key("S1", point), value, partition_of(point, STATE_CHANGELOG.partitions))
        )
    return out


async def drain_bare(bootstrap: str, partitions: range) -> int:
    """The baseline: the same reading loop as `read_changelog`, counting records, no decoding."""
    wanted = [TopicPartition(STATE_CHANGELOG.name, p) for p in partitions]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    count = 0
    try:
        consumer.assign(wanted)
        await consumer.seek_to_beginning(*wanted)
        ends = await consumer.end_offsets(wanted)
        remaining = {tp for tp in wanted if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                count += len(records)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return count


async def restore_bench(bootstrap: str, n: int, runs: int) -> Table:
    partitions = range(STATE_CHANGELOG.partitions)
    step(f"restore: encoding {n:,} track snapshots")
    records = changelog_records(n)
    average_bytes = statistics.fmean(len(v) for _, v, _ in records)
    step("restore: producing them")
    produced = await produce_all(bootstrap, STATE_CHANGELOG.name, records)
    del records
    gc.collect()
    base: list[float] = []
    ours: list[float] = []
    inner: list[float] = []
    for run in range(runs):
        step(f"restore: run {run + 1}/{runs}")
        began = time.perf_counter()
        count = await drain_bare(bootstrap, partitions)
        base.append(time.perf_counter() - began)
        assert count == n, f"baseline read {count} of {n}"
        began = time.perf_counter()
        restored, seconds = await read_changelog(bootstrap, partitions)
        ours.append(time.perf_counter() - began)
        inner.append(seconds)
        got = sum(len(tracks) for tracks in restored.values())
        assert got == n, f"restored {got} of {n}"
        del restored
        gc.collect()
    # Memory of what a restore leaves held, in a pass of its own (tracemalloc slows it down).
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    restored, _ = await read_changelog(bootstrap, partitions)
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held -= before
    peak -= before
    del restored

    m, b = med(ours), med(base)
    table = Table(
        f"restore: {n:,} tracks over {len(partitions)} changelog partitions ({runs} runs)",
        ("what", "median s", "spread s", "tracks/s", "ratio"),
    )
    table.rows.append(
        ("baseline: bare consumer, no decode", f"{b:.2f}", spread(base), f"{n / b:,.0f}", "1.00")
    )
    table.rows.append(
        (
            "ours: read_changelog (decode + Track)",
            f"{m:.2f}",
            spread(ours),
            f"{n / m:,.0f}",
            f"{m / b:.2f}x",
        )
    )
    table.notes += [
        f"ours as read_changelog reports it (inside, without the call around it): "
        f"median {med(inner):.2f} s",
        f"memory held by the restored dict: {held / n:,.0f} bytes/track "
        f"({held / 2**20:,.1f} MiB for {n:,}); peak during the restore {peak / n:,.0f} "
        f"bytes/track (tracemalloc)",
        f"average snapshot record {average_bytes:,.0f} bytes; writing them took {produced:.1f} s "
        f"({n / produced:,.0f} records/s, acks=all, idempotent, batched)",
    ]
    record_figure(
        Figure(
            "B5",
            f"attendance: restore of {n:,} tracks after a restart",
            f"{m:.2f} s",
            f"{spread(ours)} s",
            f"{b:.2f} s (bare drain of the changelog)",
            f"{m / b:.2f}x the baseline",
            "<= 1.5x",
            m / b <= 1.5,
        )
    )
    record_figure(
        Figure(
            "B6",
            "attendance: memory per tracked point (restored state)",
            f"{held / n:,.0f} B",
            f"peak {peak / n:,.0f} B",
            "—",
            "—",
            "< 1 KB",
            held / n < 1024,
        )
    )
    return table


def run_restore(args: argparse.Namespace, tmp: Path) -> list[Table]:
    n = max(1000, int(100_000 * args.size))
    with kafka(tmp) as broker:
        return [asyncio.run(restore_bench(broker.bootstrap, n, args.runs))]


# --- 2. processor ----------------------------------------------------------------------------


Backlog = tuple[list[tuple[bytes, bytes, int | None]], list[int]]


def heartbeat_backlog(m: int, points: int, session: str) -> Backlog:
    """M heartbeats of `points` points, each point every 5 s, ending about now; by arrival;
    and each one's receive time in ms."""
    rng = random.Random(2)
    rounds = math.ceil(m / points)
    end = datetime.now(UTC)
    start = end - timedelta(seconds=5 * rounds)
    learners = [rng.randint(15, 60) for _ in range(points)]
    out: list[tuple[bytes, bytes, int | None]] = []
    times: list[int] = []
    for n in range(m):
        r, p = divmod(n, points)
        received = start + timedelta(seconds=5 * r + 5 * p / points)
        times.append(int(received.timestamp() * 1000))
        if rng.random() < 0.05:
            learners[p] = max(0, learners[p] + rng.choice((-1, 1)))
        code = f"P{p + 1:06d}"
        beat = Heartbeat(
            point_code=code,
            session_code=session,
            seq=r + 1,
            sent_at=received - timedelta(milliseconds=rng.uniform(20, 300)),
            received_at=received,
            learners=learners[p],
        )
        out.append((point_key(code), encode(beat), None))
    return out, times


async def appended_on_arrival(bootstrap: str) -> None:
    """Make the heartbeat topic keep the producer's timestamps, so a backlog written all at
    once reads as if the ingest had appended each heartbeat when it received it: with the
    broker's append time, the processor would rightly refuse heartbeats that reached Kafka
    long after their receive time (the ingest answered 503 for those)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        config = HEARTBEATS.config | {"message.timestamp.type": "CreateTime"}
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, HEARTBEATS.name, config)]
        )
    finally:
        await admin.close()


async def publish_session(bootstrap: str, session: str) -> None:
    now = datetime.now(UTC)
    schedule = SessionSchedule(
        code=session,
        course_code="BENCH",
        title="bench",
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=4),
    )
    await produce_all(
        bootstrap, REGISTRY_SESSIONS.name, [(session_key(session), encode(schedule), None)]
    )


async def consume_bare(bootstrap: str, m: int) -> tuple[float, float]:
    """The baseline: getmany + json.loads in a group of its own until M records were read.
    Returns (start to done, first record to done)."""
    began = time.perf_counter()
    consumer = AIOKafkaConsumer(
        HEARTBEATS.name,
        bootstrap_servers=bootstrap,
        group_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    first = None
    count = 0
    try:
        while count < m:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                if first is None:
                    first = time.perf_counter()
                for record in records:
                    json.loads(record.value)
                count += len(records)
        done = time.perf_counter()
    finally:
        await consumer.stop()
    assert first is not None
    return done - began, done - first


def metric_value(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


@dataclass
class ServiceRun:
    total: float  # process start -> committed offsets cover the backlog
    startup: float  # process start -> first processed record seen on /metrics
    steady: float  # first processed record seen -> done
    counted_at_first: float  # records already processed when first seen
    cpu: float  # CPU seconds of the service process until done
    outputs: int = 0  # changelog + status records it wrote
    log_lines: int = 0
    spied: float = 0.0  # seconds py-spy recorded


async def processor_service(
    bootstrap: str,
    m: int,
    tmp: Path,
    ends: dict[TopicPartition, int],
    patience: float,
    spy_seconds: float = 0.0,
) -> ServiceRun:
    group = f"bench-attendance-{uuid.uuid4().hex[:8]}"
    port = free_port()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ATTENDANCE_INGEST": "false",
        "ATTENDANCE_DATABASE_URL": f"sqlite:///{tmp / 'a.db'}",
        "ATTENDANCE_CONSUMER_GROUP": group,
    }
    began = time.perf_counter()
    service = start_service("attendance", port=port, env=env, log_dir=tmp / "logs")
    first: tuple[float, float] | None = None
    spy: Spy | None = None
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=2) as http:
            while True:
                now = time.perf_counter()
                if now - began > patience:
                    raise TimeoutError(f"processor not done after {patience:.0f} s")
                if service.process.poll() is not None:
                    raise RuntimeError(f"attendance exited:\n{service.log_tail()}")
                if first is None:
                    with contextlib.suppress(httpx.HTTPError):
                        text = (await http.get("/metrics")).text
                        counted = metric_value(text, "processor_heartbeats_total") or 0.0
                        if counted > 0:
                            first = (time.perf_counter(), counted)
                            if spy_seconds:
                                spy = Spy(service.process.pid, spy_seconds, tmp / "spy.raw")
                with contextlib.suppress(Exception):
                    offsets = await admin.list_consumer_group_offsets(group)
                    committed = {
                        tp: meta.offset
                        for tp, meta in offsets.items()
                        if tp.topic == HEARTBEATS.name
                    }
                    if all(committed.get(tp, -1) >= end for tp, end in ends.items()):
                        done = time.perf_counter()
                        cpu = cpu_seconds(service.process.pid)
                        break
                await asyncio.sleep(0.2)
    finally:
        await admin.close()
        if spy is not None:
            spy.stop()
        service.stop()
    if first is None:  # done before the first scrape saw anything
        first = (done, 0.0)
    lines = len(service.log_path.read_text(errors="replace").splitlines())
    return ServiceRun(
        done - began,
        first[0] - began,
        done - first[0],
        first[1],
        cpu,
        log_lines=lines,
        spied=0.0 if spy is None else spy.seconds,
    )


async def processor_run(
    bootstrap: str, m: int, points: int, tmp: Path, spy_seconds: float
) -> tuple[float, float, ServiceRun]:
    await publish_session(bootstrap, "S1")
    step(f"processor: encoding {m:,} heartbeats of {points:,} points")
    backlog, received = heartbeat_backlog(m, points, "S1")
    step("processor: producing them")
    await appended_on_arrival(bootstrap)
    await produce_all(bootstrap, HEARTBEATS.name, backlog, timestamps=received)
    del backlog, received
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(HEARTBEATS.name, p) for p in range(HEARTBEATS.partitions)]
        ends = {tp: int(offset) for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()
    assert sum(ends.values()) == m
    step("processor: baseline consumer")
    base_total, base_steady = await consume_bare(bootstrap, m)
    step("processor: attendance service")
    ours = await processor_service(
        bootstrap, m, tmp, ends, patience=max(240, m / 1000), spy_seconds=spy_seconds
    )
    ours.outputs = await topic_ends(bootstrap, STATE_CHANGELOG, POINT_STATUS)
    return base_total, base_steady, ours


class NullWriter:
    """Commits nothing: what the processor costs without producing."""

    async def commit(self, out: Outgoing, offset: int, metadata: str) -> None:
        del out, offset, metadata

    async def close(self) -> None:
        return None


class BenchPartitions:
    """Partitions handed over directly, nothing restored (the changelog on this broker holds
    the service's run: this measures processing, not restoring), with real transactional
    writers or none."""

    def __init__(self, bootstrap: str, group: str, transactions: bool) -> None:
        self._kafka = KafkaPartitions(bootstrap, group, client_id="bench-inproc")
        self._transactions = transactions

    async def open(self, partition: int) -> Any:
        if self._transactions:
            return await self._kafka.open(partition)
        return NullWriter()

    async def committed(self, partitions: Iterable[int]) -> dict[int, tuple[int | None, str]]:
        return dict.fromkeys(partitions, (None, ""))

    async def restore(self, partitions: Iterable[int]) -> tuple[Restored, float]:
        return {p: {} for p in partitions}, 0.0


@dataclass
class InProcess:
    rate: float  # heartbeats/s from the first batch to the last
    batches: int
    outputs: int  # changelog + status records produced
    report: str  # cProfile's top costs, when profiled


async def topic_ends(bootstrap: str, *topics: Topic) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(t.name, p) for t in topics for p in range(t.partitions)]
        return sum(int(offset) for offset in (await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def processor_in_process(
    bootstrap: str, m: int, tmp: Path, writers: str, profile: bool
) -> InProcess:
    """Feed the backlog to an in-process Processor (a bare consumer, same batch limit, the
    service's commit interval), with `writers`: "transactions" (one transactional producer
    per partition, as the service) or "none"; the rate and, with `profile`, cProfile's top
    costs."""
    registry = CollectorRegistry()
    broker = make_broker(bootstrap, client_id="bench-inproc", metrics=registry)
    group = f"bench-inproc-{uuid.uuid4().hex[:8]}"
    records = RecordWriter(make_engine(f"sqlite:///{tmp / f'inproc-{uuid.uuid4().hex[:6]}.db'}"))
    processor = Processor(
        partitions=BenchPartitions(bootstrap, group, transactions=writers == "transactions"),
        dead_letters=DeadLetters(broker, registry, [HEARTBEATS.name]),
        liveness_of=lambda _: Liveness(),
        expected_of=lambda _: 0,
        rules=QualityRules(),
        timing=Timing(),
        group=group,
        metrics=ProcessorMetrics(registry, lambda: iter(())),
        changed=records.changed,
    )
    outputs_before = await topic_ends(bootstrap, STATE_CHANGELOG, POINT_STATUS)
    await broker.start()
    writer = asyncio.create_task(records.run(2.0))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    partitions = [TopicPartition(HEARTBEATS.name, p) for p in range(HEARTBEATS.partitions)]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    await processor.assign({tp.partition for tp in partitions})
    profiler = cProfile.Profile() if profile else None
    count = batches = 0
    first = None
    try:
        while count < m:
            fetched = await consumer.getmany(timeout_ms=200, max_records=5000)
            if not fetched:
                continue
            if first is None:
                first = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
            for tp, batch in fetched.items():
                await processor.apply(tp.partition, batch)
                count += len(batch)
            await processor.commit_due()
            batches += 1
        await processor.commit_due(force=True)
        done = time.perf_counter()
        if profiler is not None:
            profiler.disable()
    finally:
        await processor.close()
        await consumer.stop()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await broker.stop()
    assert first is not None
    outputs = await topic_ends(bootstrap, STATE_CHANGELOG, POINT_STATUS) - outputs_before
    report = ""
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(35)
        report = out.getvalue()
    return InProcess(m / (done - first), batches, outputs, report)


def run_processor(args: argparse.Namespace, tmp: Path) -> list[Table]:
    m = max(2000, int(200_000 * args.size))
    points = max(100, int(10_000 * args.size))
    base_totals: list[float] = []
    base_steadies: list[float] = []
    service_runs: list[ServiceRun] = []
    in_process: dict[str, InProcess] = {}
    for run in range(args.runs):
        step(f"processor: run {run + 1}/{args.runs} on a fresh broker")
        run_dir = tmp / f"processor-{run}"
        run_dir.mkdir()
        with kafka(run_dir) as broker:
            spy_seconds = 15.0 if args.py_spy and run == 0 else 0.0
            base_total, base_steady, ours = asyncio.run(
                processor_run(broker.bootstrap, m, points, run_dir, spy_seconds)
            )
            if spy_seconds:
                report = spy_report(
                    run_dir / "spy.raw",
                    "processor: py-spy --gil of the attendance process (run 1)",
                    PROCESSOR_RULES,
                    ours.spied,
                )
                print("\n" + report, flush=True)
                REPORTS.append(report)
            base_totals.append(base_total)
            base_steadies.append(base_steady)
            service_runs.append(ours)
            if args.profile and run == args.runs - 1:
                for writers in ("transactions", "none", "transactions+cProfile"):
                    step(f"processor: in-process Processor, writers: {writers}")
                    in_process[writers] = asyncio.run(
                        processor_in_process(
                            broker.bootstrap,
                            m,
                            run_dir,
                            writers.split("+")[0],
                            profile=writers.endswith("cProfile"),
                        )
                    )
    b_total, b_steady = med(base_totals), med(base_steadies)
    o_total = med([r.total for r in service_runs])
    o_steady = med([r.steady for r in service_runs])
    steady_rates = [(m - r.counted_at_first) / r.steady for r in service_runs if r.steady > 0]
    table = Table(
        f"processor: backlog of {m:,} heartbeats, {points:,} points, 1 session ({args.runs} runs,"
        " fresh broker each)",
        ("what", "median s", "spread s", "heartbeats/s", "ratio of baseline rate"),
    )
    table.rows.append(
        (
            "baseline: bare group consumer + json.loads, start->done",
            f"{b_total:.2f}",
            spread(base_totals),
            f"{m / b_total:,.0f}",
            "1.00",
        )
    )
    table.rows.append(
        (
            "baseline: first record->done",
            f"{b_steady:.2f}",
            spread(base_steadies),
            f"{m / b_steady:,.0f}",
            "1.00",
        )
    )
    table.rows.append(
        (
            "ours: attendance process, start->offsets committed",
            f"{o_total:.2f}",
            spread([r.total for r in service_runs]),
            f"{m / o_total:,.0f}",
            f"{b_total / o_total:.2f}",
        )
    )
    table.rows.append(
        (
            "ours: first processed record->done",
            f"{o_steady:.2f}",
            spread([r.steady for r in service_runs]),
            f"{med(steady_rates):,.0f}",
            f"{med(steady_rates) / (m / b_steady):.2f}",
        )
    )
    table.notes += [
        "ours first->done rate counts only the records processed after the first /metrics scrape"
        " that saw any (polled every 0.2 s)",
        f"ours startup (process start -> first processed record seen): median "
        f"{med([r.startup for r in service_runs]):.2f} s",
        f"CPU of the attendance process until done: median "
        f"{med([r.cpu for r in service_runs]):.1f} s (2-core machine, broker on the same cores)",
        f"records the service wrote (changelog + statuses): median "
        f"{med([r.outputs for r in service_runs]) / m:.2f} per heartbeat; its log: "
        f"{med([r.log_lines for r in service_runs]):,.0f} lines",
    ]
    rate, base_rate = med(steady_rates), m / b_steady
    record_figure(
        Figure(
            "B1",
            f"processor: heartbeats/s drained from a backlog of {m:,}",
            f"{rate:,.0f}/s",
            spread(steady_rates, "{:,.0f}") + "/s",
            f"{base_rate:,.0f}/s (bare getmany + json.loads)",
            f"{rate / base_rate:.2f} of the baseline",
            ">= 0.5",
            rate / base_rate >= 0.5,
        )
    )
    tables = [table]
    if in_process:
        breakdown = Table(
            "processor in-process: Processor.apply and commit_due fed the same backlog by a bare"
            " consumer, one pass each",
            ("writers", "heartbeats/s", "batches", "records/batch", "outputs/heartbeat"),
        )
        for label, result in in_process.items():
            breakdown.rows.append(
                (
                    label,
                    f"{result.rate:,.0f}",
                    f"{result.batches:,}",
                    f"{m / result.batches:,.0f}",
                    f"{result.outputs / m:.2f}",
                )
            )
        breakdown.notes.append(
            "transactions = one transactional producer per partition, a transaction per"
            " partition every 0.25 s, as the service; none = nothing produced"
        )
        tables.append(breakdown)
        report = in_process["transactions+cProfile"].report
        report = "== processor: cProfile of the in-process run (transactions)\n" + report
        print("\n" + report, flush=True)
        REPORTS.append(report)
    return tables


# --- 3. detection ----------------------------------------------------------------------------


@dataclass
class StatusSeen:
    seen: float  # wall clock of the bench when its batch arrived
    status: PointStatus


class StatusWatch:
    """Reads `attendance.point-status` from its end as of now, stamping each record's arrival."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self.seen: list[StatusSeen] = []
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None)
        await consumer.start()
        tps = [TopicPartition(POINT_STATUS.name, p) for p in range(POINT_STATUS.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer))

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in batches.values():
                for record in records:
                    with contextlib.suppress(Exception):
                        self.seen.append(StatusSeen(now, decode(PointStatus, record.value)))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


def micros(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000)


async def roundtrip_baseline(bootstrap: str, samples: int) -> list[float]:
    """Bare produce -> consume on the same broker: send (acks=all, idempotent, linger 5 ms like
    the services' producers) to a topic of its own, time until a consumer sees it."""
    await ensure_topics(bootstrap, [ROUNDTRIP])
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await producer.start()
    await consumer.start()
    tp = TopicPartition(ROUNDTRIP.name, 0)
    delays: list[float] = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.position(tp)
        sent: dict[int, float] = {}

        async def read() -> None:
            while len(delays) < samples:
                batches = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for records in batches.values():
                    for record in records:
                        delays.append(now - sent[int(record.value)])

        reader = asyncio.create_task(read())
        for number in range(samples):
            sent[number] = time.time()
            await producer.send(ROUNDTRIP.name, str(number).encode(), partition=0)
            await asyncio.sleep(0.02)
        await asyncio.wait_for(reader, 30)
    finally:
        await producer.stop()
        await consumer.stop()
    return delays


@dataclass
class Beating:
    """One point sending its heartbeats, pausable, remembering each accepted one."""

    point: SimulatedPoint
    paused: bool = False
    last_received: datetime | None = None
    accepted: dict[int, float] = field(default_factory=dict)  # received_at (µs) -> wall at 202
    refused: int = 0


async def beat_forever(
    http: httpx.AsyncClient, beating: Beating, session: str, interval: float
) -> None:
    point = beating.point
    flip = False
    while True:
        if not beating.paused:
            flip = not flip
            point.learners = point.expected_learners - (1 if flip else 0)  # a change each beat
            point.seq += 1
            try:
                response = await http.post(
                    "/v1/heartbeats",
                    json={
                        "point_code": point.code,
                        "session_code": session,
                        "seq": point.seq,
                        "sent_at": datetime.now(UTC).isoformat(),
                        "learners": point.learners,
                    },
                    headers={"Authorization": f"Bearer {point.token}"},
                )
            except httpx.TransportError:
                beating.refused += 1
            else:
                if response.status_code == 202:
                    received = datetime.fromisoformat(response.json()["received_at"])
                    beating.accepted[micros(received)] = time.time()
                    beating.last_received = received
                else:
                    beating.refused += 1
        await asyncio.sleep(interval)


async def detection_bench(
    bootstrap: str, services: dict[str, ServiceProcess], rounds: int, steady: float
) -> Table:
    plan = CoursePlan(
        course_code="BENCHD",
        session_code="BENCHD-S1",
        points=50,
        never_join=0,
        heartbeat_interval_s=1,
        late_after_s=3,
        disconnected_after_s=6,
    )
    step("detection: round-trip baseline")
    roundtrip = await roundtrip_baseline(bootstrap, 500)
    step("detection: registering the course")
    async with httpx.AsyncClient(base_url=services["registration"].url, timeout=30) as reg:
        points = await register_course(reg, plan)
    for point in points:
        point.learners = point.expected_learners
    watch = StatusWatch(bootstrap)
    await watch.start()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=services["attendance"].url, timeout=10, limits=limits
    ) as http:
        # Until attendance has read the registry: the first 202 of every point.
        deadline = time.monotonic() + 60
        for point in points:
            while True:
                point.seq += 1
                response = await http.post(
                    "/v1/heartbeats",
                    json={
                        "point_code": point.code,
                        "session_code": plan.session_code,
                        "seq": point.seq,
                        "sent_at": datetime.now(UTC).isoformat(),
                        "learners": point.learners,
                    },
                    headers={"Authorization": f"Bearer {point.token}"},
                )
                if response.status_code == 202:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"attendance never accepted {point.code}: {response.text}")
                await asyncio.sleep(0.3)
        beatings = [Beating(point) for point in points]
        tasks = [
            asyncio.create_task(beat_forever(http, b, plan.session_code, plan.heartbeat_interval_s))
            for b in beatings
        ]
        step(f"detection: {len(points)} points beating; steady for {steady:.0f} s")
        delays: list[float] = []
        late_delays: list[float] = []
        missed = 0
        silences: set[tuple[str, int]] = set()  # (point, last received_at) of each stop
        try:
            await asyncio.sleep(steady)
            order = list(range(len(beatings)))
            random.Random(3).shuffle(order)
            for round_ in range(rounds):
                chosen = [beatings[i] for i in order[round_ * 10 : round_ * 10 + 10]]
                step(f"detection: round {round_ + 1}/{rounds}: stopping {len(chosen)} points")
                for k, beating in enumerate(chosen):
                    beating.paused = True  # the beat in flight, if any, still counts as last
                    await asyncio.sleep(0.37 if k < len(chosen) - 1 else 0)
                await asyncio.sleep(1.2)  # the last in-flight requests answer
                wanted = {}
                for beating in chosen:
                    assert beating.last_received is not None
                    silences.add((beating.point.code, micros(beating.last_received)))
                    wanted[(status_key(plan.session_code, beating.point.code))] = (
                        beating.last_received
                    )
                found: dict[bytes, float] = {}
                found_late: dict[bytes, float] = {}
                until = time.time() + plan.disconnected_after_s + 15
                while len(found) < len(wanted) and time.time() < until:
                    for item in watch.seen:
                        key = status_key(item.status.session_code, item.status.point_code)
                        last = wanted.get(key)
                        if last is None or item.status.last_heartbeat_at is None:
                            continue
                        if micros(item.status.last_heartbeat_at) != micros(last):
                            continue
                        delay = item.seen - last.timestamp()
                        if item.status.state is PointState.DISCONNECTED:
                            found.setdefault(key, delay)
                        elif item.status.state is PointState.LATE:
                            found_late.setdefault(key, delay)
                    await asyncio.sleep(0.2)
                delays += found.values()
                late_delays += found_late.values()
                missed += len(wanted) - len(found)
                for beating in chosen:
                    beating.paused = False
                await asyncio.sleep(3)  # they reconnect
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(1.5)  # the last statuses arrive
    await watch.stop()

    # Freshness: a 202 that changed learners -> its status record (same last_heartbeat_at).
    answered: dict[tuple[str, int], float] = {}
    for beating in beatings:
        for received, at in beating.accepted.items():
            answered[(beating.point.code, received)] = at
    fresh: list[float] = []
    for item in watch.seen:
        if item.status.state is not PointState.CONNECTED or item.status.last_heartbeat_at is None:
            continue
        answered_at = answered.pop(
            (item.status.point_code, micros(item.status.last_heartbeat_at)), None
        )
        if answered_at is not None:
            fresh.append(item.seen - answered_at)
    accepted = sum(len(b.accepted) for b in beatings)
    refused = sum(b.refused for b in beatings)
    # late/disconnected of a point that was still beating: a false detection
    false = sum(
        1
        for item in watch.seen
        if item.status.state in (PointState.LATE, PointState.DISCONNECTED)
        and (
            item.status.last_heartbeat_at is None
            or (item.status.point_code, micros(item.status.last_heartbeat_at)) not in silences
        )
    )

    timeout = plan.disconnected_after_s
    table = Table(
        f"detection: {len(points)} points beating every {plan.heartbeat_interval_s:g} s, late "
        f"after {plan.late_after_s:g} s, disconnected after {timeout:g} s ({rounds} rounds)",
        ("what", "n", "p50 s", "p99 s", "max s", "target"),
    )
    table.rows.append(
        (
            "detection: last received_at -> disconnected seen",
            str(len(delays)),
            f"{pct(delays, 50):.2f}",
            f"{pct(delays, 99):.2f}",
            f"{max(delays, default=math.nan):.2f}",
            f"<= {timeout + 1:g}",
        )
    )
    table.rows.append(
        (
            "  (late: last received_at -> late seen)",
            str(len(late_delays)),
            f"{pct(late_delays, 50):.2f}",
            f"{pct(late_delays, 99):.2f}",
            f"{max(late_delays, default=math.nan):.2f}",
            f"({plan.late_after_s:g} s timeout)",
        )
    )
    table.rows.append(
        (
            "baseline: bare produce -> consume",
            str(len(roundtrip)),
            f"{pct(roundtrip, 50):.3f}",
            f"{pct(roundtrip, 99):.3f}",
            f"{max(roundtrip):.3f}",
            "",
        )
    )
    table.rows.append(
        (
            "freshness: 202 (learners changed) -> status seen",
            str(len(fresh)),
            f"{pct(fresh, 50):.3f}",
            f"{pct(fresh, 99):.3f}",
            f"{max(fresh, default=math.nan):.3f}",
            "p99 < 1",
        )
    )
    table.notes += [
        f"stopped points never detected: {missed}; late/disconnected records of points that"
        f" were still beating: {false}; heartbeats accepted {accepted:,}, refused or failed"
        f" {refused}; 202s without a matching status record: {len(answered)}",
        "detection is bounded by the timeout + clock grace (0.5 s) + tick (0.2 s) + publish and"
        " consume",
    ]
    p99 = pct(delays, 99)
    record_figure(
        Figure(
            "B4",
            f"detection: last heartbeat -> disconnected ({len(delays)} points stopped)",
            f"p99 {p99:.2f} s",
            f"p50 {pct(delays, 50):.2f} s, max {max(delays, default=math.nan):.2f} s",
            f"{timeout:g} s (disconnected_after)",
            f"timeout + {p99 - timeout:.2f} s",
            "<= timeout + 1 s",
            p99 <= timeout + 1 and not missed,
        )
    )
    return table


def run_detection(args: argparse.Namespace, tmp: Path) -> list[Table]:
    rounds = max(1, min(5, args.runs))
    steady = max(4.0, 10.0 * min(1.0, args.size * 4))
    with (
        kafka(tmp) as broker,
        running_services(bootstrap=broker.bootstrap, data_dir=tmp / "stack") as services,
    ):
        return [asyncio.run(detection_bench(broker.bootstrap, services, rounds, steady))]


# --- 4. ingest -------------------------------------------------------------------------------

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def noop_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The baseline server: reads the body, answers 202 with a received_at, does nothing else.

    Served by `python -m uvicorn bench.attendance_bench:noop_app` from the repository root."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = bool(message.get("more_body", False))
    body = json.dumps({"received_at": datetime.now(UTC).isoformat()}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _fastapi_noop() -> FastAPI:
    """A second baseline: the same route signature as ours (body model, bearer dependency,
    response model) with no authentication lookup, no rate limit and no Kafka."""
    app = FastAPI()
    bearer = HTTPBearer(auto_error=False)

    @app.post("/v1/heartbeats", status_code=202)
    async def post_heartbeat(
        heartbeat: HeartbeatIn,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Accepted:
        return Accepted(received_at=datetime.now(UTC), heartbeat_interval_s=5.0)

    return app


fastapi_noop_app = _fastapi_noop()


@dataclass
class LoadSpec:
    url: str
    points: list[tuple[str, str]]  # (code, token)
    session: str
    concurrency: int
    start_at: float  # wall clock
    warmup: float
    duration: float
    seq_base: int
    client: str  # "raw" or "httpx"
    rate: float | None = None  # requests/s in all, paced; None: as fast as answers come


@dataclass
class LoadResult:
    latencies: list[float]
    ok: int
    other: dict[int, int]
    cpu: float  # client CPU seconds within the window
    window: float


class RawHttp:
    """One keep-alive HTTP/1.1 connection on asyncio streams: a load generator that costs a
    few tens of microseconds of CPU per request, so a 2-core machine is left to the server."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self._host, self._port = host, int(port)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, token: str) -> int:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        self._writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and b"close" in value.lower():
                    close = True
            await self._reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            raise
        if close:
            await self.close()
        return int(head[9:12])

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._reader = self._writer = None


class HttpxHttp:
    """httpx, one AsyncClient (one connection) per worker: httpcore's pool scans every
    connection for every request, which with 64 connections in one pool costs more CPU than
    the requests themselves."""

    def __init__(self, url: str) -> None:
        self._client = httpx.AsyncClient(
            base_url=url, timeout=30, limits=httpx.Limits(max_connections=1)
        )

    async def post(self, path: str, body: bytes, token: str) -> int:
        response = await self._client.post(
            path,
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        return response.status_code

    async def close(self) -> None:
        await self._client.aclose()


async def load(spec: LoadSpec) -> LoadResult:
    latencies: list[float] = []
    other: dict[int, int] = {}
    ok = 0
    await asyncio.sleep(max(0.0, spec.start_at - time.time()))
    loop = asyncio.get_running_loop()
    begin = loop.time() + spec.warmup
    end = begin + spec.duration
    marks: dict[str, float] = {}

    owners = [
        owned for i in range(spec.concurrency) if (owned := spec.points[i :: spec.concurrency])
    ]
    # Paced: each worker keeps its own schedule, staggered, so the server sees a steady rate.
    gap = len(owners) / spec.rate if spec.rate else 0.0

    async def worker(index: int, owned: list[tuple[str, str]]) -> None:
        nonlocal ok
        http: RawHttp | HttpxHttp = (
            RawHttp(spec.url) if spec.client == "raw" else HttpxHttp(spec.url)
        )
        seq = dict.fromkeys((code for code, _ in owned), spec.seq_base)
        due = loop.time() + gap * index / len(owners)
        try:
            for code, token in itertools.cycle(owned):
                if gap:
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    due += gap
                started = loop.time()
                if started >= end:
                    return
                seq[code] += 1
                body = json.dumps(
                    {
                        "point_code": code,
                        "session_code": spec.session,
                        "seq": seq[code],
                        "sent_at": datetime.now(UTC).isoformat(),
                        # A count that changes now and then, as real rooms do.
                        "learners": 30 + (seq[code] // 20) % 3,
                    }
                ).encode()
                try:
                    status_code = await http.post("/v1/heartbeats", body, token)
                except (OSError, asyncio.IncompleteReadError, httpx.HTTPError):
                    status_code = 0
                finished = loop.time()
                if begin <= started and finished <= end:
                    if status_code == 202:
                        ok += 1
                        latencies.append(finished - started)
                    else:
                        other[status_code] = other.get(status_code, 0) + 1
        finally:
            await http.close()

    async def clock() -> None:
        await asyncio.sleep(max(0.0, begin - loop.time()))
        marks["cpu0"] = time.process_time()
        await asyncio.sleep(max(0.0, end - loop.time()))
        marks["cpu1"] = time.process_time()

    await asyncio.gather(clock(), *(worker(index, owned) for index, owned in enumerate(owners)))
    return LoadResult(latencies, ok, other, marks["cpu1"] - marks["cpu0"], spec.duration)


def load_in_process(spec: LoadSpec) -> LoadResult:
    return asyncio.run(load(spec))


@dataclass
class Measured:
    rps: float
    p50: float
    p99: float
    other: dict[int, int]
    client_cpu: float  # cores busy
    server_cpu: float  # cores busy
    broker_cpu: float  # cores busy
    others_cpu: float  # the other services (registration, reporting, attendance if idle)
    machine_cpu: float  # the whole machine


def measure(
    url: str,
    points: list[tuple[str, str]],
    session: str,
    args: argparse.Namespace,
    server_pid: int,
    broker_pid: int,
    other_pids: list[int],
    duration: float,
    seq_base: int,
    spy_out: Path | None = None,
    rate: float | None = None,
) -> Measured:
    clients = args.clients
    warmup = 2.0
    start_at = time.time() + (4.0 if clients > 1 else 0.2)
    specs = [
        LoadSpec(
            url,
            points[i::clients],
            session,
            max(1, args.concurrency // clients),
            start_at,
            warmup,
            duration,
            seq_base,
            args.client,
            None if rate is None else rate / clients,
        )
        for i in range(clients)
    ]

    def sample() -> tuple[float, float, float, float]:
        return (
            cpu_seconds(server_pid),
            cpu_seconds(broker_pid),
            sum(cpu_seconds(pid) for pid in other_pids),
            machine_busy(),
        )

    # CPU of the server, the broker, the other services and the machine over the window.
    marks: list[tuple[float, float, float, float]] = []
    spies: list[Spy] = []

    def window_starts() -> None:
        marks.append(sample())
        if spy_out is not None:
            spies.append(Spy(server_pid, duration - 1, spy_out))

    if clients == 1:
        results: list[LoadResult] = []

        async def with_sampling() -> None:
            task = asyncio.create_task(load(specs[0]))
            await asyncio.sleep(max(0.0, start_at + warmup - time.time()))
            window_starts()
            await asyncio.sleep(max(0.0, start_at + warmup + duration - time.time()))
            marks.append(sample())
            results.append(await task)

        try:
            asyncio.run(with_sampling())
        finally:
            for spy in spies:
                spy.wait()
    else:
        with ProcessPoolExecutor(clients, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(load_in_process, spec) for spec in specs]
            try:
                time.sleep(max(0.0, start_at + warmup - time.time()))
                window_starts()
                time.sleep(max(0.0, start_at + warmup + duration - time.time()))
                marks.append(sample())
            finally:
                for spy in spies:
                    spy.wait()
            results = [f.result() for f in futures]
    latencies = [lat for r in results for lat in r.latencies]
    other: dict[int, int] = {}
    for r in results:
        for code, count in r.other.items():
            other[code] = other.get(code, 0) + count
    busy = [(after - before) / duration for before, after in zip(*marks, strict=True)]
    return Measured(
        rps=sum(r.ok for r in results) / duration,
        p50=pct(latencies, 50) * 1000,
        p99=pct(latencies, 99) * 1000,
        other=other,
        client_cpu=sum(r.cpu for r in results) / duration,
        server_cpu=busy[0],
        broker_cpu=busy[1],
        others_cpu=busy[2],
        machine_cpu=busy[3],
    )


@contextlib.contextmanager
def baseline_server(app: str, log_dir: Path) -> Iterator[tuple[str, int]]:
    """`python -m uvicorn attendance_bench:<app>` from bench/ (where `harness` imports from),
    with the same flags as the services; stopped on the way out."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"{app}.log").open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                f"attendance_bench:{app}",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
            ],
            cwd=Path(__file__).resolve().parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{app} exited: see {log_dir / f'{app}.log'}")
            with contextlib.suppress(httpx.TransportError):
                httpx.post(url + "/v1/heartbeats", json={}, timeout=2)
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{app} not serving after 60 s")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def prepare_ingest(
    services: dict[str, ServiceProcess], points: int
) -> tuple[list[tuple[str, str]], str]:
    plan = CoursePlan(course_code="BENCHI", session_code="BENCHI-S1", points=points, never_join=0)
    async with httpx.AsyncClient(base_url=services["registration"].url, timeout=60) as reg:
        registered = await register_course(reg, plan)
    async with httpx.AsyncClient(base_url=services["attendance"].url, timeout=10) as http:
        deadline = time.monotonic() + 60
        for point in registered:
            while True:
                point.seq = 0
                response = await http.post(
                    "/v1/heartbeats",
                    json={
                        "point_code": point.code,
                        "session_code": plan.session_code,
                        "seq": 0,
                        "sent_at": datetime.now(UTC).isoformat(),
                        "learners": 30,
                    },
                    headers={"Authorization": f"Bearer {point.token}"},
                )
                if response.status_code == 202:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"attendance never accepted {point.code}: {response.text}")
                await asyncio.sleep(0.3)
    return [(p.code, p.token) for p in registered], plan.session_code


def wait_processed(service: ServiceProcess, patience: float = 90) -> None:
    """Until the processor has caught up with what ingest accepted, so runs do not overlap."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        text = httpx.get(service.url + "/metrics", timeout=5).text
        accepted = metric_value(text, "heartbeats_accepted_total") or 0
        processed = metric_value(text, "processor_heartbeats_total") or 0
        if processed >= accepted:
            return
        time.sleep(0.5)
    step("ingest: the processor had not caught up; carrying on")


def run_ingest(args: argparse.Namespace, tmp: Path) -> list[Table]:
    points = max(50, int(500 * args.size))
    duration = max(3.0, 12.0 * min(1.0, args.size * 4))
    rows: dict[str, list[Measured]] = {"noop": [], "fastapi": [], "ours": []}
    paced: list[Measured] = []  # ours at the course's rate
    extra = {
        "attendance": {
            "ATTENDANCE_RATE_LIMIT_PER_SECOND": "1000000",
            "ATTENDANCE_RATE_LIMIT_BURST": "1000000",
        }
    }
    with (
        kafka(tmp) as broker,
        running_services(
            bootstrap=broker.bootstrap, data_dir=tmp / "stack", extra_env=extra
        ) as services,
    ):
        step(f"ingest: registering {points} points")
        registered, session = asyncio.run(prepare_ingest(services, points))
        attendance = services["attendance"]
        with (
            baseline_server("noop_app", tmp / "logs") as (noop_url, noop_pid),
            baseline_server("fastapi_noop_app", tmp / "logs") as (fa_url, fa_pid),
        ):
            for run in range(args.runs):
                seq_base = (run + 1) * 10_000_000
                for label, url, pid in (
                    ("noop", noop_url, noop_pid),
                    ("fastapi", fa_url, fa_pid),
                    ("ours", attendance.url, attendance.process.pid),
                ):
                    step(f"ingest: run {run + 1}/{args.runs}: {label} for {duration:.0f} s")
                    others = [s.process.pid for s in services.values() if s.process.pid != pid]
                    spy_out = None
                    if args.py_spy and label == "ours" and run == 0:
                        spy_out = tmp / "spy-ingest.raw"
                    rows[label].append(
                        measure(
                            url,
                            registered,
                            session,
                            args,
                            pid,
                            broker.pid,
                            others,
                            duration,
                            seq_base,
                            spy_out,
                        )
                    )
                    if spy_out is not None:
                        report = spy_report(
                            spy_out,
                            "ingest: py-spy --gil of the attendance process under load (run 1)",
                            INGEST_RULES,
                            duration - 1,
                        )
                        print("\n" + report, flush=True)
                        REPORTS.append(report)
                    if label == "ours":
                        wait_processed(attendance)
                step(f"ingest: run {run + 1}/{args.runs}: ours at {args.rate:g} req/s")
                others = [s.process.pid for name, s in services.items() if name != "attendance"]
                paced.append(
                    measure(
                        attendance.url,
                        registered,
                        session,
                        args,
                        attendance.process.pid,
                        broker.pid,
                        others,
                        duration,
                        seq_base + 5_000_000,
                        rate=args.rate,
                    )
                )
                wait_processed(attendance)
    base = med([r.rps for r in rows["noop"]])
    table = Table(
        f"ingest: POST /v1/heartbeats, {points} points, {args.concurrency} in flight, "
        f"{args.clients} {args.client} client process(es), {duration:.0f} s windows"
        f" ({args.runs} runs)",
        (
            "server",
            "req/s",
            "spread",
            "p50 ms",
            "p99 ms",
            "ratio",
            "client",
            "server",
            "broker",
            "other svcs",
            "machine",
            "non-202",
        ),
    )
    labels = {
        "noop": "baseline: trivial ASGI 202 (uvicorn)",
        "fastapi": "FastAPI, same route signature, no work",
        "ours": "ours: attendance (ingest + processor)",
    }
    for label, measured in rows.items():
        other: dict[int, int] = {}
        for m_ in measured:
            for code, count in m_.other.items():
                other[code] = other.get(code, 0) + count
        rps = med([m_.rps for m_ in measured])
        table.rows.append(
            (
                labels[label],
                f"{rps:,.0f}",
                spread([m_.rps for m_ in measured], "{:,.0f}"),
                f"{med([m_.p50 for m_ in measured]):.1f}",
                f"{med([m_.p99 for m_ in measured]):.1f}",
                f"{rps / base:.2f}",
                f"{med([m_.client_cpu for m_ in measured]):.2f}",
                f"{med([m_.server_cpu for m_ in measured]):.2f}",
                f"{med([m_.broker_cpu for m_ in measured]):.2f}",
                f"{med([m_.others_cpu for m_ in measured]):.2f}",
                f"{med([m_.machine_cpu for m_ in measured]):.2f}",
                ",".join(f"{c}:{n}" for c, n in sorted(other.items())) or "0",
            )
        )
    table.notes += [
        "per-point rate limit raised for the bench (ATTENDANCE_RATE_LIMIT_PER_SECOND and"
        " _BURST = 1e6): 500 points at these rates is far above the default 1/s per point",
        "client .. machine = cores busy (CPU seconds / wall seconds over the window, /proc);"
        " other svcs = the three services' processes other than the server measured (for"
        " the baselines that includes an idle attendance); the machine has"
        f" {os.cpu_count()} cores",
        "ours runs ingest and the processor in one process (the default), so its server cores"
        " include processing the heartbeats it accepts",
    ]
    p99s = [m_.p99 for m_ in paced]
    table.rows.append(
        (
            f"ours paced at the course's rate, {args.rate:g} req/s",
            f"{med([m_.rps for m_ in paced]):,.0f}",
            spread([m_.rps for m_ in paced], "{:,.0f}"),
            f"{med([m_.p50 for m_ in paced]):.1f}",
            f"{med(p99s):.1f}",
            "—",
            f"{med([m_.client_cpu for m_ in paced]):.2f}",
            f"{med([m_.server_cpu for m_ in paced]):.2f}",
            f"{med([m_.broker_cpu for m_ in paced]):.2f}",
            f"{med([m_.others_cpu for m_ in paced]):.2f}",
            f"{med([m_.machine_cpu for m_ in paced]):.2f}",
            str(sum(sum(m_.other.values()) for m_ in paced)),
        )
    )
    ours = [m_.rps for m_ in rows["ours"]]
    record_figure(
        Figure(
            "B2",
            f"ingest: POST /v1/heartbeats/s at saturation ({args.concurrency} in flight)",
            f"{med(ours):,.0f}/s",
            spread(ours, "{:,.0f}") + "/s",
            f"{base:,.0f}/s (same uvicorn, trivial 202 app)",
            f"{med(ours) / base:.2f} of the baseline",
            ">= 0.4",
            med(ours) / base >= 0.4,
        )
    )
    record_figure(
        Figure(
            "B2",
            f"ingest: latency at the course's rate ({args.rate:g} req/s)",
            f"p99 {med(p99s):.1f} ms",
            f"p99 {spread(p99s, '{:.1f}')} ms; p50 {med([m_.p50 for m_ in paced]):.1f} ms",
            "—",
            "—",
            "p99 < 50 ms",
            med(p99s) < 50,
        )
    )
    return [table]


# --- main ------------------------------------------------------------------------------------

RUNNERS: dict[str, Callable[[argparse.Namespace, Path], list[Table]]] = {
    "restore": run_restore,
    "processor": run_processor,
    "detection": run_detection,
    "ingest": run_ingest,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", choices=BENCHES, action="append", help="run only this one")
    parser.add_argument("--size", type=float, default=1.0, help="scale sizes and durations")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the processor")
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="py-spy the attendance process (py-spy on PATH, else uvx py-spy)",
    )
    parser.add_argument("--clients", type=int, default=1, help="ingest load processes")
    parser.add_argument("--concurrency", type=int, default=64, help="ingest requests in flight")
    parser.add_argument(
        "--rate", type=float, default=711.0, help="ingest: the course's rate, for latency"
    )
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw", help="ingest load generator"
    )
    args = parser.parse_args()
    tables: list[Table] = []
    for name in args.only or BENCHES:
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            # Other work on the machine skews everything: say how much there was.
            busy_before = machine_busy()
            time.sleep(1.0)
            elsewhere = machine_busy() - busy_before
            load = os.getloadavg()[0]
            began = time.perf_counter()
            produced = RUNNERS[name](args, Path(tmp))
            for table in produced:
                table.notes.append(
                    f"benchmark wall time {time.perf_counter() - began:.0f} s; before it started"
                    f" the machine was already {elsewhere:.1f} of {os.cpu_count()} cores busy"
                    f" (load average {load:.1f})"
                )
                table.show()
            tables += produced
    print("\n\n=========== summary")
    for table in tables:
        table.show()
    for report in REPORTS:
        print("\n" + report)


if __name__ == "__main__":
    main()
