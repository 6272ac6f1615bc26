"""The attendance processor against a real Kafka broker: draining a backlog of heartbeats.

    uv run python bench/processor_bench.py [--size FACTOR] [--runs 3] [--profile] [--py-spy]

A backlog of M = 200,000 heartbeats of 10,000 points on `attendance.heartbeats`. Baseline: a
bare consumer in its own group doing `getmany` + `json.loads` until it read M records. Ours: one
attendance process (processor only), timed from its start until its group's committed offsets
cover the backlog, and from its first processed record (its /metrics) to done. A fresh broker
per run, so no run restores what the previous one wrote. `--profile` adds, on the last run's
broker, an in-process `Processor` fed the same backlog with the service's writers (one
transactional producer per partition), with writers that write nothing, and a cProfile of it.

`--py-spy` records the attendance process (`py-spy record --gil`; py-spy on PATH, else
`uvx py-spy`) while it processes the backlog, and prints where the time with the GIL held goes.

It starts a single-node Kafka broker of its own on 127.0.0.1 (devstack) for each run, creates
the topics, and stops everything it started (broker, service process) even on error.
`--size 0.05` shrinks the data for a quick check. Medians and spread over `--runs`; ours is
compared with a baseline measured in the same run on the same broker. Each table ends with how
busy the machine already was before the benchmark started: other work on the machine skews
every number here.
"""

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import math
import pstats
import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from harness import (
    PROCESSOR_RULES,
    REPORTS,
    Figure,
    Record,
    Spy,
    Table,
    cpu_seconds,
    kafka,
    med,
    metric_value,
    produce_all,
    record_figure,
    run_noting_load,
    size_and_runs,
    spread,
    spy_report,
    step,
)
from prometheus_client import CollectorRegistry

from attendance.domain import Liveness
from attendance.metrics import ProcessorMetrics
from attendance.partitions import KafkaPartitions, Outgoing
from attendance.processor import Processor, Timing
from attendance.quality import QualityRules
from attendance.records import RecordWriter
from attendance.restore import Restored
from contracts.codec import encode
from contracts.events import Heartbeat, SessionSchedule
from contracts.topics import (
    HEARTBEATS,
    POINT_STATUS,
    REGISTRY_SESSIONS,
    STATE_CHANGELOG,
    Topic,
    point_key,
    session_key,
)
from devstack.ports import free_port
from devstack.services import start_service
from servicekit.database import make_engine
from servicekit.kafka import DeadLetters, make_broker

Backlog = tuple[list[Record], list[int]]


def heartbeat_backlog(m: int, points: int, session: str) -> Backlog:
    """M heartbeats of `points` points, each point every 5 s, ending about now; by arrival;
    and each one's receive time in ms."""
    rng = random.Random(2)
    rounds = math.ceil(m / points)
    end = datetime.now(UTC)
    start = end - timedelta(seconds=5 * rounds)
    learners = [rng.randint(15, 60) for _ in range(points)]
    out: list[Record] = []
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
        out.append((HEARTBEATS.name, point_key(code), encode(beat)))
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
    await produce_all(bootstrap, [(REGISTRY_SESSIONS.name, session_key(session), encode(schedule))])


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
                                spy = Spy(service.process.pid, tmp / "spy.raw", spy_seconds)
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
    await produce_all(bootstrap, backlog, timestamps=received)
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


def main() -> None:
    parser = size_and_runs(__doc__, "scale sizes and durations")
    parser.add_argument("--profile", action="store_true", help="cProfile the processor")
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="py-spy the attendance process (py-spy on PATH, else uvx py-spy)",
    )
    run_noting_load("processor", run_processor, parser.parse_args())


if __name__ == "__main__":
    main()
