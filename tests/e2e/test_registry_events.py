"""Every committed registry change reaches Kafka exactly as committed, even across an outage,
and attendance honours token rotation, revocation and deactivation within seconds."""

import asyncio
import itertools
import uuid
from pathlib import Path

import httpx
import pytest

from contracts.codec import decode
from contracts.events import PointRegistration
from contracts.tokens import hash_token
from contracts.topics import REGISTRY_POINTS
from devstack.kafka import Broker, default_cache_dir
from devstack.services import ServiceProcess, start_in, wait_healthy
from devstack.simulate import DEV_OPERATOR_TOKEN, SimulatedPoint, send_heartbeat
from tests.e2e.helpers import eventually
from tests.e2e.kafka_reading import records_of_keys
from tests.e2e.test_thin_path import fresh_plan, registered_points

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {DEV_OPERATOR_TOKEN}"}


def a_ward(code: str, course: str) -> dict[str, object]:
    return {
        "code": code,
        "name": "Phường Ba Đình",
        "level": "ward",
        "unit_code": "00004",
        "channel": "video_bridge",
        "expected_learners": 30,
        "courses": [course],
    }


async def make_changes(
    registration: httpx.AsyncClient, course: str, code: str
) -> list[dict[str, object] | None]:
    """Create, change, deactivate, re-key and remove one point; what the topic must then hold."""
    assert (
        await registration.post("/v1/courses", json={"code": course, "title": "x"}, headers=AUTH)
    ).status_code == 201
    created = await registration.post("/v1/points", json=a_ward(code, course), headers=AUTH)
    assert created.status_code == 201
    first_hash = hash_token(created.json()["token"])
    assert (
        await registration.patch(f"/v1/points/{code}", json={"expected_learners": 45}, headers=AUTH)
    ).status_code == 200
    assert (
        await registration.patch(f"/v1/points/{code}", json={"active": False}, headers=AUTH)
    ).status_code == 200
    rotated = await registration.post(f"/v1/points/{code}/token", headers=AUTH)
    assert rotated.status_code == 201
    assert (await registration.delete(f"/v1/points/{code}", headers=AUTH)).status_code == 204
    second_hash = hash_token(rotated.json()["token"])
    return [
        {"expected_learners": 30, "active": True, "token_hash": first_hash},
        {"expected_learners": 45, "active": True, "token_hash": first_hash},
        {"expected_learners": 45, "active": False, "token_hash": first_hash},
        {"expected_learners": 45, "active": False, "token_hash": second_hash},
        None,
    ]


def as_committed(value: bytes | None) -> dict[str, object] | None:
    if value is None:
        return None
    point = decode(PointRegistration, value)
    return {
        "expected_learners": point.expected_learners,
        "active": point.active,
        "token_hash": point.token_hash,
    }


async def test_changes_arrive_on_the_topic_in_commit_order(
    kafka: Broker, stack: dict[str, ServiceProcess]
) -> None:
    course, code = "C" + uuid.uuid4().hex[:8], "P" + uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=stack["registration"].url) as registration:
        expected = await make_changes(registration, course, code)

    async def landed() -> list[dict[str, object] | None]:
        records = await records_of_keys(kafka.bootstrap, REGISTRY_POINTS.name, {code.encode()})
        return [as_committed(value) for _, value in records]

    assert await eventually(landed, lambda seen: len(seen) >= len(expected)) == expected


async def test_revocation_rotation_and_deactivation_reach_attendance(
    stack: dict[str, ServiceProcess],
) -> None:
    async with (
        httpx.AsyncClient(base_url=stack["registration"].url, headers=AUTH) as registration,
        httpx.AsyncClient(base_url=stack["attendance"].url) as attendance,
        httpx.AsyncClient(base_url=stack["reporting"].url) as reporting,
    ):
        plan = fresh_plan(points=1)
        clients = {"registration": registration, "attendance": attendance, "reporting": reporting}
        (point,) = await registered_points(clients, plan)

        async def beat(token: str) -> int:
            as_holder = SimulatedPoint(point.code, token, 0, seq=next(sequence))
            return (await send_heartbeat(attendance, as_holder, plan.session_code)).status_code

        sequence = itertools.count(1000)
        assert (await registration.delete(f"/v1/points/{point.code}/token")).status_code == 204
        await eventually(lambda: beat(point.token), lambda status: status == 401)
        rotated = (await registration.post(f"/v1/points/{point.code}/token")).json()["token"]
        await eventually(lambda: beat(rotated), lambda status: status == 202)
        assert await beat(point.token) == 401
        assert (
            await registration.patch(f"/v1/points/{point.code}", json={"active": False})
        ).status_code == 200
        await eventually(lambda: beat(rotated), lambda status: status == 403)


async def serving(service: ServiceProcess) -> None:
    async def docs() -> int:
        try:
            async with httpx.AsyncClient(base_url=service.url) as client:
                return (await client.get("/openapi.json")).status_code
        except httpx.TransportError:
            return 0

    await eventually(docs, lambda status: status == 200)


async def test_changes_made_while_kafka_is_down_arrive_once_it_is_back(
    own_broker: Broker, tmp_path: Path
) -> None:
    """Kafka goes down; registration even restarts without it; every change still arrives."""
    first = start_in("registration", bootstrap=own_broker.bootstrap, data_dir=tmp_path)
    await asyncio.to_thread(wait_healthy, first)
    own_broker.stop()
    first.stop()
    own_registration = start_in("registration", bootstrap=own_broker.bootstrap, data_dir=tmp_path)
    await serving(own_registration)
    course, code = "DOWN", "P-DOWN"
    async with httpx.AsyncClient(base_url=own_registration.url, timeout=30) as registration:
        assert (await registration.get("/healthz")).status_code == 503
        expected = await make_changes(registration, course, code)
        back = await asyncio.to_thread(
            Broker.start,
            default_cache_dir(),
            own_broker.data_dir,
            ports=(own_broker.port, own_broker.controller_port),
        )
        try:

            async def landed() -> list[dict[str, object] | None]:
                records = await records_of_keys(
                    back.bootstrap, REGISTRY_POINTS.name, {code.encode()}
                )
                return [as_committed(value) for _, value in records]

            assert (
                await eventually(landed, lambda seen: len(seen) >= len(expected), patience=90)
                == expected
            )
            await eventually(lambda: registration.get("/healthz"), lambda r: r.status_code == 200)
            metrics = (await registration.get("/metrics")).text
            assert "outbox_backlog 0.0" in metrics
        finally:
            own_registration.stop()
            back.stop()
