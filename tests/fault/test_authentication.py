"""Nobody speaks for a point that is not theirs, and nobody floods.

Refusals are counted by reason in tests/e2e/test_ingest.py; here every refusal is also checked
to have published nothing (end offsets of the heartbeat and registry topics), and the tokens
that stop working (revoked, superseded) and operator routes tried with a point's token are added.
"""

import asyncio
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from contracts.tokens import hash_token
from contracts.topics import HEARTBEATS, REGISTRY_POINTS, REGISTRY_SESSIONS
from devstack.kafka import Broker
from devstack.services import ServiceProcess
from devstack.simulate import DEV_OPERATOR_TOKEN, SimulatedPoint, send_heartbeat
from tests.conftest import Figures
from tests.e2e.helpers import eventually
from tests.e2e.test_thin_path import fresh_plan, registered_points
from tests.fault.state import outbox_drained, records_published, registration_db

pytestmark = [pytest.mark.e2e, pytest.mark.fault]
OPERATOR = {"Authorization": f"Bearer {DEV_OPERATOR_TOKEN}"}
WATCHED = (HEARTBEATS, REGISTRY_POINTS, REGISTRY_SESSIONS)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def beat(point: SimulatedPoint, session_code: str) -> dict[str, Any]:
    point.seq += 1
    return {
        "point_code": point.code,
        "session_code": session_code,
        "seq": point.seq,
        "sent_at": datetime.now(UTC).isoformat(),
        "learners": 7,
    }


async def status_with(attendance: httpx.AsyncClient, point: SimulatedPoint, session: str) -> int:
    return (await send_heartbeat(attendance, point, session)).status_code


async def heard(attendance: httpx.AsyncClient, point: SimulatedPoint, session: str) -> None:
    await eventually(lambda: status_with(attendance, point, session), lambda s: s == 202)


async def test_every_forged_or_stale_credential_is_refused_and_publishes_nothing(
    stack: dict[str, ServiceProcess],
    kafka: Broker,
    clients: dict[str, httpx.AsyncClient],
    figures: Figures,
) -> None:
    plan = fresh_plan(points=3)
    speaker, revoked, rotated = await registered_points(clients, plan)
    registration, attendance = clients["registration"], clients["attendance"]
    session = plan.session_code
    superseded = rotated.token
    revocation = await registration.delete(f"/v1/points/{revoked.code}/token", headers=OPERATOR)
    assert revocation.status_code == 204
    issued = await registration.post(f"/v1/points/{rotated.code}/token", headers=OPERATOR)
    rotated.token = issued.json()["token"]
    # Attendance hears of both through registry.points.
    await heard(attendance, rotated, session)
    await eventually(lambda: status_with(attendance, revoked, session), lambda s: s == 401)
    await outbox_drained(registration_db(stack["registration"]))
    before = await records_published(kafka.bootstrap, WATCHED)

    own = beat(speaker, session)
    heartbeat = "/v1/heartbeats"
    attempts = {
        "no token": attendance.post(heartbeat, json=own),
        "wrong token": attendance.post(heartbeat, json=own, headers=bearer("pt_forged")),
        "not a bearer": attendance.post(
            heartbeat, json=own, headers={"Authorization": f"Basic {speaker.token}"}
        ),
        "the token's hash, as published": attendance.post(
            heartbeat, json=own, headers=bearer(hash_token(speaker.token))
        ),
        "another point's token": attendance.post(
            heartbeat, json=own, headers=bearer(rotated.token)
        ),
        "revoked token": attendance.post(
            heartbeat, json=beat(revoked, session), headers=bearer(revoked.token)
        ),
        "superseded token": attendance.post(
            heartbeat, json=beat(rotated, session), headers=bearer(superseded)
        ),
        "batch from a plain point": attendance.post(
            "/v1/heartbeats/batch", json={"heartbeats": [own]}, headers=bearer(speaker.token)
        ),
        "operator route, no token": registration.post(
            "/v1/courses", json={"code": "NEVER", "title": "x"}
        ),
        "operator route, point token: new course": registration.post(
            "/v1/courses", json={"code": "NEVER", "title": "x"}, headers=bearer(speaker.token)
        ),
        "operator route, point token: change itself": registration.patch(
            f"/v1/points/{speaker.code}",
            json={"relays_for": ["01"]},
            headers=bearer(speaker.token),
        ),
        "operator route, point token: new token": registration.post(
            f"/v1/points/{speaker.code}/token", headers=bearer(speaker.token)
        ),
        "operator route, point token: revoke another": registration.delete(
            f"/v1/points/{rotated.code}/token", headers=bearer(speaker.token)
        ),
        "operator route, point token: import": registration.post(
            "/v1/points/import",
            content=b"code,name,level,channel\nP1,x,other,teams\n",
            headers=bearer(speaker.token) | {"Content-Type": "text/csv"},
        ),
        "operator route, point token: read": registration.get(
            "/v1/points", headers=bearer(speaker.token)
        ),
    }
    answers = dict(zip(attempts, await asyncio.gather(*attempts.values()), strict=True))

    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "no token": 401,
        "wrong token": 401,
        "not a bearer": 401,
        "the token's hash, as published": 401,
        "another point's token": 403,
        "revoked token": 401,
        "superseded token": 401,
        "batch from a plain point": 403,
        "operator route, no token": 401,
        "operator route, point token: new course": 403,
        "operator route, point token: change itself": 403,
        "operator route, point token: new token": 403,
        "operator route, point token: revoke another": 403,
        "operator route, point token: import": 403,
        "operator route, point token: read": 403,
    }
    # Anything a refused request had committed would have reached its topic by now.
    await outbox_drained(registration_db(stack["registration"]))
    after = await records_published(kafka.bootstrap, WATCHED)
    assert after == before
    # The tokens that are still good still work: the refusals took nothing from them.
    assert await status_with(attendance, rotated, session) == 202
    figures(
        requests=len(statuses),
        by_status=dict(Counter(statuses.values())),
        published_by_refused=sum(after.values()) - sum(before.values()),
    )


FLOOD_SECONDS = 3.0
STEADY_POINTS = 5


async def paced(
    attendance: httpx.AsyncClient,
    point: SimulatedPoint,
    session: str,
    per_second: float,
    seconds: float,
) -> list[tuple[int, float]]:
    """Heartbeats of `point` at `per_second` for `seconds`, each sent on schedule whether or
    not the previous one was answered; (status, seconds to answer) of each."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(n: int) -> tuple[int, float]:
        await asyncio.sleep(max(0.0, start + n / per_second - loop.time()))
        sent = time.monotonic()
        answer = await attendance.post(
            "/v1/heartbeats", json=beat(point, session), headers=bearer(point.token)
        )
        return answer.status_code, time.monotonic() - sent

    return list(await asyncio.gather(*(one(n) for n in range(int(per_second * seconds)))))


async def test_a_point_flooding_at_a_hundred_times_its_rate_is_limited_and_others_are_served(
    stack: dict[str, ServiceProcess],
    kafka: Broker,
    clients: dict[str, httpx.AsyncClient],
    figures: Figures,
) -> None:
    # Liveness long enough that nobody goes late while the flood lasts.
    plan = replace(
        fresh_plan(points=1 + STEADY_POINTS), late_after_s=30.0, disconnected_after_s=60.0
    )
    flooder, *steady = await registered_points(clients, plan)
    # Every steady point heard once, so attendance surely knows them all before the flood.
    for point in steady:
        await heard(clients["attendance"], point, plan.session_code)
    before = await records_published(kafka.bootstrap, (HEARTBEATS,))
    rate = 1 / plan.heartbeat_interval_s
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=stack["attendance"].url, timeout=30, limits=limits) as to:
        flood, *others = await asyncio.gather(
            paced(to, flooder, plan.session_code, 100 * rate, FLOOD_SECONDS),
            *(paced(to, p, plan.session_code, rate, FLOOD_SECONDS) for p in steady),
        )

    flood_statuses = Counter(status for status, _ in flood)
    steady_statuses = Counter(status for answers in others for status, _ in answers)
    assert set(flood_statuses) == {202, 429}
    # At most the burst (10) and one a second of the flood are heard; the rest are limited.
    assert flood_statuses[202] <= 10 + FLOOD_SECONDS + 1
    assert steady_statuses == {202: STEADY_POINTS * int(FLOOD_SECONDS * rate)}
    after = await records_published(kafka.bootstrap, (HEARTBEATS,))
    published = after[HEARTBEATS.name] - before[HEARTBEATS.name]
    assert published == flood_statuses[202] + steady_statuses[202]
    slowest = max(seconds for answers in others for _, seconds in answers)
    figures(
        flood_requests=len(flood),
        flood_by_status=dict(flood_statuses),
        steady_requests=sum(steady_statuses.values()),
        steady_by_status=dict(steady_statuses),
        slowest_steady_answer_s=round(slowest, 3),
        heartbeats_published=published,
        published_by_refused=published - flood_statuses[202] - steady_statuses[202],
    )
