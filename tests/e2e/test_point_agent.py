"""The point agent against the running services on the real broker: its heartbeats become
totals, the operator's learner count follows, refusals stop it with a plain word, and it rides
out rate limits, a server that cannot store, and a link that goes down and comes back.

The 503 and the broken link are made by a small TCP forwarder between the agent and
attendance (`FaultyLink`); attendance's own 503 when Kafka is down is in test_ingest.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.ports import free_port
from devstack.services import ServiceProcess
from devstack.simulate import DEV_OPERATOR_TOKEN, CoursePlan, SimulatedPoint, send_heartbeat
from point_agent.agent import Attempt, Console, Settings, run
from point_agent.decisions import Accepted, ExitCode, LinkDown, Throttled, Unavailable
from point_agent.learners import FileCount, LearnerSource
from tests.e2e.helpers import eventually
from tests.e2e.test_thin_path import fresh_plan, registered_points, totals

pytestmark = pytest.mark.e2e
OPERATOR = {"Authorization": f"Bearer {DEV_OPERATOR_TOKEN}"}
# asyncio may wake a sleeper up to its clock's resolution early; nothing else is tolerated.
CLOCK_SLACK_S = 0.05


def agent_command() -> str:
    """The console script `pip install` puts next to the interpreter."""
    found = shutil.which("point-agent", path=str(Path(sys.executable).parent))
    assert found, "point-agent is not installed in this environment"
    return found


def agent_env(point: SimulatedPoint, plan: CoursePlan, server: str) -> dict[str, str]:
    return os.environ | {
        "POINT_AGENT_TOKEN": point.token,
        "POINT_AGENT_POINT": point.code,
        "POINT_AGENT_SESSION": plan.session_code,
        "POINT_AGENT_SERVER": server,
    }


async def start_agent(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        agent_command(),
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finished(agent: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of an agent left to stop on its own."""
    out, err = await asyncio.wait_for(agent.communicate(), timeout=60)
    assert agent.returncode is not None
    return agent.returncode, out.decode(), err.decode()


async def interrupted(
    agent: asyncio.subprocess.Process, meanwhile: Callable[[], Awaitable[None]]
) -> tuple[int, str, str]:
    """Ctrl-C to `agent` once `meanwhile` is done: its exit code, stdout and stderr."""
    try:
        await meanwhile()
        agent.send_signal(signal.SIGINT)
        return await finished(agent)
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()


def patient_plan(points: int) -> CoursePlan:
    """A session whose liveness timeouts outlast a test: a point seen disconnected in it
    said it was leaving."""
    return replace(fresh_plan(points), late_after_s=60.0, disconnected_after_s=120.0)


def point_totals(seen: dict[str, Any]) -> tuple[Any, Any, Any]:
    return seen.get("connected"), seen.get("learners_present"), seen.get("disconnected")


async def test_a_heartbeat_accepted_tells_the_session_interval(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    plan = fresh_plan(points=1)
    (point,) = await registered_points(clients, plan)
    accepted = await send_heartbeat(clients["attendance"], point, plan.session_code)
    assert accepted.status_code == 202
    assert accepted.json()["heartbeat_interval_s"] == plan.heartbeat_interval_s


async def test_the_installed_command_reports_the_room_until_ctrl_c(
    clients: dict[str, httpx.AsyncClient], stack: dict[str, ServiceProcess], tmp_path: Path
) -> None:
    plan = patient_plan(points=2)
    point, _ = await registered_points(clients, plan)
    learners = tmp_path / "learners.txt"
    learners.write_text("17\n")
    env = agent_env(point, plan, stack["attendance"].url)
    agent = await start_agent(env, "--learners-file", str(learners))

    async def the_room_changes() -> None:
        # The point registered_points made heard is this one: one connected, the agent's count.
        await eventually(lambda: totals(clients, plan), lambda t: point_totals(t)[:2] == (1, 17))
        learners.write_text("23\n")  # the room's operator edits the file
        await eventually(lambda: totals(clients, plan), lambda t: point_totals(t)[:2] == (1, 23))

    code, out, err = await interrupted(agent, the_room_changes)

    assert code == ExitCode.STOPPED, err
    # The leaving heartbeat: disconnected now, long before the session's timeout.
    await eventually(lambda: totals(clients, plan), lambda t: point_totals(t) == (0, 0, 1))
    assert f"connected: point {point.code}" in out
    assert "a heartbeat every 1 s" in out  # the session's interval, learnt from the server
    assert "learners: 23" in out
    assert f"left session {plan.session_code}" in out
    assert point.token not in out + err


async def test_an_agent_given_no_session_is_heard_in_the_one_on_air(
    clients: dict[str, httpx.AsyncClient], stack: dict[str, ServiceProcess]
) -> None:
    plan = patient_plan(points=2)
    point, _ = await registered_points(clients, plan)
    env = agent_env(point, plan, stack["attendance"].url)
    del env["POINT_AGENT_SESSION"]
    agent = await start_agent(env, "--learners", "7")

    async def heard() -> None:
        await eventually(lambda: totals(clients, plan), lambda t: point_totals(t)[:2] == (1, 7))

    code, out, err = await interrupted(agent, heard)
    assert code == ExitCode.STOPPED, err
    assert f"heard in session {plan.session_code} (7 learners)" in out
    assert f"left session {plan.session_code}" in out
    await eventually(lambda: totals(clients, plan), lambda t: point_totals(t) == (0, 0, 1))


async def test_leaving_on_its_own_disconnects_the_point_at_once(
    clients: dict[str, httpx.AsyncClient], stack: dict[str, ServiceProcess]
) -> None:
    plan = patient_plan(points=1)
    (point,) = await registered_points(clients, plan)
    await eventually(lambda: totals(clients, plan), lambda t: point_totals(t)[0] == 1)
    agent = await start_agent(agent_env(point, plan, stack["attendance"].url), "--leaving")
    code, out, err = await finished(agent)
    assert code == ExitCode.STOPPED, err
    assert f"left session {plan.session_code}" in out
    await eventually(lambda: totals(clients, plan), lambda t: point_totals(t) == (0, 0, 1))


async def test_every_refusal_stops_the_command_with_a_plain_reason(
    clients: dict[str, httpx.AsyncClient], stack: dict[str, ServiceProcess]
) -> None:
    plan, elsewhere = fresh_plan(points=3), fresh_plan(points=1)
    first, second, revoked = await registered_points(clients, plan)
    (stranger,) = await registered_points(clients, elsewhere)
    server = stack["attendance"].url

    deleted = await clients["registration"].delete(
        f"/v1/points/{revoked.code}/token", headers=OPERATOR
    )
    assert deleted.status_code == 204

    async def revoked_token_refused() -> int:
        return (await send_heartbeat(clients["attendance"], revoked, plan.session_code)).status_code

    await eventually(revoked_token_refused, lambda status: status == 401)

    cases = {
        "unknown token": agent_env(first, plan, server) | {"POINT_AGENT_TOKEN": "pt_no-such"},
        "another point's token": agent_env(first, plan, server)
        | {"POINT_AGENT_TOKEN": second.token},
        "revoked token": agent_env(revoked, plan, server),
        "not enrolled": agent_env(stranger, plan, server),
        "unknown session": agent_env(first, plan, server) | {"POINT_AGENT_SESSION": "NO-SUCH"},
    }
    agents = [await start_agent(env, "--learners", "5") for env in cases.values()]
    outcomes = dict(zip(cases, await asyncio.gather(*map(finished, agents)), strict=True))

    assert {case: code for case, (code, _, _) in outcomes.items()} == dict.fromkeys(
        cases, ExitCode.REFUSED
    )
    reasons = {case: err.strip().splitlines()[-1] for case, (_, _, err) in outcomes.items()}
    expected = {
        "unknown token": "the token was refused",
        "another point's token": "the token belongs to another point",
        "revoked token": "the token was refused",
        "not enrolled": f"point {stranger.code} may not join session",
        "unknown session": "session NO-SUCH is unknown",
    }
    for case, words in expected.items():
        assert f"stopped: {words}" in reasons[case], (case, reasons[case])
    for token in (first.token, second.token, revoked.token, stranger.token):
        assert all(token not in out + err for _, out, err in outcomes.values())


@dataclass
class RunningAgent:
    attempts: list[Attempt] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def outcomes(self) -> list[type]:
        return [type(attempt.outcome) for attempt in self.attempts]

    async def seen(self, condition: Any) -> None:
        async def attempts() -> list[Attempt]:
            return list(self.attempts)

        await eventually(attempts, condition)


@contextlib.asynccontextmanager
async def agent_running(settings: Settings, learners: LearnerSource) -> AsyncIterator[RunningAgent]:
    """The agent in this process, stopped (and found to stop cleanly) on the way out."""
    agent = RunningAgent()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run(
            settings,
            learners,
            stop,
            Console(agent.lines.append, agent.lines.append),
            on_attempt=agent.attempts.append,
        )
    )
    try:
        yield agent
    finally:
        stop.set()
        code = await asyncio.wait_for(task, timeout=30)
    assert code == ExitCode.STOPPED, agent.lines


def settings_for(point: SimulatedPoint, plan: CoursePlan, server: str, **changes: Any) -> Settings:
    return Settings(
        server=server,
        token=point.token,
        point_code=point.code,
        session_code=plan.session_code,
        **changes,
    )


def waits_after(
    agent: RunningAgent, kind: type[Throttled] | type[Unavailable]
) -> list[tuple[float, float]]:
    """For each attempt answered `kind` with a Retry-After: (asked, waited until the next
    answer). The next answer comes after the wait and a round trip, so it bounds it from
    above: the agent must never have come back early. Not the leaving heartbeat: a stop cuts
    any wait short."""
    waits = []
    for attempt, later in zip(agent.attempts, agent.attempts[1:], strict=False):
        outcome = attempt.outcome
        if later.beat.leaving:
            continue
        if isinstance(outcome, kind) and outcome.retry_after_s is not None:
            waits.append((outcome.retry_after_s, later.answered_at - attempt.answered_at))
    return waits


async def test_a_flooding_agent_waits_as_long_as_the_429_says_and_carries_on(
    clients: dict[str, httpx.AsyncClient], stack: dict[str, ServiceProcess], tmp_path: Path
) -> None:
    plan = fresh_plan(points=1)
    (point,) = await registered_points(clients, plan)
    learners = tmp_path / "learners.txt"
    learners.write_text("9")
    # Twenty a second against a limit of one a second after a burst of ten.
    settings = settings_for(point, plan, stack["attendance"].url, fixed_interval_s=0.05)
    async with agent_running(settings, FileCount(learners)) as agent:

        def throttled_twice_and_heard_between(attempts: list[Attempt]) -> bool:
            kinds = [type(attempt.outcome) for attempt in attempts]
            if kinds.count(Throttled) < 2:
                return False
            return Accepted in kinds[kinds.index(Throttled) :]

        await agent.seen(throttled_twice_and_heard_between)
        await eventually(lambda: totals(clients, plan), lambda t: point_totals(t)[:2] == (1, 9))
    waits = waits_after(agent, Throttled)
    assert waits and all(asked >= 1 for asked, _ in waits)
    assert all(waited >= asked - CLOCK_SLACK_S for asked, waited in waits), waits
    assert any("slow down (429)" in line for line in agent.lines)


class FaultyLink:
    """A TCP forwarder to attendance that can answer 503 itself, or be cut and restored."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.busy = False
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def down(self) -> None:
        """Refuse new connections and cut the live ones, as a dead uplink would."""
        if self._server is not None:
            self._server.close()
        self._cut()

    def answer_busy(self, busy: bool) -> None:
        """From the next connection on, answer 503 (or stop); a kept-alive connection would
        still reach attendance, so the live ones are cut."""
        self.busy = busy
        self._cut()

    def _cut(self) -> None:
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            if self.busy:
                await self._answer_busy(reader, writer)
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
            self._open.add(upstream_writer)
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except OSError:
            pass
        finally:
            self._open.discard(writer)
            writer.transport.abort()

    @staticmethod
    async def _answer_busy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        await reader.readexactly(length)
        body = b'{"detail":"heartbeats not stored: Kafka unavailable, retry"}'
        writer.write(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    except OSError:
        pass
    finally:
        sink.transport.abort()


@pytest.fixture
async def faulty_link(stack: dict[str, ServiceProcess]) -> AsyncIterator[FaultyLink]:
    link = FaultyLink(stack["attendance"].port)
    await link.up()
    yield link
    await link.down()


def at_least(count: int, kind: type) -> Any:
    return lambda attempts: [type(a.outcome) for a in attempts].count(kind) >= count


async def test_the_agent_rides_out_a_busy_server_and_a_dead_link_then_sends_the_latest_count(
    clients: dict[str, httpx.AsyncClient], faulty_link: FaultyLink, tmp_path: Path
) -> None:
    plan = fresh_plan(points=1)
    (point,) = await registered_points(clients, plan)
    learners = tmp_path / "learners.txt"
    learners.write_text("10")
    settings = settings_for(point, plan, faulty_link.url, timeout_s=3.0)
    async with agent_running(settings, FileCount(learners)) as agent:
        await eventually(lambda: totals(clients, plan), lambda t: point_totals(t)[:2] == (1, 10))

        faulty_link.answer_busy(True)
        await agent.seen(at_least(2, Unavailable))
        faulty_link.answer_busy(False)

        await faulty_link.down()
        await agent.seen(at_least(2, LinkDown))
        learners.write_text("25")  # the room fills while the link is down
        await agent.seen(
            lambda attempts: any(
                isinstance(a.outcome, LinkDown) and a.beat.learners == 25 for a in attempts
            )
        )
        await faulty_link.up()
        await eventually(lambda: totals(clients, plan), lambda t: point_totals(t)[:2] == (1, 25))

    waits = waits_after(agent, Unavailable)
    assert waits and all(waited >= asked - CLOCK_SLACK_S for asked, waited in waits), waits
    kinds = agent.outcomes()
    back = next(i for i, kind in enumerate(kinds) if kind is Accepted and kinds[i - 1] is LinkDown)
    assert agent.attempts[back].beat.learners == 25
    assert any("(503)" in line for line in agent.lines)
    assert any("link down since" in line for line in agent.lines)
    assert any(line.startswith("heard again after") for line in agent.lines)
    seqs = [attempt.beat.seq for attempt in agent.attempts]
    assert seqs == sorted(set(seqs))
