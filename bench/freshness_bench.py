"""The three services against a real Kafka broker: how fresh the reporting's totals are.

    uv run python bench/freshness_bench.py [--size FACTOR] [--samples 100]

The three services; a course of 3,555 x size points registered through the registration import
(`register_course` with every official unit, plus Teams sites and one probe point); one point
made a relay gateway for every province; every other point beats once per 5 s (about 711
heartbeats/s) through `POST /v1/heartbeats/batch` in batches of 500 from one asyncio task. The
probe point (the only `central` point, so `by_level.central` is its own count) changes its
learners about every 2 s (jittered) through `POST /v1/heartbeats`, each time to a value not used
before; freshness = the first SSE message (`GET /v1/sessions/{s}/stream`) showing the new
count - the 202 response; also the first `GET .../breakdown/level` (polled every 20 ms) showing
it, freshness without the coalescing. Also 202 -> its status record on `attendance.point-status`
(a bare consumer), to split the pipeline from the stream. Baseline: a bare aiokafka produce
(acks=all) -> consume round trip on the same broker, quiet and under the same load.

It starts its own single-node Kafka broker on 127.0.0.1 (devstack) with the topics, and the
three services, and stops them even on error. `--size` scales the data (`--size 0.05` for a
quick check).
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from harness import (
    ROUNDTRIP,
    Figure,
    Table,
    cpu_seconds,
    kafka,
    pct,
    record_figure,
    roundtrip_baseline,
    run_after_machine_facts,
    step,
)

from contracts.topics import POINT_STATUS, status_key
from devstack.services import ServiceProcess, running_services
from devstack.simulate import DEV_OPERATOR_TOKEN, CoursePlan, SimulatedPoint, register_course
from registration.official import as_csv, official_points

COURSE_POINTS = 3_555
SESSION = "K1-S1"
COURSE = "K1"
PROBE = "K1-PROBE"
BATCH = 500
INTERVAL_S = 5.0


@dataclass
class Course:
    background: list[SimulatedPoint]  # every point but the probe, the gateway among them
    provinces: dict[str, str]  # point code -> province code
    gateway: SimulatedPoint
    probe: SimulatedPoint


async def register(registration: httpx.AsyncClient, points: int) -> Course:
    """`register_course` with every official unit it can sample, plus Teams sites (with a
    province, so a gateway may relay for them) and one central probe point."""
    official = {f"{COURSE}-{row['code']}": row["province_code"] for row in official_points(0)}
    n_official = min(points - 1, len(official))
    plan = CoursePlan(
        course_code=COURSE,
        session_code=SESSION,
        points=n_official,
        heartbeat_interval_s=INTERVAL_S,
        never_join=0,
    )
    sampled = await register_course(registration, plan)
    codes = sorted(official.values())
    extra = [
        {
            "code": f"{COURSE}-TEAMS{n:03d}",
            "name": f"Điểm cầu Teams {n}",
            "level": "other",
            "channel": "teams",
            "province_code": codes[n % len(codes)],
            "unit_code": "",
            "host": "Cán bộ phụ trách",
            "phone": "0900 000 000",
            "expected_learners": str(random.randint(15, 60)),
            "courses": "",
        }
        for n in range(points - 1 - n_official)
    ]
    extra.append(
        {
            "code": PROBE,
            "name": "Điểm đo độ trễ",
            "level": "central",
            "channel": "other",
            "province_code": "",
            "unit_code": "",
            "host": "",
            "phone": "",
            "expected_learners": "30",
            "courses": "",
        }
    )
    response = await registration.post(
        "/v1/points/import",
        params={"course": COURSE},
        content=as_csv(extra),
        headers={"Authorization": f"Bearer {DEV_OPERATOR_TOKEN}", "Content-Type": "text/csv"},
    )
    response.raise_for_status()
    province_of = {code: official[code] for code in (p.code for p in sampled)}
    province_of |= {row["code"]: row["province_code"] for row in extra if row["code"] != PROBE}
    issued = [SimulatedPoint(t["code"], t["token"], 30) for t in response.json()["tokens"]]
    probe = next(p for p in issued if p.code == PROBE)
    background = sampled + [p for p in issued if p.code != PROBE]
    for point in background:
        point.learners = max(1, point.expected_learners - random.randint(0, 10))
    gateway = next((p for p in background if "-T" in p.code), background[0])
    return Course(background, province_of, gateway, probe)


def heartbeat(point: SimulatedPoint, sent_at: str) -> dict[str, Any]:
    point.seq += 1
    return {
        "point_code": point.code,
        "session_code": SESSION,
        "seq": point.seq,
        "sent_at": sent_at,
        "learners": point.learners,
    }


async def make_gateway(
    registration: httpx.AsyncClient, attendance: httpx.AsyncClient, course: Course
) -> None:
    """Let the gateway relay for every province, and wait until attendance knows it does."""
    relays_for = sorted(set(course.provinces.values()))
    response = await registration.patch(
        f"/v1/points/{course.gateway.code}",
        json={"relays_for": relays_for},
        headers={"Authorization": f"Bearer {DEV_OPERATOR_TOKEN}"},
    )
    response.raise_for_status()
    other = next(p for p in reversed(course.background) if p is not course.gateway)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = {"heartbeats": [heartbeat(other, datetime.now(UTC).isoformat())]}
        answer = await attendance.post(
            "/v1/heartbeats/batch",
            json=body,
            headers={"Authorization": f"Bearer {course.gateway.token}"},
        )
        if answer.status_code == 202 and answer.json()["accepted"] == 1:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("attendance never accepted the gateway's batch")


@dataclass
class LoadStats:
    sent: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: Counter[int] = field(default_factory=Counter)
    window: list[tuple[float, int]] = field(default_factory=list)  # (time, accepted so far)


async def drive_load(
    attendance: httpx.AsyncClient, course: Course, rate: float, stats: LoadStats
) -> None:
    """Every background point once per interval, `BATCH` at a time through the gateway."""
    loop = asyncio.get_running_loop()
    points = course.background
    auth = {
        "Authorization": f"Bearer {course.gateway.token}",
        "Content-Type": "application/json",
    }
    size = min(BATCH, len(points))
    every = size / rate
    next_at = loop.time()
    index = 0
    while True:
        chunk = [points[(index + i) % len(points)] for i in range(size)]
        index = (index + size) % len(points)
        sent_at = datetime.now(UTC).isoformat()
        for point in chunk:
            point.learners = max(0, point.learners + random.choice((-1, 0, 0, 1)))
        body = json.dumps({"heartbeats": [heartbeat(p, sent_at) for p in chunk]})
        began = loop.time()
        try:
            response = await attendance.post("/v1/heartbeats/batch", content=body, headers=auth)
        except httpx.TransportError:
            stats.errors[0] += 1
        else:
            stats.latencies.append(loop.time() - began)
            stats.sent += len(chunk)
            if response.status_code == 202:
                answer = response.json()
                stats.accepted += answer["accepted"]
                stats.rejected.update(r["reason"] for r in answer["rejected"])
            else:
                stats.errors[response.status_code] += 1
        stats.window.append((loop.time(), stats.accepted))
        next_at += every
        delay = next_at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            next_at = loop.time()  # behind: do not try to catch up in a burst


@dataclass
class StreamSeen:
    """When each value of the probe's learners was first seen on the SSE stream."""

    first: dict[int, float] = field(default_factory=dict)
    messages: list[float] = field(default_factory=list)
    waiting: dict[int, asyncio.Future[float]] = field(default_factory=dict)

    def saw(self, value: int, at: float) -> None:
        if value in self.first:
            return
        self.first[value] = at
        waiter = self.waiting.pop(value, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(at)

    async def arrival(self, value: int, patience: float) -> float | None:
        """When `value` was first seen, waiting up to `patience` for it; None if it never was."""
        if value in self.first:
            return self.first[value]
        waiter = asyncio.get_running_loop().create_future()
        self.waiting[value] = waiter
        try:
            return await asyncio.wait_for(waiter, patience)
        except TimeoutError:
            return None
        finally:
            self.waiting.pop(value, None)


async def watch_stream(reporting_url: str, seen: StreamSeen) -> None:
    async with (
        httpx.AsyncClient(base_url=reporting_url, timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", f"/v1/sessions/{SESSION}/stream") as response,
    ):
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            arrived = time.monotonic()
            totals = json.loads(line[5:])
            seen.messages.append(arrived)
            central = totals.get("by_level", {}).get("central")
            if central is not None:
                seen.saw(int(central["learners_present"]), arrived)


async def poll_rest(reporting: httpx.AsyncClient, value: int, patience: float) -> float | None:
    """When `GET /v1/sessions/{s}/breakdown/level` first shows the probe's `value` (polled every
    20 ms): freshness as docs/architecture.md defines it, without the stream's coalescing."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        response = await reporting.get(f"/v1/sessions/{SESSION}/breakdown/level")
        arrived = time.monotonic()
        central = response.json().get("central") if response.status_code == 200 else None
        if central is not None and central["learners_present"] == value:
            return arrived
        await asyncio.sleep(0.02)
    return None


async def watch_statuses(bootstrap: str, seen: dict[int, float], ready: asyncio.Event) -> None:
    """When each learner count of the probe was first seen on attendance.point-status."""
    key = status_key(SESSION, PROBE)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = [TopicPartition(POINT_STATUS.name, p) for p in range(POINT_STATUS.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for part in parts:
            await consumer.position(part)
        ready.set()
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            arrived = time.monotonic()
            for records in batch.values():
                for record in records:
                    if record.key == key and record.value is not None:
                        learners = int(json.loads(record.value)["learners"])
                        seen.setdefault(learners, arrived)
    finally:
        await consumer.stop()


@dataclass
class FreshnessResult:
    points: int
    freshness: list[float] = field(default_factory=list)
    pipeline: list[float] = field(default_factory=list)  # 202 -> status record on Kafka
    to_stream: list[float] = field(default_factory=list)  # status record -> SSE
    rest: list[float] = field(default_factory=list)  # 202 -> REST breakdown shows it
    accept: list[float] = field(default_factory=list)  # probe request -> 202
    missed: int = 0
    load: LoadStats = field(default_factory=LoadStats)
    achieved_rate: float = 0.0
    target_rate: float = 0.0
    sse_gaps: list[float] = field(default_factory=list)
    roundtrip_loaded: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    window_s: float = 0.0


async def freshness_bench(
    bootstrap: str,
    services: dict[str, ServiceProcess],
    broker_pid: int,
    points: int,
    samples: int,
) -> FreshnessResult:
    result = FreshnessResult(points)
    limits = httpx.Limits(max_connections=20)
    async with (
        httpx.AsyncClient(base_url=services["registration"].url, timeout=120) as registration,
        httpx.AsyncClient(
            base_url=services["attendance"].url, timeout=30, limits=limits
        ) as attendance,
        httpx.AsyncClient(base_url=services["reporting"].url, timeout=30) as reporting,
    ):
        step(f"freshness: registering {points:,} points")
        course = await register(registration, points)
        step(f"freshness: making {course.gateway.code} a gateway for every province")
        await make_gateway(registration, attendance, course)
        deadline = time.monotonic() + 120
        while True:
            answer = await reporting.get(f"/v1/sessions/{SESSION}/totals")
            if answer.status_code == 200 and answer.json()["registered"] == points:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"reporting never saw the {points} points: {answer.text[:300]}")
            await asyncio.sleep(0.2)

        status_seen: dict[int, float] = {}
        stream = StreamSeen()
        ready = asyncio.Event()
        tasks = [
            asyncio.create_task(watch_statuses(bootstrap, status_seen, ready)),
            asyncio.create_task(watch_stream(services["reporting"].url, stream)),
        ]
        result.target_rate = len(course.background) / INTERVAL_S
        load = asyncio.create_task(drive_load(attendance, course, result.target_rate, result.load))
        tasks.append(load)
        try:
            await asyncio.wait_for(ready.wait(), 30)
            probe = course.probe
            probe_auth = {"Authorization": f"Bearer {probe.token}"}

            async def send_probe(learners: int) -> tuple[float, float]:
                probe.learners = learners
                began = time.monotonic()
                response = await attendance.post(
                    "/v1/heartbeats",
                    json=heartbeat(probe, datetime.now(UTC).isoformat()),
                    headers=probe_auth,
                )
                if response.status_code != 202:
                    raise RuntimeError(f"probe heartbeat: {response.status_code} {response.text}")
                return began, time.monotonic()

            step(f"freshness: load at {result.target_rate:.0f}/s, warming up for 12 s")
            await send_probe(100)
            await asyncio.sleep(12)
            cpu_before = _cpu_of(services, broker_pid)
            window_start = time.monotonic()
            accepted_before = result.load.accepted
            step(f"freshness: {samples} probe changes, about one every 2 s")
            for k in range(1, samples + 1):
                value = 100 + k  # unique: each change is told apart by its value
                tick = time.monotonic()
                began, accepted = await send_probe(value)
                result.accept.append(accepted - began)
                polled = asyncio.create_task(poll_rest(reporting, value, patience=10))
                shown = await stream.arrival(value, patience=10)
                visible = await polled
                if visible is not None:
                    result.rest.append(visible - accepted)
                if shown is None:
                    result.missed += 1
                else:
                    result.freshness.append(shown - accepted)
                if value in status_seen:
                    result.pipeline.append(status_seen[value] - accepted)
                    if shown is not None:
                        result.to_stream.append(shown - status_seen[value])
                # About every 2 s, jittered: a fixed period would lock on to the phase of the
                # stream's 1-s loop and sample one point of the 0-1 s wait over and over.
                await asyncio.sleep(max(0.0, tick + random.uniform(1.5, 2.5) - time.monotonic()))
            window_end = time.monotonic()
            result.window_s = window_end - window_start
            result.achieved_rate = (result.load.accepted - accepted_before) / result.window_s
            cpu_after = _cpu_of(services, broker_pid)
            result.cpu = {
                name: (cpu_after[name] - cpu_before[name]) / result.window_s for name in cpu_after
            }
            gaps = [b - a for a, b in itertools.pairwise(stream.messages) if a >= window_start]
            result.sse_gaps = gaps
            step("freshness: round-trip baseline under the same load")
            result.roundtrip_loaded = await roundtrip_baseline(
                bootstrap, 150, linger_ms=0, in_turn=True, warmup=5
            )
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
    return result


def _cpu_of(services: dict[str, ServiceProcess], broker_pid: int) -> dict[str, float]:
    cpu = {name: cpu_seconds(s.process.pid) for name, s in services.items()}
    cpu["kafka broker"] = cpu_seconds(broker_pid)
    cpu["bench (load, SSE, probe)"] = time.process_time()
    return cpu


def run_freshness(args: argparse.Namespace, tmp: Path) -> list[Table]:
    points = max(60, round(COURSE_POINTS * args.size))
    extra_env = {
        "attendance": {
            "ATTENDANCE_RATE_LIMIT_PER_SECOND": "50",
            "ATTENDANCE_RATE_LIMIT_BURST": "100",
        }
    }
    with kafka(tmp / "freshness", (ROUNDTRIP,)) as broker:
        step("freshness: round-trip baseline on the quiet broker")
        # One record at a time, each acknowledged, without linger: the broker's own round trip.
        quiet = asyncio.run(
            roundtrip_baseline(broker.bootstrap, 150, linger_ms=0, in_turn=True, warmup=5)
        )
        with running_services(
            bootstrap=broker.bootstrap, data_dir=tmp / "freshness-services", extra_env=extra_env
        ) as services:
            result = asyncio.run(
                asyncio.wait_for(
                    freshness_bench(broker.bootstrap, services, broker.pid, points, args.samples),
                    args.samples * 2 + 240,
                )
            )
    load = result.load
    table = Table(
        f"freshness: {points:,} points beating every {INTERVAL_S:.0f} s through one relay"
        f" gateway, {len(result.freshness)} probe changes",
        ("what", "n", "p50 (ms)", "p99 (ms)", "max (ms)"),
    )

    def row(label: str, values: Sequence[float]) -> tuple[str, ...]:
        return (
            label,
            str(len(values)),
            f"{pct(values, 50) * 1000:.0f}",
            f"{pct(values, 99) * 1000:.0f}",
            f"{max(values, default=math.nan) * 1000:.0f}",
        )

    table.rows += [
        row("ours: 202 -> SSE shows the change", result.freshness),
        row("ours: 202 -> REST shows it (polled every 20 ms)", result.rest),
        row("  202 -> status record on attendance.point-status", result.pipeline),
        row("  status record -> SSE shows it", result.to_stream),
        row("  probe POST /v1/heartbeats -> 202", result.accept),
        row("  batch of 500 POST -> 202 (load)", load.latencies),
        row("baseline: bare produce -> consume (quiet broker)", quiet),
        row("baseline: bare produce -> consume (under the load)", result.roundtrip_loaded),
        row("SSE: gap between messages", result.sse_gaps),
    ]
    cpu = ", ".join(f"{name} {share * 100:.0f}%" for name, share in result.cpu.items())
    table.notes += [
        f"load: target {result.target_rate:.0f} heartbeats/s, achieved {result.achieved_rate:.0f}/s"
        f" accepted over the {result.window_s:.0f} s window; {load.sent:,} sent, "
        f"{load.accepted:,} accepted, rejected {dict(load.rejected) or 'none'},"
        f" failed requests {dict(load.errors) or 'none'}",
        f"probe changes not seen on the stream within 10 s: {result.missed}",
        f"CPU (share of one core) during the window: {cpu} (nproc {os.cpu_count()})",
        "the SSE stream checks for a change once a second and sends at most one message a"
        " second, so a change waits 0-1 s for the next check: p50 about pipeline + 0.5 s,"
        " p99 about pipeline + 1 s by construction",
    ]
    fresh_p99, bare_p99 = pct(result.freshness, 99), pct(result.roundtrip_loaded, 99)
    record_figure(
        Figure(
            "B3",
            f"freshness: 202 -> change on the SSE stream ({points:,} points every"
            f" {INTERVAL_S:.0f} s, {len(result.freshness)} changes)",
            f"p99 {fresh_p99 * 1000:.0f} ms",
            f"p50 {pct(result.freshness, 50) * 1000:.0f} ms,"
            f" max {max(result.freshness, default=math.nan) * 1000:.0f} ms",
            f"p99 {bare_p99 * 1000:.0f} ms (bare produce -> consume under the load)",
            f"{fresh_p99 / bare_p99:.1f}x the baseline",
            "p99 < 1 s",
            fresh_p99 < 1.0 and not result.missed,
        )
    )
    return [table]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size", type=float, default=1.0, help="scale of the data (1.0 = full)")
    parser.add_argument("--samples", type=int, default=100, help="probe changes (freshness)")
    run_after_machine_facts("freshness", run_freshness, parser.parse_args())


if __name__ == "__main__":
    main()
