"""B7, scale: 100,000 points at a 5 s interval (20,000 heartbeats/s) through the relay batch
route, for 10 minutes, against the offered rate; and B9, the slope: the same at several sizes.

    uv run python bench/scale_bench.py [--points 100000] [--interval 5] [--minutes 10]
        [--processors 2] [--ingesters 1]
    uv run python bench/scale_bench.py --points 10000 --points 30000 --points 100000 \
        --points 300000 --minutes 3

A broker of its own; registration; reporting; attendance split the way production scales it:
ingest processes (`ATTENDANCE_PROCESSOR=false`) and processor processes in one consumer group
(`ATTENDANCE_INGEST=false`), one processor per 75,000 points at least. The course is
registered through the import API; each province hall relays the heartbeats of every room of
its province (`SimulatedCourse(all_relayed=True)`). Every 5 s: heartbeats offered (due),
accepted (202), the end offsets of `attendance.heartbeats` and the processors' committed
offsets: the lag, and the rate the processors drain. The baseline is the offered rate: the
processors keep up when they drain at least what is accepted and the lag stays bounded.
The cores each part keeps busy over the steady window (CPU seconds / wall seconds, /proc) say
what bounds the rate on this machine: the load generator (this process), the ingest, the
processors, the broker, reporting.

With several `--points`, each size runs on a fresh broker, and a last table sets them side by
side (B9): heartbeats/s, CPU per heartbeat of each part, and the memory the services hold per
point (their RSS at the end of the load), also as the growth from the size before, which
leaves out what a process holds with no points at all.
"""

import asyncio
import contextlib
import itertools
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Annotated

import httpx
import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from harness import (
    Figure,
    Table,
    cpu_seconds,
    kafka,
    machine_busy,
    med,
    record_figure,
    rss_bytes,
    spread,
    step,
)

from contracts.codec import decode
from contracts.events import PointStatus
from contracts.topics import HEARTBEATS, POINT_STATUS
from devstack.course import CourseOptions, course_of
from devstack.registering import (
    create_course_and_sessions,
    designate_gateways,
    import_points,
    until_attendance_knows,
)
from devstack.services import ServiceProcess, start_in, wait_healthy
from devstack.silences import Silences, false_transitions
from devstack.simulate import DEV_OPERATOR_TOKEN
from devstack.simulation import SimulatedCourse

GROUP = "attendance-processor"
SAMPLE_S = 5.0
POINTS_PER_PROCESSOR = 75_000
# The parts whose memory grows with the points (the broker's is its page cache and heap).
MEMORY_OF = ("ingest", "processors", "reporting")


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the load began
    offered: int  # heartbeats due so far (sent + skipped while saturated)
    accepted: int
    produced: int  # end offsets of attendance.heartbeats
    committed: int  # the processors' committed offsets
    cpu: dict[str, float]  # CPU seconds so far of each part, and of the whole machine


# The probe's learner counts: above any room's, each used once.
PROBE_LEARNERS = 500_000
PROBE_SEQ = 1_000_000_000  # above the simulation's: its heartbeats of the probe are old news
PROBE_EVERY_S = 2.0


@dataclass(frozen=True)
class Truth:
    """Points shown late or disconnected while their rooms kept sending (judged by the load's
    own requests, `devstack.silences`), out of all shown so."""

    shown_silent: int
    false: dict[str, list[str]]
    silences: dict[str, float]
    freshness: list[float]  # 202 of a probe change -> reporting shows it, seconds
    unseen: int  # probe changes reporting did not show within 10 s
    # The load stopped -> all it wrote committed, seconds (None: not within a minute).
    emptied: float | None
    refused: dict[int, int]  # heartbeats refused, by status
    last_problem: str
    # The first false ones: point, state, last heartbeat, since.
    examples: list[tuple[str, str, str, str]]


class Offsets:
    """End offsets of the heartbeat topic and the processor group's committed offsets."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._partitions = [
            TopicPartition(HEARTBEATS.name, p) for p in range(HEARTBEATS.partitions)
        ]

    async def __aenter__(self) -> "Offsets":
        await self._consumer.start()
        await self._admin.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def now(self) -> tuple[int, int]:
        # Committed first: read the other way round, records produced in between would count
        # as drained but not as produced.
        committed = await self._admin.list_consumer_group_offsets(GROUP)
        ends = await self._consumer.end_offsets(self._partitions)
        done = sum(
            max(0, meta.offset) for tp, meta in committed.items() if tp.topic == HEARTBEATS.name
        )
        return sum(int(offset) for offset in ends.values()), done


def main(
    points: Annotated[
        list[int], typer.Option(help="Points of the course; repeat for the slope table")
    ] = [100_000],  # noqa: B006 (typer's way to default a repeatable option)
    interval: Annotated[float, typer.Option(help="Heartbeat interval, seconds")] = 5.0,
    minutes: Annotated[float, typer.Option(help="Length of the load")] = 10.0,
    processors: Annotated[int, typer.Option(help="Attendance processor instances")] = 2,
    ingesters: Annotated[int, typer.Option(help="Attendance ingest instances")] = 1,
) -> None:
    rows = []
    for size in points:
        # Beyond what two processors hold, more of them (the heartbeat topic has 12 partitions).
        instances = max(processors, math.ceil(size / POINTS_PER_PROCESSOR))
        samples, truth, memory = _run(size, interval, minutes, instances, ingesters)
        _report(samples, truth, size, interval, instances, ingesters, figures=len(points) == 1)
        rows.append(_slope_row(samples, memory, size, interval, instances, ingesters))
    if len(points) > 1:
        _slope(rows, minutes)


def _run(
    points: int, interval: float, minutes: float, processors: int, ingesters: int
) -> tuple[list[Sample], Truth, dict[str, int]]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, kafka(Path(tmp)) as broker:
        started = [
            start_in("registration", bootstrap=broker.bootstrap, data_dir=Path(tmp)),
            start_in("reporting", bootstrap=broker.bootstrap, data_dir=Path(tmp)),
            *(
                start_in(
                    "attendance",
                    bootstrap=broker.bootstrap,
                    data_dir=Path(tmp) / f"ingest-{n}",
                    extra_env={"ATTENDANCE_PROCESSOR": "false"},
                )
                for n in range(ingesters)
            ),
            *(
                start_in(
                    "attendance",
                    bootstrap=broker.bootstrap,
                    data_dir=Path(tmp) / f"processor-{n}",
                    extra_env={"ATTENDANCE_INGEST": "false"},
                )
                for n in range(processors)
            ),
        ]
        registration, reporting = started[:2]
        ingest = started[2 : 2 + ingesters]
        parts = {
            "load generator": [os.getpid()],
            "ingest": [s.process.pid for s in ingest],
            "processors": [s.process.pid for s in started[2 + ingesters :]],
            "broker": [broker.pid],
            "reporting": [reporting.process.pid],
        }
        try:
            for service in started:
                wait_healthy(service)
            options = CourseOptions(
                course_code="SCALE",
                points=points,
                heartbeat_interval_s=interval,
                join_over_s=interval,
                never_join_share=0.0,
                outage_after_s=1e9,
            )
            return asyncio.run(
                _load(
                    broker.bootstrap, registration, reporting, ingest, options, minutes * 60, parts
                )
            )
        finally:
            for service in reversed(started):
                service.stop()


async def _load(
    bootstrap: str,
    registration: ServiceProcess,
    reporting: ServiceProcess,
    ingest: list[ServiceProcess],
    options: CourseOptions,
    seconds: float,
    parts: dict[str, list[int]],
) -> tuple[list[Sample], Truth, dict[str, int]]:
    course = course_of(options, datetime.now(UTC))
    async with (
        httpx.AsyncClient(base_url=registration.url, timeout=120) as reg,
        httpx.AsyncClient(base_url=reporting.url, timeout=30) as looking,
        httpx.AsyncClient(
            base_url=ingest[0].url,
            timeout=30,
            limits=httpx.Limits(max_connections=64, keepalive_expiry=4.0),
        ) as attendance,
    ):
        step(f"scale: registering {len(course.rows):,} points")
        await create_course_and_sessions(reg, course, DEV_OPERATOR_TOKEN)
        tokens = await import_points(reg, course, DEV_OPERATOR_TOKEN, lambda _: None)
        await designate_gateways(reg, course, DEV_OPERATOR_TOKEN, lambda _: None)
        await until_attendance_knows(attendance, course, tokens, patience=300)
        step(f"scale: {options.points:,} points every {options.heartbeat_interval_s:g} s")
        silences = Silences(options.heartbeat_interval_s)
        simulation = SimulatedCourse(
            course, tokens, attendance, all_relayed=True, silences=silences
        )
        session_code = course.sessions[0].plan.code
        on_air = asyncio.create_task(simulation.run_session(course.sessions[0]))
        probe_code = course.rows[-1]["code"]
        freshness: list[float] = []
        unseen: list[int] = []
        probing = asyncio.create_task(
            _probe(
                attendance, looking, session_code, probe_code, tokens[probe_code], freshness, unseen
            )
        )
        samples = await _sample(bootstrap, simulation, seconds, parts)
        # Held at the end of the load, every point's state in it.
        memory = {
            name: sum(rss_bytes(pid) for pid in pids)
            for name, pids in parts.items()
            if name in MEMORY_OF
        }
        for task in (probing, on_air):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await simulation.settled()
        emptied = await _until_drained(bootstrap, patience=60)
        step("scale: reading the statuses shown")
        history = await _silent_statuses(bootstrap)
    shown = sum(len(statuses) for statuses in history.values())
    truth = Truth(
        shown,
        false_transitions(history, silences),
        silences.counts(),
        freshness,
        len(unseen),
        emptied,
        dict(simulation.traffic.refused),
        simulation.traffic.last_problem,
        [
            (
                s.point_code,
                s.state.value,
                f"{s.last_heartbeat_at or s.since:%T.%f}",
                f"{s.since:%T.%f}",
            )
            for code in sorted(false_transitions(history, silences))[:5]
            for s in history[code]
        ][:12],
    )
    return samples, truth, memory


async def _until_drained(bootstrap: str, patience: float) -> float | None:
    """Seconds from the load's end until the processors committed all it had written then
    (the ingest's watermarks go on: the topic's very end moves on meanwhile)."""
    began = time.monotonic()
    async with Offsets(bootstrap) as offsets:
        written, _ = await offsets.now()
        while time.monotonic() - began < patience:
            _, committed = await offsets.now()
            if committed >= written:
                return time.monotonic() - began
            await asyncio.sleep(0.2)
    return None


async def _probe(
    attendance: httpx.AsyncClient,
    reporting: httpx.AsyncClient,
    session_code: str,
    code: str,
    token: str,
    freshness: list[float],
    unseen: list[int],
) -> None:
    """Freshness under the load: one point of the course sends, for itself, a learner count
    never used before about every 2 s; from its 202 until reporting's view of the point (the
    state its totals are summed from, polled every 20 ms) shows it. Its heartbeats carry
    larger sequence numbers than the simulation's, so only the probe's move its track."""
    await asyncio.sleep(60)  # the rooms joining first
    path = f"/v1/sessions/{session_code}/points/{code}"
    for k in itertools.count(1):
        tick = time.monotonic()
        learners = PROBE_LEARNERS + k
        answer = await attendance.post(
            "/v1/heartbeats",
            json={
                "point_code": code,
                "session_code": session_code,
                "seq": PROBE_SEQ + k,
                "sent_at": datetime.now(UTC).isoformat(),
                "learners": learners,
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        accepted = time.monotonic()
        if answer.status_code != 202:
            raise RuntimeError(f"probe heartbeat: {answer.status_code} {answer.text[:200]}")
        while (waited := time.monotonic() - accepted) < 10:
            view = await reporting.get(path)
            if view.status_code == 200 and view.json()["learners"] == learners:
                freshness.append(time.monotonic() - accepted)
                break
            await asyncio.sleep(0.02)
        if waited >= 10:
            unseen.append(k)
        # Jittered: a fixed period would lock on to the phase of the processors' commits.
        await asyncio.sleep(max(0.0, tick + random.uniform(1.5, 2.5) - time.monotonic()))


async def _silent_statuses(bootstrap: str) -> dict[str, list[PointStatus]]:
    """Every late or disconnected status on `attendance.point-status`, by point (the others
    are skipped undecoded: millions of learner counts)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    history: dict[str, list[PointStatus]] = {}
    try:
        partitions = [TopicPartition(POINT_STATUS.name, p) for p in range(POINT_STATUS.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batches = await consumer.getmany(timeout_ms=1000, max_records=50_000)
            for records in batches.values():
                for record in records:
                    value = record.value or b""
                    if b'"late"' in value or b'"disconnected"' in value:
                        status = decode(PointStatus, value)
                        history.setdefault(status.point_code, []).append(status)
    finally:
        await consumer.stop()
    return history


def _cpu(parts: dict[str, list[int]]) -> dict[str, float]:
    used = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in parts.items()}
    return used | {"machine": machine_busy()}


async def _sample(
    bootstrap: str, simulation: SimulatedCourse, seconds: float, parts: dict[str, list[int]]
) -> list[Sample]:
    samples = []
    began = time.monotonic()
    async with Offsets(bootstrap) as offsets:
        while (elapsed := time.monotonic() - began) < seconds:
            produced, committed = await offsets.now()
            traffic = simulation.traffic
            samples.append(
                Sample(
                    elapsed,
                    traffic.sent + traffic.skipped,
                    traffic.accepted,
                    produced,
                    committed,
                    _cpu(parts),
                )
            )
            if len(samples) % 12 == 0:
                step(
                    f"scale: {elapsed:.0f} s, accepted {traffic.accepted:,},"
                    f" lag {produced - committed:,}"
                )
            await asyncio.sleep(SAMPLE_S)
    return samples


@dataclass(frozen=True)
class Steady:
    """The load's figures over its steady window: the first minute is the rooms joining."""

    samples: list[Sample]
    accepted: list[float]  # per 5 s window, heartbeats/s
    drained: list[float]
    lags: list[int]

    @classmethod
    def of(cls, samples: list[Sample]) -> "Steady":
        steady = [s for s in samples if s.at >= 60] or samples
        pairs = list(pairwise(steady))
        return cls(
            steady,
            [(b.accepted - a.accepted) / (b.at - a.at) for a, b in pairs],
            [(b.committed - a.committed) / (b.at - a.at) for a, b in pairs],
            [s.produced - s.committed for s in steady],
        )

    @property
    def span(self) -> float:
        return self.samples[-1].at - self.samples[0].at

    @property
    def accepted_count(self) -> int:
        return self.samples[-1].accepted - self.samples[0].accepted

    @property
    def accepted_rate(self) -> float:
        return self.accepted_count / self.span if self.span else 0.0

    @property
    def drain_rate(self) -> float:
        first, last = self.samples[0], self.samples[-1]
        return (last.committed - first.committed) / self.span if self.span else 0.0

    def cores(self, part: str) -> float:
        """Cores the part kept busy."""
        return self.cpu(part) / self.span if self.span else math.nan

    def per_beat(self, part: str) -> float:
        """Microseconds of the part's CPU per heartbeat accepted."""
        return _per_beat(self.cpu(part), self.accepted_count)

    def cpu(self, part: str) -> float:
        return self.samples[-1].cpu[part] - self.samples[0].cpu[part]


def _report(
    samples: list[Sample],
    truth: Truth,
    points: int,
    interval: float,
    processors: int,
    ingesters: int,
    *,
    figures: bool = True,
) -> None:
    offered_rate = points / interval
    steady = Steady.of(samples)
    accepted, drained, lags = steady.accepted, steady.drained, steady.lags
    last = steady.samples[-1]
    accepted_rate, drain_rate = steady.accepted_rate, steady.drain_rate
    table = Table(
        f"scale: {points:,} points every {interval:g} s through the relay batch route,"
        f" {samples[-1].at / 60:.1f} min, {ingesters} ingest + {processors} processor instances",
        ("what", "per second", "spread (5 s windows)"),
    )
    table.rows += [
        ("offered: points / interval", f"{offered_rate:,.0f}", ""),
        ("accepted (202) by the ingest", f"{accepted_rate:,.0f}", spread(accepted, "{:,.0f}")),
        (
            "drained: processors' committed offsets",
            f"{drain_rate:,.0f}",
            spread(drained, "{:,.0f}"),
        ),
    ]
    table.notes += [
        f"lag (heartbeats in Kafka not yet committed by the processors): median {med(lags):,.0f},"
        f" max {max(lags):,}, at the end of the load {lags[-1]:,}; 0 again"
        + (
            f" {truth.emptied:.1f} s after the load stopped"
            if truth.emptied is not None
            else " NOT within a minute after the load stopped"
        ),
        "lag, the most of each minute: "
        + ", ".join(
            f"{max(s.produced - s.committed for s in samples if int(s.at // 60) == minute):,}"
            for minute in sorted({int(s.at // 60) for s in samples})
        ),
        f"heartbeats offered {last.offered:,}, accepted {last.accepted:,}",
        f"freshness (a probe point's 202 -> reporting shows it, {len(truth.freshness)} changes):"
        f" p50 {_quantile(truth.freshness, 0.5):.2f} s,"
        f" p99 {_quantile(truth.freshness, 0.99):.2f} s,"
        f" max {max(truth.freshness, default=math.nan):.2f} s; not shown within 10 s:"
        f" {truth.unseen}",
        f"statuses late or disconnected: {truth.shown_silent:,}, of points whose rooms kept"
        f" sending all through the silence claimed (false transitions): {len(truth.false):,}"
        f" {truth.examples}; the load's silences: {truth.silences}",
        f"heartbeats refused by status: {truth.refused}; the last problem: {truth.last_problem}",
        f"cores busy over the steady window (the machine has {os.cpu_count()}): "
        + ", ".join(f"{name} {steady.cores(name):.2f}" for name in last.cpu),
        "CPU per heartbeat accepted over the steady window: "
        + ", ".join(f"{name} {steady.per_beat(name):.1f} µs" for name in last.cpu),
    ]
    table.show()
    if figures:
        _figures(steady, truth, points, interval, processors, ingesters)


def _figures(
    steady: Steady, truth: Truth, points: int, interval: float, processors: int, ingesters: int
) -> None:
    offered_rate = points / interval
    drain_rate, accepted_rate, drained, lags = (
        steady.drain_rate,
        steady.accepted_rate,
        steady.drained,
        steady.lags,
    )
    bounded = lags[-1] <= max(2 * offered_rate * interval, med(lags) * 1.5)
    record_figure(
        Figure(
            "B7",
            f"scale: {points:,} points every {interval:g} s via the relay batch route,"
            f" {ingesters} ingest + {processors} processor instances",
            f"drained {drain_rate:,.0f}/s",
            f"{spread(drained, '{:,.0f}')}/s; accepted {accepted_rate:,.0f}/s;"
            f" lag max {max(lags):,}, 0 again "
            + ("never" if truth.emptied is None else f"{truth.emptied:.1f} s after the load")
            + f"; false transitions {len(truth.false):,}; refused {truth.refused or 'none'}",
            f"{offered_rate:,.0f}/s offered",
            f"{drain_rate / offered_rate:.2f} of the offered rate",
            "drain >= offered, lag bounded and back to 0, no false transition",
            drain_rate >= 0.98 * offered_rate
            and bounded
            and truth.emptied is not None
            and not truth.false,
        )
    )
    p99 = _quantile(truth.freshness, 0.99)
    record_figure(
        Figure(
            "B7",
            f"scale, {points:,} points: freshness, a probe's 202 -> reporting shows it",
            f"p99 {p99:.2f} s",
            f"p50 {_quantile(truth.freshness, 0.5):.2f} s, max"
            f" {max(truth.freshness, default=math.nan):.2f} s, {len(truth.freshness)} changes,"
            f" {truth.unseen} unseen",
            "—",
            "—",
            "p99 < 2 s",
            p99 < 2 and truth.unseen == 0,
        )
    )
    # Per heartbeat accepted: the processors' share of the ingest's watermarks (48 records a
    # second) is part of what a heartbeat costs them.
    for part, target, before in (
        ("processors", 30.0, "about 60 µs on 2026-12-01"),
        ("ingest (relay batch route)", 15.0, "about 34 µs on 2026-12-01"),
    ):
        name = part.split()[0]
        micros = steady.per_beat(name)
        record_figure(
            Figure(
                "B7",
                f"scale, {points:,} points: CPU of the {part} per heartbeat ({before})",
                f"{micros:.1f} µs",
                f"cores busy {steady.cores(name):.2f}",
                "—",
                "—",
                f"<= {target:g} µs",
                micros <= target,
            )
        )


@dataclass(frozen=True)
class SlopeRow:
    points: int
    processes: str
    offered: float  # heartbeats/s
    steady: Steady
    memory: dict[str, int]  # RSS at the end of the load, bytes


def _slope_row(
    samples: list[Sample],
    memory: dict[str, int],
    points: int,
    interval: float,
    processors: int,
    ingesters: int,
) -> SlopeRow:
    processes = f"{ingesters} + {processors}"
    return SlopeRow(points, processes, points / interval, Steady.of(samples), memory)


def _slope(rows: list[SlopeRow], minutes: float) -> None:
    """How cost grows with the points: one row per size, and memory per point also as the
    growth from the size before (the processes' own base left out)."""
    table = Table(
        f"slope: B7 at {', '.join(f'{r.points:,}' for r in rows)} points, {minutes:g} min each",
        (
            "points",
            "ingest + processors",
            "offered/s",
            "drained/s",
            "drained/offered",
            "lag max",
            "µs/hb ingest",
            "µs/hb processors",
            "µs/hb broker",
            "µs/hb machine",
            "cores busy",
            "KiB/point",
            "KiB/point added",
        ),
    )
    before: SlopeRow | None = None
    for row in rows:
        held = sum(row.memory.values())
        added = (
            f"{(held - sum(before.memory.values())) / (row.points - before.points) / 1024:.2f}"
            if before is not None
            else "—"
        )
        table.rows.append(
            (
                f"{row.points:,}",
                row.processes,
                f"{row.offered:,.0f}",
                f"{row.steady.drain_rate:,.0f}",
                f"{row.steady.drain_rate / row.offered:.2f}",
                f"{max(row.steady.lags):,}",
                f"{row.steady.per_beat('ingest'):.1f}",
                f"{row.steady.per_beat('processors'):.1f}",
                f"{row.steady.per_beat('broker'):.1f}",
                f"{row.steady.per_beat('machine'):.1f}",
                f"{row.steady.cores('machine'):.2f}",
                f"{held / row.points / 1024:.1f}",
                added,
            )
        )
        record_figure(
            Figure(
                "B9",
                f"slope, {row.points:,} points ({row.processes} processes): drained,"
                " CPU and memory",
                f"drained {row.steady.drain_rate:,.0f}/s",
                f"machine {row.steady.per_beat('machine'):.1f} µs/hb"
                f" (processors {row.steady.per_beat('processors'):.1f}, ingest"
                f" {row.steady.per_beat('ingest'):.1f}); {held / row.points / 1024:.1f} KiB"
                f" a point held, {added} KiB a point added",
                f"{row.offered:,.0f}/s offered",
                f"{row.steady.drain_rate / row.offered:.2f} of the offered rate",
                "—",
                None,
            )
        )
        before = row
    table.notes += [
        f"memory: RSS of {', '.join(MEMORY_OF)} at the end of the load; added: the growth"
        " from the size before, per point added",
        f"processors: one per {POINTS_PER_PROCESSOR:,} points, at least as many as asked;"
        f" the heartbeat topic has {HEARTBEATS.partitions} partitions, the machine"
        f" {os.cpu_count()} cores",
    ]
    table.show()


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _per_beat(cpu_seconds: float, heartbeats: int) -> float:
    """Microseconds of CPU per heartbeat."""
    return cpu_seconds / heartbeats * 1e6 if heartbeats else float("nan")


if __name__ == "__main__":
    typer.run(main)
