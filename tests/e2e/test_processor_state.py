"""The processor's state survives kill -9: restored per partition from the
changelog, with no point ever flapping to late or disconnected while its heartbeats kept coming.

These tests run on a broker of their own: they start and kill processor instances of one
consumer group, which must not share topics with the suite's long-running stack.
"""

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from contracts.codec import decode
from contracts.events import PointState, PointStatus
from contracts.topics import POINT_STATUS, status_key
from devstack.kafka import Broker, default_cache_dir
from devstack.services import ServiceProcess, start_in, stop_all, wait_healthy
from devstack.silences import Silences, false_transitions
from devstack.simulate import CoursePlan, SimulatedPoint, register_course, send_heartbeat
from servicekit.provision import ensure_topics
from tests.e2e.helpers import eventually
from tests.e2e.kafka_reading import records_of_keys

pytestmark = pytest.mark.e2e
PLAN = CoursePlan(
    course_code="RB",
    session_code="RB-S1",
    points=8,
    never_join=0,
    heartbeat_interval_s=1.0,
    late_after_s=3.0,
    disconnected_after_s=6.0,
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with Broker.start(default_cache_dir(), tmp_path_factory.mktemp("kafka")) as broker:
        asyncio.run(ensure_topics(broker.bootstrap))
        yield broker


class Cluster:
    """Registration, one ingest-only attendance, and processor instances started at will."""

    def __init__(self, broker: Broker, root: Path) -> None:
        self._broker, self._root = broker, root
        self.processors: list[ServiceProcess] = []
        self.registration = self._start("registration", {})
        self.ingest = self._start("attendance", {"ATTENDANCE_PROCESSOR": "false"})

    def _start(self, name: str, env: dict[str, str]) -> ServiceProcess:
        service = start_in(
            name, bootstrap=self._broker.bootstrap, data_dir=self._root, extra_env=env
        )
        wait_healthy(service)
        return service

    def start_processor(self) -> ServiceProcess:
        number = len(self.processors)
        processor = self._start(
            "attendance",
            {
                "ATTENDANCE_INGEST": "false",
                "ATTENDANCE_DATABASE_URL": f"sqlite:///{self._root / f'attendance-{number}.db'}",
            },
        )
        self.processors.append(processor)
        return processor

    def stop(self) -> None:
        stop_all([*self.processors, self.ingest, self.registration])


@pytest.fixture
async def cluster(broker: Broker, tmp_path: Path) -> AsyncIterator[Cluster]:
    cluster = await asyncio.to_thread(Cluster, broker, tmp_path)
    yield cluster
    await asyncio.to_thread(cluster.stop)


async def keep_beating(
    points: list[SimulatedPoint], url: str, plan: CoursePlan, silences: Silences
) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as attendance:
        while True:
            started = time.monotonic()
            for point in points:
                silences.speaking(point.code, time.time())
                with contextlib.suppress(httpx.TransportError):
                    await send_heartbeat(attendance, point, plan.session_code)
                silences.answered(point.code, time.time())
            await asyncio.sleep(max(0.0, plan.heartbeat_interval_s - (time.monotonic() - started)))


async def statuses(
    broker: Broker, plan: CoursePlan, codes: list[str]
) -> dict[str, list[PointStatus]]:
    keys = {status_key(plan.session_code, code) for code in codes}
    records = await records_of_keys(broker.bootstrap, POINT_STATUS.name, keys)
    seen: dict[str, list[PointStatus]] = {code: [] for code in codes}
    for _, value in records:
        if value is not None:
            status = decode(PointStatus, value)
            seen[status.point_code].append(status)
    return seen


async def setup_course(cluster: Cluster, plan: CoursePlan) -> list[SimulatedPoint]:
    async with httpx.AsyncClient(base_url=cluster.registration.url, timeout=30) as registration:
        points = await register_course(registration, plan)
    async with httpx.AsyncClient(base_url=cluster.ingest.url) as attendance:
        await eventually(
            lambda: send_heartbeat(attendance, points[0], plan.session_code),
            lambda response: response.status_code == 202,
        )
    return points


async def test_kill_9_then_restore_from_the_changelog(broker: Broker, cluster: Cluster) -> None:
    first = await asyncio.to_thread(cluster.start_processor)
    points = await setup_course(cluster, PLAN)
    steady, quitter = points[:-1], points[-1]
    for point in points:
        point.learners = 20
    silences = Silences(PLAN.heartbeat_interval_s)
    beating = asyncio.create_task(keep_beating(steady, cluster.ingest.url, PLAN, silences))
    try:
        async with httpx.AsyncClient(base_url=cluster.ingest.url) as attendance:
            await send_heartbeat(attendance, quitter, PLAN.session_code)
        codes = [p.code for p in points]
        await eventually(
            lambda: statuses(broker, PLAN, codes),
            lambda seen: (
                bool(seen[quitter.code])
                and seen[quitter.code][-1].state is PointState.DISCONNECTED
                and all(seen[p.code] for p in steady)
            ),
        )
        began = time.time()  # every steady point has spoken by now
        before_kill = (await statuses(broker, PLAN, codes))[quitter.code]
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
        await asyncio.sleep(PLAN.disconnected_after_s + 2)  # longer than any timeout
        second = await asyncio.to_thread(cluster.start_processor)
        # The new instance restores, catches up, and carries on: a learner change shows it.
        for point in steady:
            point.learners = 21
        await eventually(
            lambda: statuses(broker, PLAN, codes),
            lambda seen: all(seen[p.code][-1].learners == 21 for p in steady),
            patience=90,
        )
    finally:
        beating.cancel()
    seen = await statuses(broker, PLAN, codes)
    assert false_transitions(seen, silences) == {}
    assert all(s.reconnects == 0 for code in silences.steady(began) for s in seen[code])
    # The quitter stayed disconnected: its state came back from the changelog, not from zero,
    # so the new instance published nothing for it.
    assert [s.state for s in before_kill] == [
        PointState.CONNECTED,
        PointState.LATE,
        PointState.DISCONNECTED,
    ]
    assert seen[quitter.code] == before_kill
    # It says what it restored, in the services' one format.
    restore_line = r"^\S+ \S+ INFO attendance\.processor: took partitions \[.*\] \(\d+ tracks\)"
    assert re.search(restore_line, second.log_path.read_text(), re.MULTILINE), second.log_tail()
