"""Kill -9 of every service at random moments while heartbeats flow and the
registry changes; afterwards totals and statuses equal the oracle and no 202 is missing."""

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.kafka import Broker
from devstack.simulate import DEV_OPERATOR_TOKEN, SimulatedPoint
from tests.conftest import Figures
from tests.e2e.helpers import eventually
from tests.fault.fleet import UNDER_LOAD, Fleet, Load, fault_plan, flowing, register
from tests.fault.oracle import agreement, enrolled, missing_from_topic

pytestmark = [pytest.mark.e2e, pytest.mark.fault, UNDER_LOAD]
SEED = 8_001
VICTIMS = ("ingest", "processor-0", "reporting", "registration")
OPERATOR = {"Authorization": f"Bearer {DEV_OPERATOR_TOKEN}"}


@contextlib.asynccontextmanager
async def changing_registry(
    fleet: Fleet, points: list[SimulatedPoint], rng: random.Random
) -> AsyncIterator[dict[str, int]]:
    """Operators change expected learners all along, registration's crashes included."""
    answers: dict[str, int] = {}

    async def change() -> None:
        async with httpx.AsyncClient(base_url=fleet.url("registration"), timeout=5) as client:
            while True:
                point = rng.choice(points)
                body = {"expected_learners": rng.randint(10, 90)}
                try:
                    answer = await client.patch(
                        f"/v1/points/{point.code}", json=body, headers=OPERATOR
                    )
                    key = str(answer.status_code)
                except httpx.TransportError as error:
                    key = type(error).__name__
                answers[key] = answers.get(key, 0) + 1
                await asyncio.sleep(0.5)

    task = asyncio.create_task(change())
    try:
        yield answers
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def restart(fleet: Fleet, role: str) -> float:
    """Start `role` again; the seconds until it was healthy."""
    began = time.monotonic()
    fleet.start(role)
    return time.monotonic() - began


async def registry_as_stored(fleet: Fleet, course: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=fleet.url("registration"), timeout=30) as client:
        page = await client.get(
            "/v1/points", params={"course": course, "limit": 1000}, headers=OPERATOR
        )
    return {p["code"]: p["expected_learners"] for p in page.json()["items"] if p["active"]}


async def test_kill_9_of_every_service_loses_nothing(
    broker: Broker, fleet: Fleet, figures: Figures
) -> None:
    rng = random.Random(SEED)
    plan = fault_plan("crash")
    await asyncio.to_thread(fleet.start_all)
    points = await register(fleet, plan, SEED)
    load = Load(fleet.url("ingest"), plan.session_code, points, plan.heartbeat_interval_s)
    # Every service once, then two more picked at random; a service may still be starting
    # again when the next one dies.
    victims = [*rng.sample(VICTIMS, len(VICTIMS)), *rng.sample(VICTIMS, 2)]
    restarting: dict[str, asyncio.Task[float]] = {}
    every: list[tuple[str, asyncio.Task[float]]] = []
    async with flowing(load), changing_registry(fleet, points, rng) as registry_answers:
        for number, victim in enumerate(victims):
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            if number == len(victims) // 2:
                # Some points leave for good and some change their count: state must move.
                load.silent.update(p.code for p in points[:3])
                for point in points[3:8]:
                    point.learners += 7
            if victim in restarting:
                await restarting[victim]
            await asyncio.to_thread(fleet.kill, victim)
            restarting[victim] = asyncio.create_task(asyncio.to_thread(restart, fleet, victim))
            every.append((victim, restarting[victim]))
        restarts = [(victim, round(await task, 1)) for victim, task in every]
    # Registration's database is the truth of the registry: the topic must carry all of it,
    # once the outbox relay (restarted, maybe just now) has published what it holds.
    await eventually(lambda: outbox_backlog(fleet), lambda events: events == 0)
    _, on_topic = await enrolled(broker.bootstrap, plan.session_code)
    stored = await registry_as_stored(fleet, plan.course_code)
    assert {code: p.expected for code, p in on_topic.items()} == stored
    async with flowing(load):
        comparison = await agreement(broker.bootstrap, fleet.url("reporting"), plan.session_code)
    missing = await missing_from_topic(broker.bootstrap, plan.session_code, load.accepted)
    figures(
        **load.figures(),
        found_in_kafka=len(load.accepted) - len(missing),
        records_on_topic=comparison.oracle.records,
        kills=len(victims),
        restart_seconds=restarts,
        registry_changes=registry_answers,
        differences=comparison.differences,
        totals={k: v for k, v in comparison.totals.items() if k != "by_province"},
    )
    assert missing == set()
    assert "401" not in load.refused, load.refused  # restarted ingest: 503 while loading
    assert comparison.differences == 0


async def outbox_backlog(fleet: Fleet) -> float:
    """Registration's outbox events committed but not yet acknowledged by Kafka."""
    async with httpx.AsyncClient(base_url=fleet.url("registration")) as registration:
        text = (await registration.get("/metrics")).text
    return next(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "outbox_backlog"
    )
