"""The run command's simulated course, end to end: registered through the API, heartbeating
through single and relayed routes, with a province going dark and coming back on the totals,
as one incident while it is dark, and the province alert in a real Prometheus that a real
Alertmanager sends to the province's coordinators and the desk as one message, then resolves."""

import asyncio
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import yaml

from devstack.course import CourseOptions, course_of
from devstack.prometheus import ALERTMANAGER_CONFIG, CONFIG, Prometheus
from devstack.registering import (
    create_course_and_sessions,
    designate_gateways,
    import_points,
    until_attendance_knows,
)
from devstack.simulate import DEV_OPERATOR_TOKEN
from devstack.simulation import SimulatedCourse
from tests.conftest import INCIDENT_HOOK, WEBHOOK_SECRET, Figures
from tests.e2e.conftest import DESK_HOOK, Alerting, province_hook
from tests.e2e.helpers import eventually
from tests.fault.fleet import UNDER_LOAD
from tests.webhooks import Posted, Webhooks

# A load of its own (300 points a second): never beside a fleet under load, whose load would
# share the two cores with it (a two-worker run beside the nemesis had one batch wait past the
# ingest's 5 s publish timeout).
pytestmark = [pytest.mark.e2e, UNDER_LOAD]
ROUTE = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))["route"]
GROUP_WAIT_S = float(ROUTE["group_wait"].removesuffix("s"))
GROUP_INTERVAL_S = float(ROUTE["group_interval"].removesuffix("s"))
EVALUATION = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["global"]["evaluation_interval"]
EVALUATION_S = float(EVALUATION.removesuffix("s"))


async def test_the_simulated_course_shows_a_province_going_dark_and_coming_back(
    clients: dict[str, httpx.AsyncClient],
    alerting: Alerting,
    incident_hooks: Webhooks,
    figures: Figures,
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
    prometheus = alerting.prometheus
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
    resolved_at = seen.alert_cleared or time.time()
    # Alertmanager told the province's coordinators, and the desk, once each, within its
    # group_wait of the alert firing (and an evaluation: Prometheus sends as it evaluates),
    # then that it resolved, within its group_interval; no other province heard of it.
    hook, session = province_hook(province), first.plan.code
    resolved = await eventually(
        lambda: asyncio.sleep(0, _notified(alerting.webhooks.to(hook), session, "resolved")),
        bool,
        patience=GROUP_INTERVAL_S + 30,
    )
    for path in (hook, DESK_HOOK):
        told = alerting.webhooks.to(path)
        assert len(_notified(told, session, "firing")) == 1, told
        assert len(_notified(told, session, "resolved")) == 1, told
        (message,) = _notified(told, session, "firing")
        assert message.body["groupLabels"] == {
            "alertname": "ProvinceLosingPoints",
            "session": session,
            "province": province,
        }, message
        assert len(message.body["alerts"]) == 1, message
    others = [p for p in alerting.webhooks.posted if p.path not in (hook, DESK_HOOK)]
    assert not _notified(others, session, "firing"), others
    (firing,) = _notified(alerting.webhooks.to(hook), session, "firing")
    notified_after = firing.at - min(seen.alert_seen)
    assert notified_after <= GROUP_WAIT_S + EVALUATION_S, notified_after
    resolution_after = resolved[0].at - resolved_at
    assert resolution_after <= GROUP_INTERVAL_S + EVALUATION_S, resolution_after
    # Reporting posted the incident to its webhook as it opened and as it closed, each post
    # signed with the secret and keyed for the receiver to tell a repeat.
    posts = [
        p for p in incident_hooks.to(INCIDENT_HOOK) if p.body["session_code"] == first.plan.code
    ]
    assert [(p.body["event"], p.body["kind"], p.body["group"]) for p in posts] == [
        ("incident.opened", "province", province),
        ("incident.closed", "province", province),
    ], posts
    for post in posts:
        assert _signed_by(WEBHOOK_SECRET, post), post.headers
    assert len({post.headers["idempotency-key"] for post in posts}) == 2
    # Down when it opened: points of the outage, and no other.
    assert set(posts[0].body["points"]) <= first.outage.points, posts[0].body
    assert posts[0].body["points"], posts[0].body
    figures(
        dark_points=dark,
        outage_s=[options.outage_after_s, back_at],
        incident_seen_s=[round(opened, 1), round(closed, 1)],
        alert_firing_s=[round(min(seen.alerts_at), 1), round(max(seen.alerts_at), 1)],
        notified_after_firing_s=round(notified_after, 1),
        resolution_notified_after_s=round(resolution_after, 1),
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
    alert_seen: list[float] = field(default_factory=list)  # the same, as times
    alert_cleared: float | None = None  # when first seen no longer firing


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
                seen.alert_seen.append(time.time())
            elif seen.alert_seen and seen.alert_cleared is None:
                seen.alert_cleared = time.time()
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


def _notified(posted: list[Posted], session: str, status: str) -> list[Posted]:
    """Alertmanager's messages of ProvinceLosingPoints in `session` with `status` (firing,
    resolved)."""
    return [
        p
        for p in posted
        if p.body.get("status") == status
        and p.body.get("groupLabels", {}).get("alertname") == "ProvinceLosingPoints"
        and p.body.get("groupLabels", {}).get("session") == session
    ]


def _signed_by(secret: str, post: Posted) -> bool:
    """Whether the post's signature is the HMAC-SHA256 of `<t>.<body>` with `secret`, as
    reporting.webhooks documents it for receivers."""
    fields = dict(part.split("=", 1) for part in post.headers["x-monitor-signature"].split(","))
    signed = f"{fields['t']}.".encode() + post.raw
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])
