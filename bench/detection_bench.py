"""The attendance service against a real Kafka broker: how soon a stopped point is detected.

    uv run python bench/detection_bench.py [--size FACTOR] [--runs 3]

The three services; a course of 50 points beating every second (late after 3 s, disconnected
after 6 s); 10 points stopped at known moments per round (`--runs` rounds); delay from the last
accepted heartbeat's server `received_at` to the `disconnected` record seen on
`attendance.point-status`. Also the freshness of ordinary changes (a 202 that changed the
learner count -> its status record seen), against a bare produce -> consume round trip.

It starts its own single-node Kafka broker on 127.0.0.1 (devstack), creates the topics, and
stops everything it started (broker, service processes) even on error. `--size 0.05` shrinks
the durations for a quick check. The table ends with how busy the machine already was before
the benchmark started: other work on the machine skews every number here.
"""

import argparse
import asyncio
import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from harness import (
    ROUNDTRIP,
    Figure,
    Table,
    kafka,
    pct,
    record_figure,
    roundtrip_baseline,
    run_noting_load,
    size_and_runs,
    step,
)

from contracts.codec import decode
from contracts.events import PointState, PointStatus
from contracts.topics import POINT_STATUS, status_key
from devstack.services import ServiceProcess, running_services
from devstack.simulate import CoursePlan, SimulatedPoint, register_course
from servicekit.provision import ensure_topics


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
    await ensure_topics(bootstrap, [ROUNDTRIP])
    # Sent on the clock with the services' producers' linger (5 ms), as their records go out.
    roundtrip = await roundtrip_baseline(bootstrap, 500, linger_ms=5, in_turn=False, warmup=0)
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


def main() -> None:
    parser = size_and_runs(__doc__, "scale sizes and durations")
    run_noting_load("detection", run_detection, parser.parse_args())


if __name__ == "__main__":
    main()
