"""The simulated course: every point heartbeating through the course's sessions, over HTTP.

Teams sites and the province halls speak for themselves on `POST /v1/heartbeats`; the communes'
rooms reach us through their province's relay gateway, one `POST /v1/heartbeats/batch` a second
per province, which is how thousands of points fit through one ingest process.
"""

import asyncio
import heapq
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from devstack.course import Course, PointScript, SessionScript
from devstack.silences import Silences

TICK_S = 1.0
BATCH_LIMIT = 1000
DROP_CHANCE = 0.002  # per heartbeat: the room's link flickers for a little while
DROP_SECONDS = (8.0, 45.0)
# Requests waiting for an answer, at most: past it the ingest is saturated, and heartbeats due
# are skipped (and counted) rather than queued without end, as a real room would skip them.
MAX_IN_FLIGHT = 128


@dataclass
class SimulatedRoom:
    code: str
    token: str
    gateway: str | None  # the province point carrying its heartbeats, None when it speaks itself
    seq: int = 0
    learners: int = 0
    drift: int = 0
    silent_until_s: float = 0.0


@dataclass
class Traffic:
    """What the simulator sent and what attendance answered, for the terminal summary."""

    sent: int = 0
    accepted: int = 0
    refused: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    skipped: int = 0  # due while the ingest was saturated
    last_problem: str = ""


@dataclass
class Scene:
    """Where the simulation is now, for the terminal summary."""

    session: SessionScript | None = None
    elapsed_s: float = 0.0
    outage_now: bool = False
    silent_rooms: int = 0


class SimulatedCourse:
    def __init__(
        self,
        course: Course,
        tokens: dict[str, str],
        attendance: httpx.AsyncClient,
        rng: random.Random | None = None,
        *,
        all_relayed: bool = False,
        silences: Silences | None = None,
    ) -> None:
        """`all_relayed`: every room, Teams sites included, goes through its province's gateway
        (the scale benchmark's shape: 100,000 rooms cannot each hold a connection).
        `silences`: told when each room speaks and is answered, and when the loop stalls, the
        yardstick of false transitions."""
        self.course = course
        gateways = course.gateways()
        self.rooms = {
            row["code"]: SimulatedRoom(
                row["code"], tokens[row["code"]], _gateway_of(row, gateways, all_relayed)
            )
            for row in course.rows
        }
        self.attendance = attendance
        self.rng = rng or random.Random(course.options.seed)
        self.traffic = Traffic()
        self.scene = Scene()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(32)
        self.silences = silences

    async def run(self) -> None:
        for script in self.course.sessions:
            await _sleep_until(script.plan.starts_at)
            await self.run_session(script)

    async def run_session(self, script: SessionScript) -> None:
        loop = asyncio.get_running_loop()
        origin = loop.time() - max(0.0, _seconds_since(script.plan.starts_at))
        length_s = (script.plan.ends_at - script.plan.starts_at).total_seconds()
        due = [
            (plan.joins_after_s, code)
            for code, plan in script.points.items()
            if plan.joins_after_s is not None
        ]
        heapq.heapify(due)
        self.scene = Scene(session=script)
        for room in self.rooms.values():
            room.silent_until_s = 0.0
        while (elapsed := loop.time() - origin) < length_s:
            self.scene.elapsed_s = elapsed
            self.scene.outage_now = script.outage is not None and (
                script.outage.starts_after_s
                <= elapsed
                < script.outage.starts_after_s + script.outage.lasts_s
            )
            beats = []
            while due and due[0][0] <= elapsed:
                # Next due a whole number of intervals after this one was due, not an interval
                # after the tick that found it: a room keeps its cadence and its phase however
                # late the loop wakes, and rooms never bunch into one burst.
                at, code = heapq.heappop(due)
                interval = self.course.options.heartbeat_interval_s
                missed = math.floor((elapsed - at) / interval)
                heapq.heappush(due, (at + interval * (missed + 1), code))
                if self._heard(code, script, elapsed):
                    beats.append(self._beat(code, script.points[code], elapsed))
            self.scene.silent_rooms = sum(
                1 for room in self.rooms.values() if room.silent_until_s > elapsed
            )
            self._send(beats)
            slept_at = time.time()
            await asyncio.sleep(TICK_S)
            woke_at = time.time()
            if self.silences is not None and woke_at - slept_at > 2 * TICK_S:
                self.silences.stalled(slept_at + TICK_S, woke_at)
        await self._leave(script)

    def _heard(self, code: str, script: SessionScript, elapsed: float) -> bool:
        room = self.rooms[code]
        if script.outage is not None and script.outage.silences(code, elapsed):
            return False
        if room.silent_until_s > elapsed:
            return False
        if self.rng.random() < DROP_CHANCE:
            room.silent_until_s = elapsed + self.rng.uniform(*DROP_SECONDS)
            return False
        return True

    def _beat(
        self, code: str, plan: PointScript, elapsed: float
    ) -> tuple[SimulatedRoom, dict[str, Any]]:
        room = self.rooms[code]
        room.drift = max(-3, min(3, room.drift + self.rng.choice((-1, 0, 0, 0, 1))))
        room.learners = max(
            0, learners_at(plan, elapsed, self.course.options.join_over_s) + room.drift
        )
        return room, self._body(room, leaving=False)

    def _body(self, room: SimulatedRoom, *, leaving: bool) -> dict[str, Any]:
        room.seq += 1
        assert self.scene.session is not None
        return {
            "point_code": room.code,
            "session_code": self.scene.session.plan.code,
            "seq": room.seq,
            "sent_at": datetime.now(UTC).isoformat(),
            "learners": room.learners,
            "leaving": leaving,
        }

    async def _leave(self, script: SessionScript) -> None:
        """At the end of a session every room still on air says goodbye."""
        joined = [
            (room, self._body(room, leaving=True))
            for room in self.rooms.values()
            if room.seq and room.silent_until_s <= self.scene.elapsed_s
        ]
        self._send(joined)
        await asyncio.gather(*self._in_flight)

    async def settled(self) -> None:
        """Wait for the requests still in flight (after the session was cancelled, say)."""
        await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def abandon(self) -> None:
        """Cancel the requests still in flight and wait until they are gone."""
        for task in list(self._in_flight):
            task.cancel()
        await self.settled()

    def _send(self, beats: list[tuple[SimulatedRoom, dict[str, Any]]]) -> None:
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            self.traffic.skipped += len(beats)
            return
        batches: dict[str, list[dict[str, Any]]] = {}
        for room, body in beats:
            if room.gateway is None:
                self._spawn(self._post_one(room, body))
            else:
                batches.setdefault(room.gateway, []).append(body)
        for gateway, bodies in batches.items():
            for start in range(0, len(bodies), BATCH_LIMIT):
                self._spawn(
                    self._post_batch(self.rooms[gateway], bodies[start : start + BATCH_LIMIT])
                )

    def _spawn(self, sending: Any) -> None:
        task = asyncio.create_task(sending)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _post_one(self, room: SimulatedRoom, body: dict[str, Any]) -> None:
        answer = await self._post("/v1/heartbeats", room.token, body, [body])
        if answer is not None and answer.status_code == 202:
            self.traffic.accepted += 1

    async def _post_batch(self, gateway: SimulatedRoom, bodies: list[dict[str, Any]]) -> None:
        answer = await self._post(
            "/v1/heartbeats/batch", gateway.token, {"heartbeats": bodies}, bodies
        )
        if answer is None or answer.status_code != 202:
            return
        verdict = answer.json()
        self.traffic.accepted += verdict["accepted"]
        for rejected in verdict["rejected"]:
            self.traffic.refused[rejected["status"]] += 1
            self.traffic.last_problem = f"{rejected['point_code']}: {rejected['detail']}"

    async def _post(
        self, path: str, token: str, body: dict[str, Any], beats: list[dict[str, Any]]
    ) -> httpx.Response | None:
        count = len(beats)
        self.traffic.sent += count
        async with self._slots:
            self._speaking(beats)
            try:
                answer = await self.attendance.post(
                    path, json=body, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.TransportError as error:
                # A real room keeps trying at its next beat; so does this one.
                self.traffic.transport_errors += count
                self.traffic.last_problem = f"{path}: {error!r}"
                return None
            finally:
                self._answered(beats)
        if answer.status_code != 202:
            self.traffic.refused[answer.status_code] += count
            self.traffic.last_problem = f"{path}: {answer.status_code} {answer.text[:120]}"
        return answer

    def _speaking(self, beats: list[dict[str, Any]]) -> None:
        if self.silences is not None:
            now = time.time()
            for beat in beats:
                self.silences.speaking(beat["point_code"], now, leaving=beat["leaving"])

    def _answered(self, beats: list[dict[str, Any]]) -> None:
        if self.silences is not None:
            now = time.time()
            for beat in beats:
                self.silences.answered(beat["point_code"], now)


def learners_at(plan: PointScript, elapsed: float, ramp_s: float) -> int:
    """Learners trickle in after the room connects, up to its full count."""
    assert plan.joins_after_s is not None
    progress = min(1.0, (elapsed - plan.joins_after_s) / max(ramp_s, 1.0))
    return round(plan.first_learners + (plan.learners - plan.first_learners) * progress)


def _gateway_of(row: dict[str, str], gateways: dict[str, str], all_relayed: bool) -> str | None:
    if not all_relayed and (row["channel"] != "video_bridge" or row["level"] == "province"):
        return None
    return gateways.get(row["province_code"])


def _seconds_since(moment: datetime) -> float:
    return (datetime.now(UTC) - moment).total_seconds()


async def _sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, -_seconds_since(moment)))
