"""The heartbeat ingest over HTTP, on the real broker: who is heard, how often, how much, and
what a relay gateway may forward; refusals counted by reason on `/metrics`."""

import asyncio
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from attendance.encoding import heartbeat_of, watermark_of
from contracts.topics import HEARTBEATS, WATERMARK_PREFIX, point_key
from devstack.kafka import Broker
from devstack.services import ServiceProcess, start_in, wait_healthy
from devstack.simulate import DEV_OPERATOR_TOKEN, CoursePlan, SimulatedPoint, send_heartbeat
from tests.e2e.helpers import eventually
from tests.e2e.kafka_reading import Landed, landed
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


@dataclass
class OwnIngest:
    process: ServiceProcess
    client: httpx.AsyncClient
    point: SimulatedPoint
    plan: CoursePlan


@asynccontextmanager
async def own_ingest(
    broker: Broker, data_dir: Path, env: dict[str, str]
) -> AsyncIterator[OwnIngest]:
    """Registration and attendance of this test's own on `broker`, for a test that stops one
    of them, with a point registered and heard."""
    registration = start_in("registration", bootstrap=broker.bootstrap, data_dir=data_dir)
    attendance = start_in(
        "attendance", bootstrap=broker.bootstrap, data_dir=data_dir, extra_env=env
    )
    try:
        for service in (registration, attendance):
            await asyncio.to_thread(wait_healthy, service)
        async with (
            httpx.AsyncClient(base_url=registration.url, timeout=30) as to_registration,
            httpx.AsyncClient(base_url=attendance.url, timeout=30) as to_attendance,
        ):
            plan = fresh_plan(points=1)
            clients = {"registration": to_registration, "attendance": to_attendance}
            (point,) = await registered_points(clients, plan)
            yield OwnIngest(attendance, to_attendance, point, plan)
    finally:
        attendance.stop()
        registration.stop()


async def test_a_heartbeat_kafka_cannot_take_gets_503_within_the_timeout(
    own_broker: Broker, tmp_path: Path
) -> None:
    async with own_ingest(
        own_broker, tmp_path, {"ATTENDANCE_PUBLISH_TIMEOUT_SECONDS": "2"}
    ) as ingest:
        await asyncio.to_thread(own_broker.stop)
        started = time.monotonic()
        refused = await send_heartbeat(ingest.client, ingest.point, ingest.plan.session_code)
        waited = time.monotonic() - started
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) >= 1
        assert waited <= 2 + 3  # the publish timeout, not a hang
        assert (await rejections(ingest.client))["kafka_unavailable"] == 1


async def test_no_watermark_passes_a_heartbeat_waiting_on_a_stalled_ingest(
    own_broker: Broker, tmp_path: Path
) -> None:
    """An ingest stopped (SIGSTOP, as a process starved of CPU or swapped out is) while a
    heartbeat waits unread in its socket: when it runs again its clock has moved on, and the
    heartbeat is still to be read. A watermark claiming that clock before the heartbeat is in
    its partition would have the processor judge the point's silence past a heartbeat that
    had already arrived (the yardstick: when the client finished sending it)."""
    async with (
        own_ingest(own_broker, tmp_path, {"ATTENDANCE_PROCESSOR": "false"}) as ingest,
        httpx.AsyncClient(base_url=ingest.process.url, timeout=30) as new_connection,
    ):
        point, pid = ingest.point, ingest.process.process.pid
        sent: list[float] = []

        async def trace(event: str, _: dict[str, Any]) -> None:
            if event == "http11.send_request_body.complete":
                sent.append(time.time())

        os.kill(pid, signal.SIGSTOP)
        try:
            waiting = asyncio.create_task(
                send_heartbeat(new_connection, point, ingest.plan.session_code, {"trace": trace})
            )
            await eventually(lambda: asyncio.sleep(0, sent), bool)
            await asyncio.sleep(3)  # the stall
        finally:
            os.kill(pid, signal.SIGCONT)
        assert (await waiting).status_code == 202

        async def its_partition() -> list[Landed]:
            records = await landed(own_broker.bootstrap, HEARTBEATS.name)
            beats = [r for r in records if r[2] == point_key(point.code)]
            return [r for r in records if beats and r[0] == beats[-1][0]]

        def watermarked_past_it(partition: list[Landed]) -> bool:
            return any(key.startswith(WATERMARK_PREFIX) for _, _, key, _ in after(partition))

        def after(partition: list[Landed]) -> list[Landed]:
            return partition[last_beat(partition) + 1 :] if partition else []

        def last_beat(partition: list[Landed]) -> int:
            keys = [key for _, _, key, _ in partition]
            return len(keys) - 1 - keys[::-1].index(point_key(point.code))

        partition = await eventually(its_partition, watermarked_past_it)
    stalled = last_beat(partition)
    assert heartbeat_of(partition[stalled][3])[1].seq == point.seq
    claimed_before_it = [
        watermark_of(value)[1]
        for _, _, key, value in partition[:stalled]
        if key.startswith(WATERMARK_PREFIX)
    ]
    assert claimed_before_it, "the ingest wrote no watermark before the heartbeat"
    ahead = max(claimed_before_it) - sent[0]
    assert ahead < 0, f"a watermark {ahead:.3f} s past the heartbeat came before it"
