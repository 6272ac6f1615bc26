"""The run command's simulated course, end to end: registered through the API, heartbeating
through single and relayed routes, with a province going dark and coming back on the totals,
as one incident while it is dark and the province alert in a real Prometheus."""

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from devstack.course import CourseOptions, course_of
from devstack.prometheus import Prometheus
from devstack.registering import (
    create_course_and_sessions,
    designate_gateways,
    import_points,
    until_attendance_knows,
)
from devstack.simulate import DEV_OPERATOR_TOKEN
from devstack.simulation import SimulatedCourse
from tests.conftest import Figures
from tests.e2e.helpers import eventually

pytestmark = pytest.mark.e2e


async def test_the_simulated_course_shows_a_province_going_dark_and_coming_back(
    clients: dict[str, httpx.AsyncClient], prometheus: Prometheus, figures: Figures
) -> None:
    # A 50 s first session: points join in 3 s, a province goes dark from 8 s to 28 s (its
    # points are shown disconnected after 6 s of silence, an incident on its own after 60 s).
    options = CourseOptions(
        course_code=f"SIM{uuid.uuid4().hex[:6].upper()}",
        points=300,
        heartbeat_interval_s=1.0,
        speed=4 * 3600 / 50,
        join_over_s=3.0,
        outage_after_s=8.0,
        outage_for_s=20.0,
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
    seen = await _while_on_air(clients["reporting"], prometheus, simulation, first.plan.code)
    await on_air

    dark = len(first.outage.points)
    province = first.outage.province_code
    back_at = options.outage_after_s + options.outage_for_s
    during = [counts for elapsed, counts in seen.counts if 20 <= elapsed < back_at]
    after = [counts for elapsed, counts in seen.counts if back_at + 5 <= elapsed]
    assert during and max(counts["disconnected"] for counts in during) >= dark, (province, seen)
    assert after and min(counts["disconnected"] for counts in after) < dark, (province, seen)
    # One incident, the province's, seen while it was dark (long before a drop on its own
    # counts) and closed once it was back.
    assert set(seen.incidents.values()) == {("province", province)}, seen.incidents
    assert len(seen.incidents) == 1, seen.incidents
    opened = min(elapsed for elapsed, _ in seen.incidents_at)
    assert opened < back_at, seen.incidents_at
    closed = max(elapsed for elapsed, _ in seen.incidents_at)
    assert closed < back_at + 5, seen.incidents_at
    # The real Prometheus fired the province alert on it, and resolves it now the incident is
    # closed (a scrape and an evaluation later, 5 s each: deploy/prometheus/prometheus.yml).
    assert seen.alerts_at, prometheus.log_tail()
    await eventually(
        lambda: asyncio.to_thread(prometheus.alerts),
        lambda alerts: not _province_alerts(alerts, first.plan.code, province),
        patience=60,
    )
    figures(
        dark_points=dark,
        outage_s=[options.outage_after_s, back_at],
        incident_seen_s=[round(opened, 1), round(closed, 1)],
        alert_firing_s=[round(min(seen.alerts_at), 1), round(max(seen.alerts_at), 1)],
    )
    assert sum(simulation.traffic.refused.values()) == 0, simulation.traffic.last_problem
    assert simulation.traffic.transport_errors == 0, simulation.traffic.last_problem
    assert simulation.traffic.accepted == simulation.traffic.sent

    totals = (await clients["reporting"].get(f"/v1/sessions/{first.plan.code}/totals")).json()
    never = sum(1 for plan in first.points.values() if plan.joins_after_s is None)
    assert totals["registered"] == 300
    assert totals["never_connected"] == never


@dataclass
class Seen:
    """What the desk was shown while the session was on air, by seconds into it."""

    counts: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    incidents: dict[str, tuple[str, str]] = field(default_factory=dict)  # opened_at: kind, group
    incidents_at: list[tuple[float, str]] = field(default_factory=list)
    alerts_at: list[float] = field(default_factory=list)


async def _while_on_air(
    reporting: httpx.AsyncClient, prometheus: Prometheus, simulation: SimulatedCourse, session: str
) -> Seen:
    """The outage province's counts, the session's incidents and its firing province alerts,
    sampled until the session is over."""
    script = simulation.course.sessions[0]
    assert script.outage is not None
    length = (script.plan.ends_at - script.plan.starts_at).total_seconds()
    seen, asked_prometheus = Seen(), 0.0
    while (elapsed := simulation.scene.elapsed_s) < length - 1.5:
        answer = await reporting.get(f"/v1/sessions/{session}/totals")
        if answer.status_code == 200:
            by_province = answer.json()["by_province"]
            if script.outage.province_code in by_province:
                seen.counts.append((elapsed, by_province[script.outage.province_code]))
        answer = await reporting.get(f"/v1/sessions/{session}/incidents")
        if answer.status_code == 200:
            for incident in answer.json():
                seen.incidents[incident["opened_at"]] = (incident["kind"], incident["group"])
                seen.incidents_at.append((elapsed, incident["group"]))
        if time.monotonic() - asked_prometheus >= 1:
            asked_prometheus = time.monotonic()
            alerts = await asyncio.to_thread(prometheus.alerts)
            if _province_alerts(alerts, session, script.outage.province_code):
                seen.alerts_at.append(elapsed)
        await asyncio.sleep(0.25)
    return seen


def _province_alerts(alerts: list[dict[str, Any]], session: str, province: str) -> bool:
    """Whether ProvinceLosingPoints fires for the province in the session."""
    return any(
        a["labels"].get("alertname") == "ProvinceLosingPoints"
        and a["labels"].get("session") == session
        and a["labels"].get("province") == province
        and a["state"] == "firing"
        for a in alerts
    )
