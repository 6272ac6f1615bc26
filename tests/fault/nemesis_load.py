"""The nemesis campaign's load: a course's points heartbeating through two ingest instances, as
points behind a load balancer do, and the load's own schedule of what each point meant to do.

Most points are relayed: their province's gateway sends one `POST /v1/heartbeats/batch` per
tick for those of its points that are due, so a thousand points cost a few requests a second;
the others speak for themselves on `POST /v1/heartbeats`. Each request goes to the ingest
instances in turn and, on a connection error, a 503 or no answer within `CLIENT_TIMEOUT`, once
to the other. A point sends its next heartbeat only after its previous request ended.

Besides the faults the load has true changes of its own, for the oracle to agree with: points
that go really silent for a while and come back, points that leave for good, learner counts
that change. While a checkpoint looks (`frozen`) it starts none of them and holds returns back,
so the true states stop moving within `disconnected_after` and a comparison can be exact.
"""

import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from devstack.silences import Silences
from devstack.simulate import SimulatedPoint

HEARTBEAT_PATH = "/v1/heartbeats"
BATCH_PATH = "/v1/heartbeats/batch"
# How long a point behind a load balancer waits for an answer before it tries the other ingest.
CLIENT_TIMEOUT = 3.0
TICK = 0.5
SILENT_SHARE = 0.03  # of the points beating, per fault, go really silent
SILENCE_SECONDS = (20.0, 60.0)
LEAVE_CHANCE = 0.5  # per fault, that one point leaves for good


@dataclass
class Sender:
    """One point as the load drives it."""

    point: SimulatedPoint
    gateway: SimulatedPoint | None  # whose batches carry its heartbeats; None: the single route
    due: float  # time.time() of its next heartbeat
    busy: bool = False  # its previous request has not ended yet
    silence: tuple[float, float] | None = None  # planned: (start, seconds)
    silent_until: float | None = None
    leaving_at: float | None = None
    left: bool = False
    last_attempt: float | None = None


@dataclass
class Schedule:
    """What the load meant each point to do, in wall time, for the figures (what each room
    did is in `Silences`)."""

    never: set[str] = field(default_factory=set)
    # Per point, [start, end] of each silence; end is inf while it lasts.
    silences: dict[str, list[list[float]]] = field(default_factory=dict)
    left_at: dict[str, float] = field(default_factory=dict)

    def began(self, code: str, at: float) -> None:
        self.silences.setdefault(code, []).append([at, math.inf])

    def ended(self, code: str, at: float) -> None:
        self.silences[code][-1][1] = at


@dataclass
class Answers:
    """What the ingest answered, per request attempt and per heartbeat."""

    attempts: Counter[str] = field(default_factory=Counter)  # "202", "503", "ReadTimeout"...
    refused: Counter[str] = field(default_factory=Counter)  # heartbeats of a batch, by reason
    # (point, seq, answered at) of every heartbeat answered 202, until a checkpoint takes them.
    accepted: list[tuple[str, int, float]] = field(default_factory=list)
    accepted_total: int = 0
    sent: int = 0
    # The longest time between two attempts of a point that meant to beat all along, and the
    # longest the load's event loop woke late: the load's own stalls, told apart from the
    # system's.
    longest_gap: float = 0.0
    longest_lag: float = 0.0

    def take_accepted(self, before: float) -> list[tuple[str, int, float]]:
        taken = [a for a in self.accepted if a[2] < before]
        self.accepted = [a for a in self.accepted if a[2] >= before]
        return taken


class Load:
    def __init__(
        self,
        senders: list[Sender],
        session_code: str,
        ingests: list[str],
        interval: float,
        trace: Path | None = None,
    ) -> None:
        """`trace`: a file to write every request attempt to (JSON lines), for a post-mortem."""
        self.senders = senders
        self.session_code = session_code
        self.ingests = ingests
        self.interval = interval
        self.schedule = Schedule(never={s.point.code for s in senders if s.point.never_joins})
        self.answers = Answers()
        self.silences = Silences(interval)
        self.frozen = False
        self._turn: Iterator[int] = itertools.count()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._clients: list[httpx.AsyncClient] = []
        self._trace = trace.open("a") if trace is not None else None

    # --- the load's own changes ------------------------------------------------------------------

    def beating(self) -> list[Sender]:
        """Points heartbeating now, with nothing planned for them yet."""
        return [
            s
            for s in self.senders
            if not (s.point.never_joins or s.left or s.silent_until is not None)
            and s.silence is None
            and s.leaving_at is None
        ]

    def plan(self, rng: random.Random, start: float, within: float) -> None:
        """Silences (and perhaps a departure) starting at random moments of [start, start +
        within]: the fault's active part, so they are true changes while the system is hurt."""
        candidates = self.beating()
        for sender in rng.sample(candidates, round(SILENT_SHARE * len(candidates))):
            sender.silence = (rng.uniform(start, start + within), rng.uniform(*SILENCE_SECONDS))
        if rng.random() < LEAVE_CHANCE and (remaining := self.beating()):
            rng.choice(remaining).leaving_at = rng.uniform(start, start + within)

    def change_learners(self, rng: random.Random, count: int = 2) -> None:
        if self.frozen:
            return
        for sender in rng.sample(self.beating(), count):
            step = rng.choice((-3, -2, -1, 1, 2, 3))
            sender.point.learners = max(0, sender.point.learners + step)

    # --- sending ---------------------------------------------------------------------------------

    async def run(self) -> None:
        # A client per ingest with few idle connections kept: httpx scans every pooled
        # connection on each request, and a burst of timeouts would leave hundreds behind,
        # making the load, not the system, the bottleneck of a 2-core machine.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=8)
        async with contextlib.AsyncExitStack() as clients:
            self._clients = [
                await clients.enter_async_context(
                    httpx.AsyncClient(base_url=url, limits=limits, trust_env=False)
                )
                for url in self.ingests
            ]
            try:
                while True:
                    woke = time.monotonic()
                    self._tick(time.time())
                    await asyncio.sleep(TICK)
                    lag = time.monotonic() - woke - TICK
                    self.answers.longest_lag = max(self.answers.longest_lag, lag)
            finally:
                # The last answers still count: each 202 must be found in Kafka.
                await asyncio.gather(*self._in_flight, return_exceptions=True)
                if self._trace is not None:
                    self._trace.close()

    def _tick(self, now: float) -> None:
        batches: dict[str, tuple[SimulatedPoint, list[tuple[Sender, dict[str, Any]]]]] = {}
        for sender in self.senders:
            if not self._beats_now(sender, now):
                continue
            body = self._body(sender, now)
            sender.busy = True
            self.silences.speaking(sender.point.code, now, leaving=body["leaving"])
            if sender.gateway is None:
                self._spawn(self._single(sender, body))
            else:
                gateway = sender.gateway
                batches.setdefault(gateway.code, (gateway, []))[1].append((sender, body))
        for gateway, items in batches.values():
            self._spawn(self._batch(gateway, items))

    def _beats_now(self, sender: Sender, now: float) -> bool:
        if sender.point.never_joins or sender.left or sender.busy or now < sender.due:
            return False
        return not self._silent(sender, now)

    def _silent(self, sender: Sender, now: float) -> bool:
        code = sender.point.code
        if sender.silent_until is not None:
            if now < sender.silent_until or self.frozen:
                return True
            sender.silent_until, sender.last_attempt = None, None
            self.schedule.ended(code, now)
            return False
        if sender.silence is not None and now >= sender.silence[0] and not self.frozen:
            sender.silent_until = now + sender.silence[1]
            sender.silence = None
            self.schedule.began(code, now)
            return True
        return False

    def _body(self, sender: Sender, now: float) -> dict[str, Any]:
        point = sender.point
        leaving = sender.leaving_at is not None and now >= sender.leaving_at and not self.frozen
        if leaving:
            sender.left = True
            self.schedule.left_at[point.code] = now
        if sender.last_attempt is not None:
            self.answers.longest_gap = max(self.answers.longest_gap, now - sender.last_attempt)
        sender.last_attempt = now
        sender.due = max(sender.due + self.interval, now + self.interval / 2)
        point.seq += 1
        self.answers.sent += 1
        return {
            "point_code": point.code,
            "session_code": self.session_code,
            "seq": point.seq,
            "sent_at": datetime.now(UTC).isoformat(),
            "learners": point.learners,
            "leaving": leaving,
        }

    def _spawn(self, sending: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(sending)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _single(self, sender: Sender, body: dict[str, Any]) -> None:
        try:
            answer = await self._deliver(HEARTBEAT_PATH, sender.point.token, body)
            if answer is not None and answer.status_code == 202:
                self._accepted(sender.point.code, body["seq"])
        finally:
            sender.busy = False
            self.silences.answered(sender.point.code, time.time())

    async def _batch(
        self, gateway: SimulatedPoint, items: list[tuple[Sender, dict[str, Any]]]
    ) -> None:
        try:
            bodies = {"heartbeats": [body for _, body in items]}
            answer = await self._deliver(BATCH_PATH, gateway.token, bodies)
            if answer is None or answer.status_code != 202:
                return
            refused = {r["index"]: r["reason"] for r in answer.json()["rejected"]}
            for index, (sender, body) in enumerate(items):
                if index in refused:
                    self.answers.refused[refused[index]] += 1
                else:
                    self._accepted(sender.point.code, body["seq"])
        finally:
            ended = time.time()
            for sender, _ in items:
                sender.busy = False
                self.silences.answered(sender.point.code, ended)

    def _accepted(self, code: str, seq: int) -> None:
        self.answers.accepted.append((code, seq, time.time()))
        self.answers.accepted_total += 1

    async def _deliver(self, path: str, token: str, body: Any) -> httpx.Response | None:
        """The answer of the first ingest that gave one other than 503, trying each once."""
        count = len(self._clients)
        first = next(self._turn)
        for number in ((first + k) % count for k in range(count)):
            began = time.time()
            try:
                async with asyncio.timeout(CLIENT_TIMEOUT):
                    answer = await self._clients[number].post(
                        path, json=body, headers={"Authorization": f"Bearer {token}"}
                    )
            except (httpx.TransportError, TimeoutError) as error:
                self._attempted(began, number, body, type(error).__name__)
                continue
            self._attempted(began, number, body, str(answer.status_code))
            if answer.status_code != 503:
                return answer
        return None

    def _attempted(self, began: float, ingest: int, body: Any, outcome: str) -> None:
        self.answers.attempts[outcome] += 1
        if self._trace is None:
            return
        beats = body.get("heartbeats", [body])
        line = {
            "at": round(began, 3),
            "s": round(time.time() - began, 3),
            "ingest": ingest,
            "outcome": outcome,
            "beats": [[b["point_code"], b["seq"]] for b in beats],
        }
        self._trace.write(json.dumps(line) + "\n")


class CpuShare:
    """How busy the machine was, and how much of it was the campaign's own process tree (the
    system under test, the load, the judge): a count on a machine starved by foreign work
    says so in the figures, instead of passing for the system's."""

    def __init__(self) -> None:
        self._me = os.getpid()
        self._began = self._sample()

    def taken(self) -> dict[str, float]:
        """Cores in use since the last call: all of them, and the campaign's; then start over."""
        (wall, busy, ours), (wall0, busy0, ours0) = self._sample(), self._began
        self._began = (wall, busy, ours)
        seconds = max(wall - wall0, 1e-9)
        return {
            "busy_cores": round((busy - busy0) / seconds, 2),
            "campaign_cores": round((ours - ours0) / seconds, 2),
            "foreign_cores": round(max(0.0, (busy - busy0) - (ours - ours0)) / seconds, 2),
        }

    def _sample(self) -> tuple[float, float, float]:
        ticks = os.sysconf("SC_CLK_TCK")
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        idle = int(fields[3]) + int(fields[4])  # idle and iowait
        busy = (sum(int(f) for f in fields[:8]) - idle) / ticks
        return time.monotonic(), busy, self._tree_seconds() / ticks

    def _tree_seconds(self) -> int:
        """CPU ticks of this process and its live descendants; reaped ones count in their
        parent's children's times."""
        stats: dict[int, tuple[int, int]] = {}  # pid -> (parent, ticks)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the command: state, ppid, ... utime stime cutime cstime (14th-17th).
            stats[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
        children: dict[int, list[int]] = {}
        for pid, (parent, _) in stats.items():
            children.setdefault(parent, []).append(pid)
        total, pending = 0, [self._me]
        while pending:
            pid = pending.pop()
            total += stats.get(pid, (0, 0))[1]
            pending += children.get(pid, [])
        return total
