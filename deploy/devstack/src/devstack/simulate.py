"""A simulated course: registers a session and its points, then heartbeats like real points do."""

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from registration.official import as_csv, official_points

DEV_OPERATOR_TOKEN = "dev-operator-token"


@dataclass
class SimulatedPoint:
    code: str
    token: str
    expected_learners: int
    seq: int = 0
    silent_until: float = 0.0  # loop time before which this point sends nothing
    never_joins: bool = False
    learners: int = field(default=0)


@dataclass(frozen=True)
class CoursePlan:
    course_code: str = "DEMO"
    session_code: str = "DEMO-S1"
    points: int = 40
    never_join: int = 3
    heartbeat_interval_s: float = 5.0
    late_after_s: float = 12.0
    disconnected_after_s: float = 30.0


async def register_course(
    registration: httpx.AsyncClient, plan: CoursePlan, operator_token: str = DEV_OPERATOR_TOKEN
) -> list[SimulatedPoint]:
    """Create the course, one session starting now, and the points, through the public API."""
    auth = {"Authorization": f"Bearer {operator_token}"}
    now = datetime.now(UTC)
    course = {
        "code": plan.course_code,
        "title": f"Khoá học {plan.course_code}",
        "organiser": "Demo",
    }
    session = {
        "code": plan.session_code,
        "course_code": plan.course_code,
        "title": "Chuyên đề 1",
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=4)).isoformat(),
        "heartbeat_interval_s": plan.heartbeat_interval_s,
        "late_after_s": plan.late_after_s,
        "disconnected_after_s": plan.disconnected_after_s,
    }
    for path, body in (("/v1/courses", course), ("/v1/sessions", session)):
        (await registration.post(path, json=body, headers=auth)).raise_for_status()
    rows = random.sample(official_points(expected_learners=0), plan.points)
    for number, row in enumerate(rows, start=1):
        row["code"] = f"{plan.course_code}-{row['code']}"
        row["expected_learners"] = str(random.randint(15, 60))
        row["channel"] = "teams" if number % 10 == 0 else "video_bridge"
    response = await registration.post(
        "/v1/points/import",
        params={"course": plan.course_code},
        content=as_csv(rows),
        headers=auth | {"Content-Type": "text/csv"},
    )
    response.raise_for_status()
    expected = {row["code"]: int(row["expected_learners"]) for row in rows}
    points = [
        SimulatedPoint(issued["code"], issued["token"], expected[issued["code"]])
        for issued in response.json()["tokens"]
    ]
    for point in random.sample(points, min(plan.never_join, len(points))):
        point.never_joins = True
    return points


async def send_heartbeat(
    attendance: httpx.AsyncClient,
    point: SimulatedPoint,
    session_code: str,
    extensions: dict[str, Any] | None = None,
) -> httpx.Response:
    """`extensions`: httpx's, per request (a `trace` callback sees it reach the socket)."""
    point.seq += 1
    return await attendance.post(
        "/v1/heartbeats",
        json={
            "point_code": point.code,
            "session_code": session_code,
            "seq": point.seq,
            "sent_at": datetime.now(UTC).isoformat(),
            "learners": point.learners,
        },
        headers={"Authorization": f"Bearer {point.token}"},
        extensions=extensions,
    )
