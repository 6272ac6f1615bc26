"""The run command's simulated course, end to end: registered through the API, heartbeating
through single and relayed routes, with a province going dark and coming back on the totals."""

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from devstack.course import CourseOptions, course_of
from devstack.registering import (
    create_course_and_sessions,
    designate_gateways,
    import_points,
    until_attendance_knows,
)
from devstack.simulate import DEV_OPERATOR_TOKEN
from devstack.simulation import SimulatedCourse

pytestmark = pytest.mark.e2e


async def test_the_simulated_course_shows_a_province_going_dark_and_coming_back(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    # A 30 s first session: points join in 3 s, a province goes dark from 8 s to 18 s.
    options = CourseOptions(
        course_code=f"SIM{uuid.uuid4().hex[:6].upper()}",
        points=300,
        heartbeat_interval_s=1.0,
        speed=4 * 3600 / 30,
        join_over_s=3.0,
        outage_after_s=8.0,
        outage_for_s=10.0,
    )
    course = course_of(options, datetime.now(UTC))
    registration, attendance = clients["registration"], clients["attendance"]
    await create_course_and_sessions(registration, course, DEV_OPERATOR_TOKEN)
    tokens = await import_points(registration, course, DEV_OPERATOR_TOKEN, lambda _: None)
    await designate_gateways(registration, course, DEV_OPERATOR_TOKEN, lambda _: None)
    await until_attendance_knows(attendance, course, tokens)

    first = course.sessions[0]
    assert first.outage is not None
    simulation = SimulatedCourse(course, tokens, attendance)
    on_air = asyncio.create_task(simulation.run_session(first))
    seen = await _province_while_on_air(clients["reporting"], simulation, first.plan.code)
    await on_air

    dark = len(first.outage.points)
    province = first.outage.province_code
    during = [counts for elapsed, counts in seen if 14 <= elapsed < 18]
    after = [counts for elapsed, counts in seen if 23 <= elapsed < 28]
    assert during and max(counts["disconnected"] for counts in during) >= dark, (province, seen)
    assert after and min(counts["disconnected"] for counts in after) < dark, (province, seen)
    assert sum(simulation.traffic.refused.values()) == 0, simulation.traffic.last_problem
    assert simulation.traffic.transport_errors == 0, simulation.traffic.last_problem
    assert simulation.traffic.accepted == simulation.traffic.sent

    totals = (await clients["reporting"].get(f"/v1/sessions/{first.plan.code}/totals")).json()
    never = sum(1 for plan in first.points.values() if plan.joins_after_s is None)
    assert totals["registered"] == 300
    assert totals["never_connected"] == never


async def _province_while_on_air(
    reporting: httpx.AsyncClient, simulation: SimulatedCourse, session: str
) -> list[tuple[float, dict[str, int]]]:
    """The outage province's counts, sampled until the session is over."""
    script = simulation.course.sessions[0]
    assert script.outage is not None
    length = (script.plan.ends_at - script.plan.starts_at).total_seconds()
    seen = []
    while simulation.scene.elapsed_s < length - 1.5:
        answer = await reporting.get(f"/v1/sessions/{session}/totals")
        if answer.status_code == 200:
            by_province = answer.json()["by_province"]
            if script.outage.province_code in by_province:
                seen.append((simulation.scene.elapsed_s, by_province[script.outage.province_code]))
        await asyncio.sleep(0.25)
    return seen
