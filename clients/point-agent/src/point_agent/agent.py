"""The agent's loop: read the learner count, send a heartbeat, decide, wait; and on the way
out, tell the server the point is leaving.

Usable in-process: `run` takes a stop event and returns the exit code, the command line only
wires it to options, signals and the terminal.
"""

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from point_agent import __version__
from point_agent.decisions import (
    DEFAULT_INTERVAL_S,
    Accepted,
    Decision,
    ExitCode,
    Outcome,
    Standing,
    Stop,
    Wait,
    decide,
)
from point_agent.heartbeats import Beat, SequenceNumbers, send
from point_agent.learners import LearnerSource
from point_agent.messages import Narrator

LEAVING_ATTEMPTS = 3  # for --leaving on its own; on Ctrl-C one try, the operator is going


@dataclass(frozen=True)
class Settings:
    server: str
    token: str = field(repr=False)  # never in a log line or a traceback
    point_code: str
    session_code: str | None  # None: the server files heartbeats under the session on air
    fixed_interval_s: float | None = None
    timeout_s: float = 10.0
    verbose: bool = False


@dataclass(frozen=True)
class Console:
    """Where lines for the operator go: news, and the reason the agent stops."""

    say: Callable[[str], None]
    complain: Callable[[str], None]


@dataclass(frozen=True)
class Attempt:
    """One heartbeat sent and what came of it, for whoever watches the agent closely."""

    beat: Beat
    outcome: Outcome
    decision: Decision
    answered_at: float  # time.monotonic()


def client_for(settings: Settings, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=settings.server,
        headers={
            "Authorization": f"Bearer {settings.token}",
            "User-Agent": f"point-agent/{__version__}",
        },
        timeout=settings.timeout_s,
        transport=transport,
    )


class _Heartbeats:
    """One agent's sending side: the sequence, the last round trip, the standing."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        console: Console,
        jitter: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.http = http
        self.console = console
        self.jitter = jitter
        self.seqs = SequenceNumbers()
        self.narrator = Narrator(settings.point_code, settings.session_code)
        self.standing = Standing(interval_s=settings.fixed_interval_s or DEFAULT_INTERVAL_S)
        self.rtt_ms: float | None = None

    def beat(self, learners: int, leaving: bool = False) -> Beat:
        return Beat(
            point_code=self.settings.point_code,
            session_code=self.settings.session_code,
            seq=self.seqs.next(),
            learners=learners,
            leaving=leaving,
            rtt_ms=self.rtt_ms,
        )

    async def attempt(self, beat: Beat) -> Attempt:
        outcome, rtt_ms = await send(self.http, beat)
        self.rtt_ms = rtt_ms if rtt_ms is not None else self.rtt_ms
        decision, self.standing = decide(
            outcome, self.standing, self.jitter(), self.settings.fixed_interval_s
        )
        attempt = Attempt(beat, outcome, decision, time.monotonic())
        self._tell(attempt)
        return attempt

    def _tell(self, attempt: Attempt) -> None:
        beat, outcome, decision = attempt.beat, attempt.outcome, attempt.decision
        if self.settings.verbose:
            self.console.say(_beat_line(beat, outcome, decision))
        line = self.narrator.after(outcome, decision, beat.learners, datetime.now(UTC))
        if line is not None:
            (self.console.complain if isinstance(decision, Stop) else self.console.say)(line)


async def run(
    settings: Settings,
    learners: LearnerSource,
    stop: asyncio.Event,
    console: Console,
    *,
    on_attempt: Callable[[Attempt], None] = lambda attempt: None,
    transport: httpx.AsyncBaseTransport | None = None,
    jitter: Callable[[], float] = random.random,
) -> ExitCode:
    """Send heartbeats until `stop` is set (then say the point leaves) or the server refuses
    this point for good."""
    async with client_for(settings, transport) as http:
        sender = _Heartbeats(settings, http, console, jitter)
        while not stop.is_set():
            reading = learners.read()
            if (line := sender.narrator.learners(reading.count, reading.problem)) is not None:
                console.say(line)
            started = time.monotonic()
            # Raced against the stop: Ctrl-C must not wait for a request hanging on a bad link.
            attempt = await _unless_stopped(sender.attempt(sender.beat(reading.count)), stop)
            if attempt is None:
                break
            on_attempt(attempt)
            match attempt.decision:
                case Stop(code=code):
                    return code
                case Wait(seconds=seconds, paced=paced):
                    elapsed = time.monotonic() - started if paced else 0.0
                    await _sleep_unless_stopped(seconds - elapsed, stop)
        await _leave(sender, learners, attempts=1, on_attempt=on_attempt)
        return ExitCode.STOPPED


async def leave(
    settings: Settings,
    learners: LearnerSource,
    console: Console,
    *,
    on_attempt: Callable[[Attempt], None] = lambda attempt: None,
    transport: httpx.AsyncBaseTransport | None = None,
    jitter: Callable[[], float] = random.random,
) -> ExitCode:
    """Only tell the server the point is leaving (`--leaving`), retrying a little."""
    async with client_for(settings, transport) as http:
        sender = _Heartbeats(settings, http, console, jitter)
        attempt = await _leave(sender, learners, LEAVING_ATTEMPTS, on_attempt)
        if isinstance(attempt.decision, Stop):
            return attempt.decision.code
        return ExitCode.STOPPED if isinstance(attempt.outcome, Accepted) else ExitCode.FAILED


async def _leave(
    sender: _Heartbeats,
    learners: LearnerSource,
    attempts: int,
    on_attempt: Callable[[Attempt], None],
) -> Attempt:
    for number in range(1, attempts + 1):
        attempt = await sender.attempt(sender.beat(learners.read().count, leaving=True))
        on_attempt(attempt)
        if isinstance(attempt.outcome, Accepted):
            left = attempt.outcome.session_code or sender.settings.session_code
            sender.console.say(f"left session {left}: the desk sees this point disconnected now")
            return attempt
        if isinstance(attempt.decision, Stop):
            return attempt
        if number < attempts and isinstance(attempt.decision, Wait):
            await asyncio.sleep(attempt.decision.seconds)
    sender.console.complain(
        "could not tell the server this point is leaving: the desk will see it disconnected"
        " once the session's timeout passes"
    )
    return attempt


async def _unless_stopped(
    work: Coroutine[Any, Any, Attempt], stop: asyncio.Event
) -> Attempt | None:
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    return None


async def _sleep_unless_stopped(seconds: float, stop: asyncio.Event) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _beat_line(beat: Beat, outcome: Outcome, decision: Decision) -> str:
    if beat.leaving:
        then = "the last one"
    elif isinstance(decision, Stop):
        then = "stopping"
    else:
        then = f"next in {decision.seconds:.2f} s"
    leaving = " leaving" if beat.leaving else ""
    return f"beat seq={beat.seq} learners={beat.learners}{leaving}: {outcome}, {then}"
