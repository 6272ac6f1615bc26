"""The heartbeat ingest over HTTP, on the real broker: who is heard, how often, how much, and
what a relay gateway may forward; refusals counted by reason on `/metrics`."""

import asyncio
import itertools
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.kafka import Broker
from devstack.services import start_in, wait_healthy
from devstack.simulate import DEV_OPERATOR_TOKEN, CoursePlan, SimulatedPoint, send_heartbeat
from tests.e2e.helpers import eventually
from tests.e2e.test_thin_path import fresh_plan, registered_points, totals

pytestmark = pytest.mark.e2e
OPERATOR = {"Authorization": f"Bearer {DEV_OPERATOR_TOKEN}"}
sequence = itertools.count(1_000)


def beat(point: SimulatedPoint, session_code: str, **changes: Any) -> dict[str, Any]:
    """A heartbeat body of `point`, each with a new sequence number."""
    return {
        "point_code": point.code,
        "session_code": session_code,
        "seq": next(sequence),
        "sent_at": datetime.now(UTC).isoformat(),
        "learners": 12,
    } | changes


def bearer(point: SimulatedPoint) -> dict[str, str]:
    return {"Authorization": f"Bearer {point.token}"}


async def rejections(attendance: httpx.AsyncClient) -> dict[str, float]:
    """`heartbeats_rejected_total` by reason, as the service exposes it."""
    text = (await attendance.get("/metrics")).text
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "heartbeats_rejected"
        for sample in family.samples
        if sample.name == "heartbeats_rejected_total"
    }


def grown(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    deltas = {reason: after[reason] - before.get(reason, 0) for reason in after}
    return {reason: delta for reason, delta in deltas.items() if delta}


async def test_a_flooding_point_is_held_to_its_rate_and_nobody_else_is(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    plan = fresh_plan(points=2)
    flooder, steady = await registered_points(clients, plan)
    attendance = clients["attendance"]
    before = await rejections(attendance)
    flood: list[httpx.Response] = []
    steady_answers: list[int] = []
    for n in range(40):
        flood.append(
            await attendance.post(
                "/v1/heartbeats", json=beat(flooder, plan.session_code), headers=bearer(flooder)
            )
        )
        if n % 5 == 0:
            steady_answers.append(
                (
                    await attendance.post(
                        "/v1/heartbeats",
                        json=beat(steady, plan.session_code),
                        headers=bearer(steady),
                    )
                ).status_code
            )

    assert steady_answers == [202] * 8
    statuses = [answer.status_code for answer in flood]
    assert set(statuses) == {202, 429} and statuses[0] == 202
    # The burst got through (less the one registered_points spent), then about one a second.
    assert statuses.count(202) >= 9 and statuses.count(429) >= 10
    waits = [int(answer.headers["Retry-After"]) for answer in flood if answer.status_code == 429]
    assert all(wait >= 1 for wait in waits)
    assert grown(before, await rejections(attendance)) == {"rate_limited": statuses.count(429)}


async def designate_gateway(
    registration: httpx.AsyncClient, gateway: SimulatedPoint, provinces: list[str]
) -> None:
    patched = await registration.patch(
        f"/v1/points/{gateway.code}", json={"relays_for": provinces}, headers=OPERATOR
    )
    assert patched.status_code == 200 and patched.json()["relays_for"] == sorted(provinces)


async def province_of(registration: httpx.AsyncClient, point: SimulatedPoint) -> str:
    found = await registration.get(f"/v1/points/{point.code}", headers=OPERATOR)
    return str(found.json()["province_code"])


async def test_a_gateway_forwards_for_the_points_of_its_provinces_only(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    # Liveness long enough that nobody goes late while the test looks.
    plan = replace(fresh_plan(points=8), late_after_s=30.0, disconnected_after_s=60.0)
    gateway, relayed, *others = await registered_points(clients, plan)
    registration, attendance = clients["registration"], clients["attendance"]
    relayed_province = await province_of(registration, relayed)
    outsiders = [p for p in others if await province_of(registration, p) != relayed_province]
    assert outsiders, "eight random units all in one province: rerun"
    outsider = outsiders[0]

    not_yet = await attendance.post(
        "/v1/heartbeats/batch",
        json={"heartbeats": [beat(gateway, plan.session_code)]},
        headers=bearer(gateway),
    )
    assert (not_yet.status_code, not_yet.json()["detail"]) == (
        403,
        "not an active relay gateway's token",
    )
    await designate_gateway(registration, gateway, [relayed_province])
    batch = {
        "heartbeats": [
            beat(gateway, plan.session_code, learners=30),
            beat(relayed, plan.session_code, learners=25),
            beat(outsider, plan.session_code),
            beat(relayed, "NO-SUCH-SESSION"),
        ]
    }

    async def forward() -> httpx.Response:
        return await attendance.post("/v1/heartbeats/batch", json=batch, headers=bearer(gateway))

    # Attendance hears of the designation through registry.points.
    answer = await eventually(forward, lambda response: response.status_code == 202)
    body = answer.json()
    assert datetime.fromisoformat(body["received_at"]) <= datetime.now(UTC)
    assert body["accepted"] == 2
    assert [
        {key: item[key] for key in ("index", "point_code", "status", "reason")}
        for item in body["rejected"]
    ] == [
        {"index": 2, "point_code": outsider.code, "status": 403, "reason": "wrong_point"},
        {"index": 3, "point_code": relayed.code, "status": 404, "reason": "unknown_session"},
    ]
    seen = await eventually(
        lambda: totals(clients, plan),
        lambda t: (t.get("connected"), t.get("learners_present")) == (2, 55),
    )
    assert (seen["registered"], seen["never_connected"]) == (8, 6)


async def test_a_gateway_batch_is_bounded_and_each_point_keeps_its_own_rate(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    plan = fresh_plan(points=2)
    gateway, plain = await registered_points(clients, plan)
    registration, attendance = clients["registration"], clients["attendance"]
    await designate_gateway(registration, gateway, [await province_of(registration, gateway)])

    def batch_of(count: int) -> dict[str, Any]:
        return {"heartbeats": [beat(gateway, plan.session_code) for _ in range(count)]}

    async def forward(body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return await attendance.post(
            "/v1/heartbeats/batch",
            json=body,
            headers=bearer(gateway) if headers is None else headers,
        )

    answer = await eventually(lambda: forward(batch_of(12)), lambda r: r.status_code == 202)
    # The burst holds ten, so two of twelve at least wait.
    assert answer.json()["accepted"] <= 10
    limited = answer.json()["rejected"]
    assert limited and {item["status"] for item in limited} == {429}
    assert all(item["reason"] == "rate_limited" and item["retry_after"] >= 1 for item in limited)

    assert (await forward(batch_of(1), headers={})).status_code == 401
    assert (await forward(batch_of(1), headers=bearer(plain))).status_code == 403
    assert (await forward(batch_of(1_001))).status_code == 422
    assert (await forward({"heartbeats": []})).status_code == 422
    invalid_item = batch_of(2)
    invalid_item["heartbeats"][1]["learners"] = -1
    assert (await forward(invalid_item)).status_code == 422
    huge = batch_of(1) | {"padding": "x" * 600_000}
    assert (await forward(huge)).status_code == 413


async def test_a_heartbeat_kafka_cannot_take_gets_503_within_the_timeout(
    own_broker: Broker, tmp_path: Path
) -> None:
    registration = start_in("registration", bootstrap=own_broker.bootstrap, data_dir=tmp_path)
    attendance = start_in(
        "attendance",
        bootstrap=own_broker.bootstrap,
        data_dir=tmp_path,
        extra_env={"ATTENDANCE_PUBLISH_TIMEOUT_SECONDS": "2"},
    )
    try:
        for service in (registration, attendance):
            await asyncio.to_thread(wait_healthy, service)
        async with (
            httpx.AsyncClient(base_url=registration.url, timeout=30) as to_registration,
            httpx.AsyncClient(base_url=attendance.url, timeout=30) as to_attendance,
        ):
            plan: CoursePlan = fresh_plan(points=1)
            clients = {"registration": to_registration, "attendance": to_attendance}
            (point,) = await registered_points(clients, plan)
            await asyncio.to_thread(own_broker.stop)

            started = time.monotonic()
            refused = await send_heartbeat(to_attendance, point, plan.session_code)
            waited = time.monotonic() - started
            assert refused.status_code == 503
            assert int(refused.headers["Retry-After"]) >= 1
            assert waited <= 2 + 3  # the publish timeout, not a hang
            assert (await rejections(to_attendance))["kafka_unavailable"] == 1
    finally:
        attendance.stop()
        registration.stop()
