"""A seeded, randomized nemesis campaign (docs/reliability.md), for as long as asked:

    uv run python -m tests.fault.nemesis --minutes 30 --seed 12

A course of 1,000 points heartbeats every 2 s (late after 8 s, disconnected after 16 s), most
relayed by gateways (`tests.fault.nemesis_load`), on a broker of the campaign's own. The
services run as production scales them: registration, two ingest-only instances the load
alternates between, two or three processor-only instances of one group, reporting. Every
instance reaches Kafka only through a toxiproxy proxy of its own (a listener of the broker
advertised on the proxy's port), so a network fault can hit one instance alone.

One fault at a time, drawn from the seed in rounds that hold every kind once: kill -9, SIGSTOP
or SIGTERM of any instance (started again where it was), a broker restart on the same ports and
data, a processor added or removed, latency, a cut or a black hole on one instance's proxy.
Each fault is followed by a settle period and a checkpoint: the processor group caught up, then
its committed statuses and reporting's totals compared with the oracle (`tests.fault.oracle`,
fed incrementally). Per fault it counts false transitions (judged against the load's own
requests, `devstack.silences`), accepted heartbeats missing from Kafka, reconnects counted
twice and what still differs from the oracle once settled; the figures go to
test-artifacts/nemesis-<seed>.json/.md.
"""

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from contracts.codec import ContractError, decode
from contracts.events import PointStatus
from contracts.topics import HEARTBEATS, POINT_STATUS
from devstack.kafka import Broker, default_cache_dir
from devstack.ports import free_ports
from devstack.registering import PROBE_SESSION, bearer
from devstack.services import ServiceError, wait_healthy
from devstack.silences import Silences
from devstack.simulate import (
    DEV_OPERATOR_TOKEN,
    CoursePlan,
    SimulatedPoint,
    register_course,
    send_heartbeat,
)
from servicekit.provision import ensure_topics
from tests.conftest import ARTIFACTS
from tests.e2e.helpers import eventually
from tests.fault.fleet import Fleet, flowing
from tests.fault.nemesis_load import (
    BATCH_PATH,
    HEARTBEAT_PATH,
    CpuShare,
    Load,
    Sender,
)
from tests.fault.oracle import (
    STATES,
    Allowances,
    Comparison,
    Recomputation,
    Tail,
    caught_up,
    comparison_of,
    enrolled,
    served_totals,
    write_timelines,
)
from tests.fault.toxiproxy import Toxiproxy

POINTS = 1_000
GATEWAYS = 4
SINGLE_EVERY = 20  # every twentieth point speaks for itself, the others through a gateway
NEVER_JOIN = 10
# The session's liveness: late and disconnected leave room for a failover (a 3 s client
# timeout) on top of the 2 s interval.
INTERVAL_S, LATE_AFTER_S, DISCONNECTED_AFTER_S = 2.0, 8.0, 16.0
# The services run with the defaults docs/reliability.md promises: publish timeout 5 s
# (ATTENDANCE_PUBLISH_TIMEOUT_SECONDS), outage allowance 1 s (ATTENDANCE_OUTAGE_AFTER_SECONDS).
ALLOWANCES = Allowances()
SESSION_TIMEOUT_SECONDS = 10.0  # the processor's consumer group (aiokafka's default)
# After a fault, before its checkpoint: the aftermath plays out in the fault's own window. The
# checkpoint then awaits the catch-up and the agreement as conditions.
SETTLE_SECONDS = 5.0
WARM_UP_SECONDS = 10.0
# Patience only: it stops a broken system from hanging the campaign, it is not a speed claim.
CATCH_UP_PATIENCE = 120.0
AGREEMENT_PATIENCE = 90.0
GUESSED_RESTART_SECONDS = 5.0  # how long a restart keeps an instance away, for planning silences

INGESTS = ("ingest-0", "ingest-1")
PROCESSOR_SLOTS = tuple(f"processor-{n}" for n in range(4))
FIRST_PROCESSORS = 2
MIN_PROCESSORS, MAX_PROCESSORS = 1, 3
SLOTS = ("registration", *INGESTS, *PROCESSOR_SLOTS, "reporting")
KINDS = (
    "kill",
    "pause",
    "terminate",
    "broker_restart",
    "add_processor",
    "remove_processor",
    "latency",
    "cut",
    "black_hole",
)
BASELINE = "baseline"  # the warm-up before any fault, checked like a fault's window
COUNTS = ("false_transitions", "missing", "double_reconnects", "settled_differences")
OPERATOR = bearer(DEV_OPERATOR_TOKEN)


# --- the stack -----------------------------------------------------------------------------------


def _listener(slot: str) -> str:
    return slot.upper().replace("-", "_")


class Stack:
    """The broker with one listener per instance slot, a toxiproxy proxy in front of each, and
    the instances, each reaching Kafka only through its own proxy. The campaign's own readers
    use the broker's plain listener: the faults are the system's, not the judge's."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.toxiproxy = Toxiproxy(log_path=root / "toxiproxy.log")
        self._broker: Broker | None = None
        self._fleet: Fleet | None = None
        self.processors: list[str] = []

    @property
    def broker(self) -> Broker:
        assert self._broker is not None, "the stack is not started"
        return self._broker

    @property
    def fleet(self) -> Fleet:
        assert self._fleet is not None, "the stack is not started"
        return self._fleet

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.toxiproxy.start()
        ports = free_ports(2 * len(SLOTS))
        listeners, bootstraps = {}, {}
        for slot, bound, advertised in zip(SLOTS, ports[::2], ports[1::2], strict=True):
            self.toxiproxy.create_proxy(
                slot, upstream=f"127.0.0.1:{bound}", listen=f"127.0.0.1:{advertised}"
            )
            listeners[_listener(slot)] = (bound, advertised)
            bootstraps[slot] = f"127.0.0.1:{advertised}"
        self._broker = Broker.start(
            default_cache_dir(), self.root / "kafka", extra_listeners=listeners
        )
        self._fleet = Fleet(self._broker.bootstrap, self.root, bootstraps=bootstraps)

    def start_services(self) -> None:
        self.processors = list(PROCESSOR_SLOTS[:FIRST_PROCESSORS])
        roles = ("registration", *INGESTS, "reporting", *self.processors)
        for role in roles:
            self.fleet.start(role, wait=False)
        for role in roles:
            wait_healthy(self.fleet.services[role], timeout=90)

    def instances(self) -> list[str]:
        return ["registration", *INGESTS, "reporting", *self.processors]

    def broker_running(self) -> bool:
        return self._broker is not None and self._broker.is_running()

    def stop_broker(self) -> None:
        self.broker.stop()

    def start_broker(self) -> None:
        """The same broker back: its ports, its listeners (the proxies point at them), its data."""
        old = self.broker
        self._broker = Broker.start(
            default_cache_dir(),
            old.data_dir,
            ports=(old.port, old.controller_port),
            extra_listeners=old.extra_listeners,
        )

    def stop(self) -> None:
        if self._fleet is not None:
            self._fleet.stop()
        if self._broker is not None:
            self._broker.stop()
        self.toxiproxy.stop()


# --- faults --------------------------------------------------------------------------------------


@dataclass
class Fault:
    number: int
    kind: str
    target: str | None = None
    params: dict[str, float] = field(default_factory=dict)
    injected_at: float = 0.0
    recovered_at: float = 0.0
    settled_at: float = 0.0
    checked_at: float = 0.0
    false_transitions: int = 0
    missing: int = 0
    double_reconnects: int = 0
    settled_differences: int = 0
    errors: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTS}

    @property
    def clean(self) -> bool:
        return not any(self.counts.values()) and not self.errors

    @property
    def active_seconds(self) -> float:
        """How long the fault is meant to hurt, for planning the load's own changes in it."""
        if "seconds" in self.params:
            return self.params["seconds"]
        if self.kind == "broker_restart":
            return self.params["down"] + GUESSED_RESTART_SECONDS
        return GUESSED_RESTART_SECONDS

    def describe(self) -> str:
        p = self.params
        what = {
            "kill": f"kill -9 of {self.target}, started again",
            "pause": f"SIGSTOP of {self.target} for {p.get('seconds', 0):.1f} s",
            "terminate": f"SIGTERM of {self.target}, started again",
            "broker_restart": f"broker stopped, {p.get('down', 0):.1f} s down",
            "add_processor": f"{self.target} added",
            "remove_processor": f"{self.target} removed (SIGTERM)",
            "latency": (
                f"latency {p.get('latency_ms', 0):.0f} ± {p.get('jitter_ms', 0):.0f} ms on "
                f"{self.target} for {p.get('seconds', 0):.1f} s"
            ),
            "cut": f"{self.target} cut off for {p.get('seconds', 0):.1f} s",
            "black_hole": f"black hole on {self.target} for {p.get('seconds', 0):.1f} s",
            BASELINE: "warm-up, no fault",
        }
        return what[self.kind]


def kinds_drawn(rng: random.Random, kinds: tuple[str, ...] = KINDS) -> Iterator[str]:
    """Rounds of every kind in a random order: any run of len(KINDS) faults from the start
    covers them all, and the processor count stays within bounds (one add, one remove a
    round)."""
    while True:
        drawn = list(kinds)
        rng.shuffle(drawn)
        yield from drawn


class Nemesis:
    """Draws each fault from the seed and injects it, returning once it is over."""

    def __init__(self, stack: Stack, rng: random.Random) -> None:
        self.stack = stack
        self.rng = rng
        # What else must stop reading while the broker is away (the judge's consumers).
        self.readers_away: Callable[[], contextlib.AbstractAsyncContextManager[None]] = (
            contextlib.nullcontext
        )
        self._inject: dict[str, Callable[[Fault], Awaitable[None]]] = {
            "kill": self._kill,
            "pause": self._pause,
            "terminate": self._terminate,
            "broker_restart": self._broker_restart,
            "add_processor": self._add_processor,
            "remove_processor": self._remove_processor,
            "latency": self._latency,
            "cut": self._cut,
            "black_hole": self._black_hole,
        }

    def draw(self, number: int, kind: str) -> Fault:
        rng, processors = self.rng, self.stack.processors
        if kind == "add_processor" and len(processors) >= MAX_PROCESSORS:
            kind = "remove_processor"
        elif kind == "remove_processor" and len(processors) <= MIN_PROCESSORS:
            kind = "add_processor"
        fault = Fault(number, kind)
        if kind == "broker_restart":
            fault.params["down"] = rng.uniform(5, 20)
        elif kind == "add_processor":
            fault.target = next(s for s in PROCESSOR_SLOTS if s not in processors)
        elif kind == "remove_processor":
            fault.target = rng.choice(processors)
        else:
            fault.target = rng.choice(self.stack.instances())
        if kind == "pause":
            # A processor past its group's session timeout, so its partitions move meanwhile.
            low, high = (
                (SESSION_TIMEOUT_SECONDS + 1, SESSION_TIMEOUT_SECONDS + 5)
                if fault.target in processors
                else (5, 15)
            )
            fault.params["seconds"] = rng.uniform(low, high)
        elif kind == "latency":
            latency = rng.randint(200, 2000)
            fault.params |= {
                "latency_ms": latency,
                "jitter_ms": round(latency * rng.uniform(0.1, 0.5)),
                "seconds": rng.uniform(5, 20),
            }
        elif kind in ("cut", "black_hole"):
            fault.params["seconds"] = rng.uniform(2, 10)
        return fault

    async def inject(self, fault: Fault) -> None:
        await self._inject[fault.kind](fault)

    @property
    def fleet(self) -> Fleet:
        return self.stack.fleet

    async def _start_again(self, fault: Fault) -> None:
        role = fault.target
        assert role is not None
        began = time.monotonic()
        for _ in range(2):
            try:
                await asyncio.to_thread(self.fleet.start, role)
                break
            except ServiceError as error:
                fault.errors.append(f"{role} did not start: {str(error)[:2000]}")
        fault.details["healthy_after_s"] = round(time.monotonic() - began, 1)

    async def _kill(self, fault: Fault) -> None:
        await asyncio.to_thread(self.fleet.kill, fault.target or "")
        await self._start_again(fault)

    async def _pause(self, fault: Fault) -> None:
        pid = self.fleet.services[fault.target or ""].process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(fault.params["seconds"])
        finally:
            os.kill(pid, signal.SIGCONT)

    async def _terminate(self, fault: Fault) -> None:
        exit_seconds = await asyncio.to_thread(self.fleet.terminate, fault.target or "")
        fault.details["exit_s"] = round(exit_seconds, 1)
        await self._start_again(fault)

    async def _broker_restart(self, fault: Fault) -> None:
        async with self.readers_away():
            began = time.monotonic()
            await asyncio.to_thread(self.stack.stop_broker)
            fault.details["stop_s"] = round(time.monotonic() - began, 1)
            await asyncio.sleep(fault.params["down"])
            began = time.monotonic()
            await asyncio.to_thread(self.stack.start_broker)
            fault.details["start_s"] = round(time.monotonic() - began, 1)

    async def _add_processor(self, fault: Fault) -> None:
        self.stack.processors.append(fault.target or "")
        await self._start_again(fault)

    async def _remove_processor(self, fault: Fault) -> None:
        self.stack.processors.remove(fault.target or "")
        exit_seconds = await asyncio.to_thread(self.fleet.terminate, fault.target or "")
        fault.details["exit_s"] = round(exit_seconds, 1)

    async def _latency(self, fault: Fault) -> None:
        proxy, p = fault.target or "", fault.params
        toxiproxy = self.stack.toxiproxy
        toxic = await asyncio.to_thread(
            toxiproxy.latency, proxy, int(p["latency_ms"]), int(p["jitter_ms"])
        )
        try:
            await asyncio.sleep(p["seconds"])
        finally:
            await asyncio.to_thread(toxiproxy.remove_toxic, proxy, toxic.name)

    async def _cut(self, fault: Fault) -> None:
        proxy, toxiproxy = fault.target or "", self.stack.toxiproxy
        await asyncio.to_thread(toxiproxy.disable, proxy)
        try:
            await asyncio.sleep(fault.params["seconds"])
        finally:
            await asyncio.to_thread(toxiproxy.enable, proxy)

    async def _black_hole(self, fault: Fault) -> None:
        """Both directions swallowed, connections held open: a dead router, not a refusal."""
        proxy, toxiproxy = fault.target or "", self.stack.toxiproxy
        toxics = [
            await asyncio.to_thread(toxiproxy.timeout, proxy, 0, stream=stream)
            for stream in ("upstream", "downstream")
        ]
        try:
            await asyncio.sleep(fault.params["seconds"])
        finally:
            for toxic in toxics:
                await asyncio.to_thread(toxiproxy.remove_toxic, proxy, toxic.name)


# --- the judge -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SilentStatus:
    """A committed status late or disconnected, and when attendance published it."""

    code: str
    state: str
    since: float
    # The last heartbeat the system took: it says the point was silent from here to `since`.
    last_heartbeat: float
    published_at: float


class Judge:
    """The oracle fed as the heartbeat topic grows, and attendance's committed statuses read
    the same way: one consumer each, open for the whole campaign, reading only what is new."""

    def __init__(self, bootstrap: str, session_code: str, silences: Silences) -> None:
        self.bootstrap, self.session_code, self.silences = bootstrap, session_code, silences
        self.latest: dict[str, PointStatus] = {}
        self._silent: list[SilentStatus] = []
        # Per point, how many reconnects its status had above the oracle's at the last look.
        self._excess: dict[str, int] = {}
        self._exits = contextlib.AsyncExitStack()
        self._recomputation: Recomputation | None = None
        self._beats = Tail(bootstrap, HEARTBEATS)
        self._statuses = Tail(bootstrap, POINT_STATUS)

    @property
    def recomputation(self) -> Recomputation:
        assert self._recomputation is not None, "the judge is not started"
        return self._recomputation

    async def __aenter__(self) -> "Judge":
        session, points = await enrolled(self.bootstrap, self.session_code)
        self._recomputation = Recomputation(session, points, ALLOWANCES)
        await self._open()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._exits.aclose()

    async def _open(self) -> None:
        self._beats = await self._exits.enter_async_context(self._beats)
        self._statuses = await self._exits.enter_async_context(self._statuses)

    @contextlib.asynccontextmanager
    async def suspended(self) -> AsyncIterator[None]:
        """The readers closed while the broker is away: aiokafka retries a lost broker without
        pause, and a busy core of the judge's would be a fault the campaign did not draw."""
        await self._exits.aclose()
        try:
            yield
        finally:
            await self._open()

    async def compare(self, reporting: httpx.AsyncClient) -> tuple[Comparison, float]:
        """The system against the oracle, and the moment the heartbeats were read from: every
        heartbeat answered 202 before it is in what the oracle was fed."""
        # Statuses first, heartbeats last: the oracle has read at least what every status it
        # is compared with was decided on.
        await self.read_statuses()
        served = await _served(reporting, self.session_code)
        read_from = await self.read_heartbeats()
        comparison = comparison_of(self.recomputation.oracle(), self.latest, served)
        if served.get("unknown") is not False:
            # Settled, the monitor is accepting: the desk must know the states again.
            comparison.totals_differences["unknown"] = (False, served.get("unknown"))
        return comparison, read_from

    async def read_statuses(self) -> None:
        prefix = f"{self.session_code}/".encode()
        for record in await self._statuses.read():
            if record.key is None or not record.key.startswith(prefix) or record.value is None:
                continue
            try:
                status = decode(PointStatus, record.value)
            except ContractError:
                continue
            self.latest[status.point_code] = status
            if status.state.value in ("late", "disconnected"):
                since = status.since.timestamp()
                last = status.last_heartbeat_at
                self._silent.append(
                    SilentStatus(
                        status.point_code,
                        status.state.value,
                        since,
                        since if last is None else last.timestamp(),
                        record.timestamp,
                    )
                )

    async def read_heartbeats(self) -> float:
        began = time.time()
        records = await self._beats.read()
        for start in range(0, len(records), 5_000):
            self.recomputation.feed(records[start : start + 5_000])
            await asyncio.sleep(0)  # the load shares this loop: it keeps beating meanwhile
        return began

    def silent_statuses(self) -> list[SilentStatus]:
        """Statuses late or disconnected read since the last call."""
        taken, self._silent = self._silent, []
        return taken

    def false_transitions(self, found: list[SilentStatus]) -> list[SilentStatus]:
        """Those of points the load kept sending for all through the silence the status
        claims, from its last heartbeat to its `since`: no silence of the load's own explains
        them. (Not just the `late_after` before `since`: a disconnection, or a silence that an
        outage of the monitor stretched, reaches further back.) Whether an explained one came
        at the right moment is the oracle's to say, at the checkpoint."""
        kept_sending = self.silences.kept_sending
        return [s for s in found if kept_sending(s.code, s.last_heartbeat, s.since)]

    def new_double_reconnects(self, comparison: Comparison) -> dict[str, int]:
        """Reconnects above the oracle's that were not there at the last look, per point."""
        found = {}
        for code, status in self.latest.items():
            truth = comparison.oracle.truths.get(code)
            excess = status.reconnects - (truth.reconnects if truth is not None else 0)
            if excess > self._excess.get(code, 0):
                found[code] = excess - self._excess.get(code, 0)
            self._excess[code] = max(0, excess)
        return found


async def _served(reporting: httpx.AsyncClient, session_code: str) -> dict[str, Any]:
    try:
        response = await reporting.get(f"/v1/sessions/{session_code}/totals")
    except httpx.TransportError:
        return {}
    if response.status_code != 200:
        return {}
    body = response.json()
    return served_totals(body) | {"unknown": body.get("unknown")}


# --- the course ----------------------------------------------------------------------------------


def course_plan(seed: int, points: int) -> CoursePlan:
    code = f"NEMESIS{seed}"
    return CoursePlan(
        course_code=code,
        session_code=f"{code}-S1",
        points=points,
        never_join=NEVER_JOIN,
        heartbeat_interval_s=INTERVAL_S,
        late_after_s=LATE_AFTER_S,
        disconnected_after_s=DISCONNECTED_AFTER_S,
    )


async def prepare_course(stack: Stack, plan: CoursePlan, seed: int) -> list[Sender]:
    """Register the course, make a few points relay gateways for a share of the provinces
    each, and wait until both ingest instances accept every point and gateway."""
    random.seed(seed)  # register_course samples points and learners with `random`
    registration_url = stack.fleet.url("registration")
    async with httpx.AsyncClient(base_url=registration_url, timeout=60) as registration:
        points = await register_course(registration, plan)
        rng = random.Random(seed)
        for point in points:
            point.learners = rng.randint(5, 60)
        provinces = await _provinces(stack.broker.bootstrap, plan.session_code, len(points))
        senders = await _relayed(registration, points, provinces, rng)
    for ingest in INGESTS:
        async with httpx.AsyncClient(base_url=stack.fleet.url(ingest), timeout=30) as client:
            await _until_known(client, senders, plan.session_code)
    return senders


async def _provinces(bootstrap: str, session_code: str, count: int) -> dict[str, str]:
    _, registered = await eventually(
        lambda: enrolled(bootstrap, session_code), lambda found: len(found[1]) == count, 60
    )
    return {code: point.province or "" for code, point in registered.items()}


async def _relayed(
    registration: httpx.AsyncClient,
    points: list[SimulatedPoint],
    provinces: dict[str, str],
    rng: random.Random,
) -> list[Sender]:
    joining = [p for p in points if not p.never_joins]
    gateways = rng.sample(joining, GATEWAYS)
    everywhere = sorted(set(provinces.values()))
    relays = {gateway.code: everywhere[n::GATEWAYS] for n, gateway in enumerate(gateways)}
    for gateway in gateways:
        answer = await registration.patch(
            f"/v1/points/{gateway.code}",
            json={"relays_for": relays[gateway.code]},
            headers=OPERATOR,
        )
        answer.raise_for_status()
    relay_of = {province: g for g in gateways for province in relays[g.code]}

    def carrier(number: int, point: SimulatedPoint) -> SimulatedPoint | None:
        if point in gateways:
            return point
        return None if number % SINGLE_EVERY == 0 else relay_of[provinces[point.code]]

    now = time.time()
    return [
        Sender(point, carrier(number, point), due=now + rng.uniform(0, INTERVAL_S))
        for number, point in enumerate(points)
    ]


async def _until_known(ingest: httpx.AsyncClient, senders: list[Sender], session: str) -> None:
    """Probe with a session that does not exist: once a token, a gateway and the points it
    relays are read, the refusal turns to "unknown session" and nothing is published. Then
    one real heartbeat proves the session itself is known."""
    relayed: dict[str, list[str]] = {}
    for sender in senders:
        if sender.gateway is not None:
            relayed.setdefault(sender.gateway.code, []).append(sender.point.code)
    speakers = [s.point for s in senders if s.gateway is None]
    gateways = [s.point for s in senders if s.gateway is s.point]
    known: set[str] = set()

    async def knows_all() -> bool:
        for gateway in gateways:
            if gateway.code not in known and await _gateway_known(
                ingest, gateway, relayed[gateway.code]
            ):
                known.update(relayed[gateway.code])
        for point in speakers:
            if point.code not in known and await _point_known(ingest, point):
                known.add(point.code)
        return len(known) == len(senders)

    await eventually(knows_all, bool, patience=90)
    speaker = next(p for p in speakers if not p.never_joins)

    async def session_known() -> int:
        await asyncio.sleep(1)  # the point's own pace: faster would be rate limited
        return (await send_heartbeat(ingest, speaker, session)).status_code

    await eventually(session_known, lambda status: status == 202, patience=60)


PROBE = {
    "session_code": PROBE_SESSION,
    "seq": 0,
    "learners": 0,
    "sent_at": "2026-01-01T00:00:00+00:00",
}


async def _point_known(ingest: httpx.AsyncClient, point: SimulatedPoint) -> bool:
    body = PROBE | {"point_code": point.code}
    answer = await ingest.post(HEARTBEAT_PATH, json=body, headers=bearer(point.token))
    return answer.status_code == 404


async def _gateway_known(
    ingest: httpx.AsyncClient, gateway: SimulatedPoint, relayed: list[str]
) -> bool:
    answer = await ingest.post(
        BATCH_PATH,
        json={"heartbeats": [PROBE | {"point_code": code} for code in relayed]},
        headers=bearer(gateway.token),
    )
    if answer.status_code != 202:
        return False
    return all(r["reason"] == "unknown_session" for r in answer.json()["rejected"])


# --- the campaign --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    seed: int
    minutes: float | None = 30.0  # faults are started until this much time has passed
    faults: int | None = None  # or until this many were injected
    points: int = POINTS
    settle: float = SETTLE_SECONDS
    root: Path | None = None  # the broker's data and the services' logs; a temporary dir if None
    kinds: tuple[str, ...] = KINDS  # fewer, to chase one kind of fault


@dataclass
class Report:
    seed: int
    command: str
    started_at: float
    wall_seconds: float = 0.0
    faults: list[Fault] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    data_dir: str = ""

    @property
    def clean(self) -> bool:
        return not self.errors and all(fault.clean for fault in self.faults)

    def window_of(self, moment: float) -> Fault:
        """The fault whose window holds `moment`: from its injection to the next one's (its
        settle period and checkpoint included)."""
        found = self.faults[0]
        for fault in self.faults:
            if fault.injected_at <= moment:
                found = fault
        return found

    def by_kind(self) -> dict[str, dict[str, int]]:
        rows: dict[str, dict[str, int]] = {}
        for kind in (BASELINE, *KINDS):
            for fault in (f for f in self.faults if f.kind == kind):
                row = rows.setdefault(kind, dict.fromkeys(("injected", *COUNTS), 0))
                row["injected"] += 1
                for name, value in fault.counts.items():
                    row[name] += value
        return rows

    def table(self) -> str:
        head = "| fault kind | injected | false transitions | missing | double reconnects |"
        lines = [
            head + " settled differences |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        total = dict.fromkeys(("injected", *COUNTS), 0)
        for kind, row in self.by_kind().items():
            lines.append(f"| {kind} | " + " | ".join(str(v) for v in row.values()) + " |")
            if kind != BASELINE:
                total = {k: total[k] + row[k] for k in total}
        lines.append("| all faults | " + " | ".join(str(v) for v in total.values()) + " |")
        return "\n".join(lines)

    def markdown(self) -> str:
        minutes, seconds = divmod(round(self.wall_seconds), 60)
        started = datetime.fromtimestamp(self.started_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        injected = sum(1 for f in self.faults if f.kind != BASELINE)
        lines = [
            f"# Nemesis campaign, seed {self.seed}",
            "",
            f"`{self.command}`: {injected} faults, wall time {minutes} min {seconds} s, "
            f"started {started}; {self.load.get('points', POINTS)} points every {INTERVAL_S:g} s "
            f"(late after {LATE_AFTER_S:g} s, disconnected after {DISCONNECTED_AFTER_S:g} s).",
            "",
            self.table(),
            "",
            "| # | at | fault | recovered after | checkpoint | false | missing | double | "
            "differences | errors |",
            "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for f in self.faults:
            lines.append(
                f"| {f.number} | {f.injected_at - self.started_at:.0f} s | {f.describe()} | "
                f"{f.recovered_at - f.injected_at:.1f} s | {f.checked_at - f.settled_at:.1f} s | "
                f"{f.false_transitions} | {f.missing} | {f.double_reconnects} | "
                f"{f.settled_differences} | {'; '.join(e[:120] for e in f.errors)} |"
            )
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "command": self.command,
            "started_at": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "wall_seconds": round(self.wall_seconds, 1),
            "clean": self.clean,
            "liveness": {
                "heartbeat_interval_s": INTERVAL_S,
                "late_after_s": LATE_AFTER_S,
                "disconnected_after_s": DISCONNECTED_AFTER_S,
            },
            "allowances": dataclasses.asdict(ALLOWANCES),
            "by_kind": self.by_kind(),
            "load": self.load,
            "errors": self.errors,
            "data_dir": self.data_dir,
            "faults": [
                dataclasses.asdict(f)
                | {"what": f.describe(), "at_s": round(f.injected_at - self.started_at, 1)}
                for f in self.faults
            ],
        }


class Campaign:
    def __init__(self, options: Options, command: str) -> None:
        self.options = options
        seed = options.seed
        self.root = options.root or Path(tempfile.mkdtemp(prefix=f"nemesis-{seed}-"))
        self.stack = Stack(self.root)
        # The fault schedule depends on the seed alone; the load's draws also on timing.
        self.nemesis = Nemesis(self.stack, random.Random(seed))
        self.kinds = kinds_drawn(self.nemesis.rng, options.kinds)
        self.load_rng = random.Random(f"nemesis-load-{seed}")
        self.plan = course_plan(seed, options.points)
        self.report = Report(seed, command, time.time(), data_dir=str(self.root))
        self.cpu = CpuShare()

    async def run(self) -> Report:
        began = time.monotonic()
        try:
            await asyncio.to_thread(self.stack.start)
            await ensure_topics(self.stack.broker.bootstrap)
            await asyncio.to_thread(self.stack.start_services)
            senders = await prepare_course(self.stack, self.plan, self.options.seed)
            ingests = [self.stack.fleet.url(role) for role in INGESTS]
            trace = self.root / "requests.jsonl"
            load = Load(senders, self.plan.session_code, ingests, INTERVAL_S, trace)
            bootstrap = self.stack.broker.bootstrap
            async with Judge(bootstrap, self.plan.session_code, load.silences) as judge:
                self.nemesis.readers_away = judge.suspended
                async with flowing(load), self._learners_changing(load):
                    await self._faults(load, judge)
                await self._last_look(load, judge)
        except Exception:  # noqa: BLE001 (kept in the report, which then fails the run)
            self.report.errors.append(f"the campaign stopped: {traceback.format_exc()}")
        finally:
            self.report.wall_seconds = time.monotonic() - began
            if not self.report.clean:
                await self._timelines()
            await asyncio.to_thread(self.stack.stop)
            if self.report.clean and self.options.root is None:
                shutil.rmtree(self.root, ignore_errors=True)
        return self.report

    async def _faults(self, load: Load, judge: Judge) -> None:
        baseline = Fault(0, BASELINE)
        await self._window(baseline, load, judge, lambda _: asyncio.sleep(WARM_UP_SECONDS))
        minutes, most = self.options.minutes, self.options.faults
        deadline = None if minutes is None else time.monotonic() + minutes * 60
        for number, kind in enumerate(self.kinds, start=1):
            if most is not None and number > most:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            fault = self.nemesis.draw(number, kind)
            await self._window(fault, load, judge, self.nemesis.inject)

    async def _window(
        self,
        fault: Fault,
        load: Load,
        judge: Judge,
        inject: Callable[[Fault], Awaitable[None]],
    ) -> None:
        """Inject, recover, settle, check: the fault's window, and what it counted."""
        fault.injected_at = time.time()
        self.report.faults.append(fault)
        before = dataclasses.replace(
            load.answers,
            attempts=Counter(load.answers.attempts),
            refused=Counter(load.answers.refused),
        )
        load.answers.longest_gap = load.answers.longest_lag = 0.0
        self.cpu.taken()
        load.plan(self.load_rng, fault.injected_at, fault.active_seconds)
        try:
            await inject(fault)
        except Exception as error:  # noqa: BLE001 (kept in the report, which then fails it)
            fault.errors.append(f"injecting failed: {error!r}")
        fault.recovered_at = time.time()
        await asyncio.sleep(self.options.settle)
        fault.settled_at = time.time()
        await self._checkpoint(fault, load, judge)
        fault.details["answers"] = {
            "sent": load.answers.sent - before.sent,
            "accepted": load.answers.accepted_total - before.accepted_total,
            "attempts": dict(load.answers.attempts - before.attempts),
            "refused_in_batches": dict(load.answers.refused - before.refused),
            "longest_gap_between_attempts_s": round(load.answers.longest_gap, 1),
            "longest_load_loop_lag_s": round(load.answers.longest_lag, 2),
        }
        fault.details["processors"] = list(self.stack.processors)
        fault.details["cpu"] = self.cpu.taken()
        self._progress(fault)

    async def _checkpoint(self, fault: Fault, load: Load, judge: Judge) -> None:
        """With the load's own changes held still, wait for the processor group to catch up,
        then for the system to equal the oracle; count what still differs after the patience.
        """
        load.frozen = True
        began = time.monotonic()
        try:
            try:
                await caught_up(self.stack.broker.bootstrap, CATCH_UP_PATIENCE)
            except AssertionError:
                fault.errors.append(f"the processor group had not caught up {CATCH_UP_PATIENCE} s")
            fault.details["caught_up_s"] = round(time.monotonic() - began, 1)
            comparison, read_from, polls = await self._agreement(judge)
        finally:
            load.frozen = False
        fault.checked_at = time.time()
        fault.details["polls"] = polls
        fault.settled_differences = comparison.differences
        if comparison.differences:
            fault.details["differences"] = _sample(comparison)
        doubled = judge.new_double_reconnects(comparison)
        fault.double_reconnects += sum(doubled.values())
        if doubled:
            fault.details["double_reconnects"] = dict(sorted(doubled.items())[:20])
        self._count_missing(load.answers.take_accepted(before=read_from), judge)
        silent = judge.silent_statuses()
        self._count_false(judge.false_transitions(silent))
        # What the comparison had to agree on: true late and disconnected states, not only
        # points that kept beating.
        fault.details["late_or_disconnected_statuses"] = len(silent)
        truth = comparison.oracle.totals()
        fault.details["truth"] = {state: truth[state] for state in STATES}

    async def _agreement(self, judge: Judge) -> tuple[Comparison, float, int]:
        url = self.stack.fleet.url("reporting")
        async with httpx.AsyncClient(base_url=url, timeout=10, trust_env=False) as reporting:
            deadline = time.monotonic() + AGREEMENT_PATIENCE
            polls = 0
            while True:
                comparison, read_from = await judge.compare(reporting)
                polls += 1
                if comparison.differences == 0 or time.monotonic() > deadline:
                    return comparison, read_from, polls
                await asyncio.sleep(0.5)

    def _count_missing(self, answered: list[tuple[str, int, float]], judge: Judge) -> None:
        on_topic = judge.recomputation.on_topic
        for code, seq, at in answered:
            if (code, seq) not in on_topic:
                fault = self.report.window_of(at)
                fault.missing += 1
                fault.details.setdefault("missing", []).append([code, seq, round(at, 3)])

    def _count_false(self, found: list[SilentStatus]) -> None:
        for status in found:
            fault = self.report.window_of(status.published_at)
            fault.false_transitions += 1
            fault.details.setdefault("false_transitions", []).append(dataclasses.asdict(status))

    async def _last_look(self, load: Load, judge: Judge) -> None:
        """Once the load has stopped and every answer is in: what was accepted is in Kafka."""
        await judge.read_statuses()
        await judge.read_heartbeats()
        self._count_missing(load.answers.take_accepted(before=float("inf")), judge)
        self._count_false(judge.false_transitions(judge.silent_statuses()))
        answers = load.answers
        self.report.load = {
            "points": len(load.senders),
            "relayed": sum(1 for s in load.senders if s.gateway is not None),
            "gateways": GATEWAYS,
            "never_join": len(load.schedule.never),
            "sent": answers.sent,
            "accepted": answers.accepted_total,
            "attempts": dict(answers.attempts),
            "refused_in_batches": dict(answers.refused),
            "silences": sum(len(s) for s in load.schedule.silences.values()),
            "left": len(load.schedule.left_at),
            **load.silences.counts(),
            "records_of_the_session_on_the_topic": judge.recomputation.records,
        }

    @contextlib.asynccontextmanager
    async def _learners_changing(self, load: Load) -> AsyncIterator[None]:
        rng = random.Random(f"nemesis-learners-{self.options.seed}")

        async def change() -> None:
            while True:
                await asyncio.sleep(1)
                load.change_learners(rng)

        task = asyncio.create_task(change())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _timelines(self) -> None:
        """Every point's heartbeats and statuses, for whoever has to find out why; the
        services' logs stay in the data dir."""
        if not self.stack.broker_running():
            return
        with contextlib.suppress(Exception):
            await write_timelines(self.stack.broker.bootstrap, self.plan.session_code)

    def _progress(self, fault: Fault) -> None:
        at = fault.injected_at - self.report.started_at
        counts = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in fault.counts.items())
        errors = f"; errors: {fault.errors}" if fault.errors else ""
        truth = "/".join(str(n) for n in fault.details.get("truth", {}).values())
        print(
            f"[{at:6.0f} s] #{fault.number:<3} {fault.describe()}: {counts} "
            f"(checkpoint {fault.checked_at - fault.settled_at:.1f} s; connected/late/"
            f"disconnected/never {truth}){errors}",
            flush=True,
        )


def _sample(comparison: Comparison) -> dict[str, Any]:
    statuses = sorted(comparison.status_differences.items())
    return {
        "statuses": len(statuses),
        "some_statuses": {code: list(pair) for code, pair in statuses[:20]},
        "totals": {key: list(pair) for key, pair in comparison.totals_differences.items()},
    }


def write_artifacts(report: Report) -> tuple[Path, Path]:
    ARTIFACTS.mkdir(exist_ok=True)
    base = ARTIFACTS / f"nemesis-{report.seed}"
    as_json, as_markdown = base.with_suffix(".json"), base.with_suffix(".md")
    as_json.write_text(json.dumps(report.as_json(), indent=2, ensure_ascii=False) + "\n")
    as_markdown.write_text(report.markdown())
    return as_json, as_markdown


def verdict(report: Report) -> str:
    """Which faults counted something, and where to look."""
    if report.clean:
        return "every count is zero"
    lines = [
        f"#{f.number} {f.describe()}: {f.counts} {f.errors}; machine {f.details.get('cpu')}, "
        f"load's longest loop lag {f.details.get('answers', {}).get('longest_load_loop_lag_s')} s"
        for f in report.faults
        if not f.clean
    ]
    lines += report.errors
    lines.append(
        f"timelines: {ARTIFACTS}/fault-timeline-NEMESIS{report.seed}-S1.txt; "
        f"logs: {report.data_dir}/logs"
    )
    return "\n".join(lines)


async def run_campaign(options: Options, command: str) -> Report:
    return await Campaign(options, command).run()


async def _stoppable(campaign: Awaitable[Report]) -> Report:
    """SIGTERM (`timeout`, a CI runner) ends the campaign as Ctrl-C does: the broker, the proxy
    and the services are stopped, not orphaned."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await campaign


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fault.nemesis", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to inject faults")
    parser.add_argument("--seed", type=int, default=12, help="draws the fault schedule")
    parser.add_argument("--faults", type=int, help="stop after this many faults")
    parser.add_argument("--points", type=int, default=POINTS)
    parser.add_argument("--settle", type=float, default=SETTLE_SECONDS, help="seconds after each")
    parser.add_argument("--data-dir", type=Path, help="keep the broker's data and logs here")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help=f"a comma-separated subset of {','.join(KINDS)}"
    )
    args = parser.parse_args(argv)
    command = " ".join(["uv run python -m tests.fault.nemesis", *(argv or sys.argv[1:])])
    options = Options(
        seed=args.seed,
        minutes=args.minutes,
        faults=args.faults,
        points=args.points,
        settle=args.settle,
        root=args.data_dir,
        kinds=tuple(args.kinds.split(",")),
    )
    report = asyncio.run(_stoppable(run_campaign(options, command)))
    print(report.table())
    paths = write_artifacts(report)
    print(verdict(report))
    print("written:", *paths)
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
