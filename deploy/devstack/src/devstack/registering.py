"""Preparing a course the way an operator does, through registration's public API."""

import asyncio
import time
from collections.abc import Callable, Sequence

import httpx

from contracts.topics import REGISTRY_POINTS
from devstack.course import Course
from registration.official import as_csv
from servicekit.kafka import key_partition

IMPORT_CHUNK = 1000
PROBE_SESSION = "NO-SUCH-SESSION"

Advance = Callable[[int], None]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_course_and_sessions(
    registration: httpx.AsyncClient, course: Course, operator_token: str
) -> None:
    code = course.options.course_code
    body = {
        "code": code,
        "title": "Bồi dưỡng cán bộ chính quyền địa phương hai cấp",
        "organiser": "Học viện",
    }
    (
        await registration.post("/v1/courses", json=body, headers=bearer(operator_token))
    ).raise_for_status()
    for script in course.sessions:
        request = script.plan.as_request(code, course.options)
        answer = await registration.post(
            "/v1/sessions", json=request, headers=bearer(operator_token)
        )
        answer.raise_for_status()


async def import_points(
    registration: httpx.AsyncClient, course: Course, operator_token: str, advance: Advance
) -> dict[str, str]:
    """Every point, enrolled in the course, a thousand rows a request; the tokens by point."""
    tokens: dict[str, str] = {}
    for start in range(0, len(course.rows), IMPORT_CHUNK):
        chunk = course.rows[start : start + IMPORT_CHUNK]
        answer = await registration.post(
            "/v1/points/import",
            params={"course": course.options.course_code},
            content=as_csv(chunk),
            headers=bearer(operator_token) | {"Content-Type": "text/csv"},
        )
        answer.raise_for_status()
        tokens |= {issued["code"]: issued["token"] for issued in answer.json()["tokens"]}
        advance(len(chunk))
    return tokens


async def designate_gateways(
    registration: httpx.AsyncClient, course: Course, operator_token: str, advance: Advance
) -> None:
    """Each province hall relays the heartbeats of its province's rooms."""
    for province, point in course.gateways().items():
        answer = await registration.patch(
            f"/v1/points/{point}", json={"relays_for": [province]}, headers=bearer(operator_token)
        )
        answer.raise_for_status()
        advance(1)


async def until_attendance_knows(
    attendance: httpx.AsyncClient, course: Course, tokens: dict[str, str], patience: float = 60.0
) -> None:
    """Wait until attendance has read every point and every gateway from Kafka."""
    codes = [row["code"] for row in course.rows]
    await until_attendance_knows_points(
        attendance, codes, tokens, list(course.gateways().values()), patience
    )


async def until_attendance_knows_points(
    attendance: httpx.AsyncClient,
    codes: list[str],
    tokens: dict[str, str],
    gateways: Sequence[str] = (),
    patience: float = 60.0,
) -> None:
    """Wait until attendance has read the points `codes` (in the order they were registered)
    and the gateways from Kafka.

    `registry.points` has several partitions, each read in order: the last point registered on
    each partition stands for the others on it. The probes go to the batch route and name a
    session that does not exist: nothing is published, counted as attendance or rate-limited.
    """
    last_on_partition = {registry_partition(code): code for code in codes}
    pending = [(code, tokens[code], False) for code in last_on_partition.values()]
    pending += [(code, tokens[code], True) for code in gateways]
    deadline = time.monotonic() + patience
    while pending := [p for p in pending if not await _knows(attendance, *p)]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"attendance did not learn {[code for code, *_ in pending]} in time")
        await asyncio.sleep(0.3)


def registry_partition(code: str) -> int:
    """The partition of `registry.points` that registration's producer writes the point to."""
    return key_partition(code.encode(), REGISTRY_POINTS.partitions)


async def _knows(attendance: httpx.AsyncClient, point: str, token: str, relays: bool) -> bool:
    # The batch route, so that no probe spends a rate-limit token: a point's token is refused
    # there with 403 (not a gateway) once known, 401 before; a gateway's is answered 202 once
    # it is known to relay, the probe itself refused in the answer.
    probe = {"point_code": point, "session_code": PROBE_SESSION, "seq": 0, "learners": 0}
    probe["sent_at"] = "2026-01-01T00:00:00+00:00"
    batch = await attendance.post(
        "/v1/heartbeats/batch", json={"heartbeats": [probe]}, headers=bearer(token)
    )
    return batch.status_code == 202 if relays else batch.status_code != 401
