"""Registration -> attendance -> reporting, as separate processes on the real broker, over HTTP."""

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from devstack.registering import until_attendance_knows_points
from devstack.simulate import CoursePlan, SimulatedPoint, register_course, send_heartbeat
from tests.e2e.helpers import eventually

pytestmark = pytest.mark.e2e


def fresh_plan(points: int) -> CoursePlan:
    code = "T" + uuid.uuid4().hex[:8].upper()
    return CoursePlan(
        course_code=code,
        session_code=f"{code}-S1",
        points=points,
        never_join=0,
        heartbeat_interval_s=1.0,
        late_after_s=2.0,
        disconnected_after_s=4.0,
    )


async def registered_points(
    clients: dict[str, httpx.AsyncClient], plan: CoursePlan
) -> list[SimulatedPoint]:
    points = await register_course(clients["registration"], plan)
    # Attendance learns tokens from registry.points: wait until it knows every point, then until
    # it accepts the first one's heartbeats (it knows the session too).
    await until_attendance_knows_points(
        clients["attendance"], [p.code for p in points], {p.code: p.token for p in points}
    )

    async def first_beat() -> int:
        return (
            await send_heartbeat(clients["attendance"], points[0], plan.session_code)
        ).status_code

    await eventually(first_beat, lambda status: status == 202)
    return points


async def totals(clients: dict[str, httpx.AsyncClient], plan: CoursePlan) -> dict[str, Any]:
    response = await clients["reporting"].get(f"/v1/sessions/{plan.session_code}/totals")
    return response.json() if response.status_code == 200 else {"status": response.status_code}


async def test_heartbeats_become_totals_and_silence_becomes_disconnected(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    plan = fresh_plan(points=3)
    steady, dropping, absent = await registered_points(clients, plan)
    steady.learners, dropping.learners = 21, 34

    for point in (steady, dropping):
        assert (
            await send_heartbeat(clients["attendance"], point, plan.session_code)
        ).status_code == 202
    # Both counts: the two points' statuses are on different partitions, so `steady`'s new
    # learner count may land after `dropping` has made it two connected.
    seen = await eventually(
        lambda: totals(clients, plan),
        lambda t: (t.get("connected"), t.get("learners_present")) == (2, 55),
    )
    expected = steady.expected_learners + dropping.expected_learners + absent.expected_learners
    overall = {
        k: seen[k]
        for k in (
            "event_type",
            "session_code",
            "registered",
            "connected",
            "late",
            "disconnected",
            "never_connected",
            "learners_present",
            "learners_expected",
            "peak_connected",
        )
    }
    assert overall == {
        "event_type": "reporting.totals",
        "session_code": plan.session_code,
        "registered": 3,
        "connected": 2,
        "late": 0,
        "disconnected": 0,
        "never_connected": 1,
        "learners_present": 55,
        "learners_expected": expected,
        "peak_connected": 2,
    }
    assert sum(c["registered"] for c in seen["by_province"].values()) == 3

    async def keep_steady_alive() -> None:
        while True:
            await send_heartbeat(clients["attendance"], steady, plan.session_code)
            await asyncio.sleep(plan.heartbeat_interval_s)

    alive = asyncio.create_task(keep_steady_alive())
    try:
        seen = await eventually(lambda: totals(clients, plan), lambda t: t.get("disconnected") == 1)
    finally:
        alive.cancel()
    assert (seen["connected"], seen["late"], seen["never_connected"]) == (1, 0, 1)
    assert seen["learners_present"] == 21


async def test_operator_routes_refuse_missing_and_wrong_tokens(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    registration = clients["registration"]
    course = {"code": "NEVER", "title": "x"}
    assert (await registration.post("/v1/courses", json=course)).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await registration.post("/v1/courses", json=course, headers=wrong)).status_code == 403
