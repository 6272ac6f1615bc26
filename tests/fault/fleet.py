"""The services of one fault test as processes on a broker of the test's own, to be killed,
stopped, paused and started again on the same ports; and points heartbeating through it all.

Attendance runs split, as it scales in production: one ingest-only process and processor-only
instances in one consumer group, so each half can be hurt on its own.
"""

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import pytest

from devstack.kafka import Broker, default_cache_dir
from devstack.ports import free_port
from devstack.services import GRACE_SECONDS, ServiceProcess, start_in, stop_all, wait_healthy
from devstack.silences import Silences
from devstack.simulate import CoursePlan, SimulatedPoint, register_course, send_heartbeat
from servicekit.provision import ensure_topics
from tests.e2e.helpers import eventually

# Liveness in seconds, so faults lasting a few seconds show as real silences.
PLAN = CoursePlan(
    points=24,
    never_join=2,
    heartbeat_interval_s=1.0,
    late_after_s=3.0,
    disconnected_after_s=6.0,
)
# The tests that run a load (a fleet's, or the simulated course's) run one after the other,
# even side by side with other tests (pytest-xdist's `--dist loadgroup`): two loads at once
# would share the two cores with each other as well as with the rest of the suite.
UNDER_LOAD = pytest.mark.xdist_group("under-load")
LAG_TICK = 0.1  # how often the load looks at its own event loop
# httpcore's trace events of a request's first action on a socket.
SOCKET_ACTIONS = frozenset(
    {"connection.connect_tcp.started", "http11.send_request_headers.started"}
)
ROLES = {
    "registration": ("registration", {}),
    "ingest": ("attendance", {"ATTENDANCE_PROCESSOR": "false"}),
    "reporting": ("reporting", {}),
}


def fault_plan(name: str, **changes: object) -> CoursePlan:
    code = f"F{name.upper()}{os.getpid() % 1000}"
    return replace(PLAN, course_code=code, session_code=f"{code}-S1", **changes)  # type: ignore[arg-type]


class Fleet:
    """Registration, ingest, reporting and processor instances, each on a fixed port.

    Roles `processor-<n>` and `ingest-<n>` are further instances of those halves; `bootstraps`
    gives a role its own address of Kafka (a proxy of its own), else `bootstrap` is used.
    """

    def __init__(
        self,
        bootstrap: str,
        root: Path,
        *,
        processor_env: dict[str, str] | None = None,
        ingest_env: dict[str, str] | None = None,
        bootstraps: Mapping[str, str] | None = None,
    ) -> None:
        self.bootstrap, self.root = bootstrap, root
        self.processor_env = processor_env or {}
        self.ingest_env = ingest_env or {}
        self.bootstraps = dict(bootstraps or {})
        self.ports = {role: free_port() for role in ROLES}
        self.services: dict[str, ServiceProcess] = {}
        self._numbers = iter(range(1_000))

    def url(self, role: str) -> str:
        return f"http://127.0.0.1:{self.ports[role]}"

    def start(self, role: str, *, wait: bool = True) -> ServiceProcess:
        """Start (or start again) `role` on its port, with its own database and log."""
        if role.startswith("processor"):
            name, env = "attendance", self._processor_env(role)
        elif role.startswith("ingest"):
            name, env = ROLES["ingest"]
            env = env | self._own_database(role) | self.ingest_env
        else:
            name, env = ROLES[role]
        self.ports.setdefault(role, free_port())
        service = start_in(
            name,
            bootstrap=self.bootstraps.get(role, self.bootstrap),
            data_dir=self.root,
            port=self.ports[role],
            extra_env=env,
        )
        self.services[role] = service
        if wait:
            wait_healthy(service, timeout=90)
        return service

    def _processor_env(self, role: str) -> dict[str, str]:
        return {"ATTENDANCE_INGEST": "false"} | self._own_database(role) | self.processor_env

    def _own_database(self, role: str) -> dict[str, str]:
        # One SQLite file per attendance process: two writers on one file would lock each other.
        if role == "ingest":
            return {}  # the suite's single ingest keeps the file `service_env` names
        return {"ATTENDANCE_DATABASE_URL": f"sqlite:///{self.root / f'{role}.db'}"}

    def start_all(self, processors: int = 1) -> None:
        for role in (*ROLES, *(f"processor-{n}" for n in range(processors))):
            self.start(role, wait=False)
        for service in self.services.values():
            wait_healthy(service, timeout=90)

    def kill(self, role: str) -> None:
        """kill -9: no drain, no commit, no goodbye to the group."""
        service = self.services[role]
        os.kill(service.process.pid, signal.SIGKILL)
        service.process.wait()

    def terminate(self, role: str) -> float:
        """SIGTERM, and the seconds until the process exited (SIGKILL after 30 s)."""
        service = self.services[role]
        began = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        try:
            service.process.wait(30)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()
            return float("inf")
        return time.monotonic() - began

    def stop(self, timeout: float = GRACE_SECONDS) -> None:
        """SIGTERM every service, SIGKILL what still runs after `timeout`."""
        for service in self.services.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(service.process.pid, signal.SIGCONT)  # a paused one cannot drain
        stop_all(self.services.values(), timeout)

    def log(self, role: str) -> str:
        return self.services[role].log_path.read_text(errors="replace")


@dataclass
class Load:
    """Points heartbeating every interval through the ingest, and what each answer was."""

    url: str
    session_code: str
    points: list[SimulatedPoint]
    interval: float
    sent: int = 0
    accepted: set[tuple[str, int]] = field(default_factory=set)
    refused: Counter[str] = field(default_factory=Counter)
    silent: set[str] = field(default_factory=set)  # codes to stop beating, on purpose
    # The longest a point went between two heartbeats it sent while beating: the load's own
    # stalls (a slow answer, its event loop late), told apart from the system's.
    longest_gap: float = 0.0
    # The longest a request waited in the load before its first socket action (the load's
    # lateness), and from then to the ingest's own receive time (the monitor's).
    longest_unsent: float = 0.0
    longest_unread: float = 0.0
    silences: Silences = field(init=False)

    def __post_init__(self) -> None:
        self.silences = Silences(self.interval)

    async def run(self) -> None:
        async with (
            httpx.AsyncClient(base_url=self.url, timeout=10) as client,
            asyncio.TaskGroup() as points,
        ):
            points.create_task(self._watch_lag())
            for point in self.points:
                if not point.never_joins:
                    points.create_task(self._keep_beating(client, point))

    async def _keep_beating(self, client: httpx.AsyncClient, point: SimulatedPoint) -> None:
        """As a point's agent does: a heartbeat, its answer, the rest of the interval. Each
        point on its own, so one slow answer delays that point only, as in the field."""
        last: float | None = None
        while True:
            started = time.monotonic()
            if point.code in self.silent:
                last = None
            else:
                if last is not None:
                    self.longest_gap = max(self.longest_gap, started - last)
                last = started
                await self._speak(client, point)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def _speak(self, client: httpx.AsyncClient, point: SimulatedPoint) -> None:
        """One heartbeat. The room speaks from the load's first action on a socket for it (a
        connect, or its headers on a kept connection: httpx's trace) to its answer or failure.
        Before that, a load starved of CPU is quiet by its own fault; after it, even a refused
        connection is the room trying and the monitor not there."""
        made = time.time()
        touched: float | None = None

        async def trace(event: str, _: dict[str, Any]) -> None:
            nonlocal touched
            if touched is None and event in SOCKET_ACTIONS:
                touched = time.time()
                self.silences.speaking(point.code, touched)

        try:
            answer = await self._beat(client, point, {"trace": trace})
        finally:
            if touched is not None:
                self.silences.answered(point.code, time.time())
        if touched is None:
            return
        self.longest_unsent = max(self.longest_unsent, touched - made)
        if answer is not None and answer.status_code == 202:
            received = datetime.fromisoformat(answer.json()["received_at"]).timestamp()
            self.longest_unread = max(self.longest_unread, received - touched)

    async def _watch_lag(self) -> None:
        """The load's own event loop woken late (a busy machine): its rooms were quiet by the
        load's fault meanwhile, which the monitor rightly sees as silence."""
        while True:
            began = time.monotonic()
            await asyncio.sleep(LAG_TICK)
            late = time.monotonic() - began - LAG_TICK
            if late > self.interval / 2:
                now = time.time()
                self.silences.stalled(now - late, now)

    async def _beat(
        self, client: httpx.AsyncClient, point: SimulatedPoint, extensions: dict[str, Any]
    ) -> httpx.Response | None:
        self.sent += 1
        try:
            answer = await send_heartbeat(client, point, self.session_code, extensions)
        except httpx.TransportError as error:
            self.refused[type(error).__name__] += 1
            return None
        if answer.status_code == 202:
            self.accepted.add((point.code, point.seq))
        else:
            self.refused[str(answer.status_code)] += 1
        return answer

    def figures(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "accepted": len(self.accepted),
            "refused": dict(self.refused),
            "longest_gap_between_sends_s": round(self.longest_gap, 2),
            "longest_made_to_socket_s": round(self.longest_unsent, 2),
            "longest_socket_to_received_s": round(self.longest_unread, 2),
            **self.silences.counts(),
        }


async def register(fleet: Fleet, plan: CoursePlan, seed: int) -> list[SimulatedPoint]:
    return await register_at(fleet.url("registration"), fleet.url("ingest"), plan, seed)


async def register_at(
    registration_url: str, ingest_url: str, plan: CoursePlan, seed: int
) -> list[SimulatedPoint]:
    """Register the course and wait until the ingest accepts its points' tokens."""
    random.seed(seed)  # register_course samples points and learners with `random`
    async with httpx.AsyncClient(base_url=registration_url, timeout=30) as registration:
        points = await register_course(registration, plan)
    rng = random.Random(seed)
    for point in points:
        point.learners = rng.randint(5, 60)
    joining = [p for p in points if not p.never_joins]
    async with httpx.AsyncClient(base_url=ingest_url, timeout=10) as ingest:

        async def first_beat() -> int:
            await asyncio.sleep(1)  # the point's own pace: faster would be rate limited
            return (await send_heartbeat(ingest, joining[0], plan.session_code)).status_code

        await eventually(first_beat, lambda status: status == 202, patience=60)
    return points


class Runs(Protocol):
    async def run(self) -> None: ...


Running = TypeVar("Running", bound=Runs)


@contextlib.asynccontextmanager
async def flowing(load: Running) -> AsyncIterator[Running]:
    """`load.run()` in the background for as long as the block lasts."""
    task = asyncio.create_task(load.run())
    try:
        yield load
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def own_broker(root: Path) -> Iterator[Broker]:
    """A broker of the test's own: its faults must not reach the suite's shared stack."""
    with Broker.start(default_cache_dir(), root / "kafka") as broker:
        asyncio.run(ensure_topics(broker.bootstrap))
        yield broker


def fleet_on(broker: Broker, root: Path, **options: Any) -> Iterator[Fleet]:
    fleet = Fleet(broker.bootstrap, root, **options)
    try:
        yield fleet
    finally:
        fleet.stop()
