"""Reporting's totals equal a recomputation from the raw records, through drops, reconnects and
a second instance rebuilding from the compacted topics; SSE, snapshots and reports."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.codec import decode
from contracts.events import PointState, PointStatus, Totals
from contracts.topics import POINT_STATUS, TOTALS, session_key, status_key
from devstack.kafka import Broker
from devstack.services import start_in, wait_healthy
from devstack.simulate import DEV_OPERATOR_TOKEN, SimulatedPoint, send_heartbeat
from tests.e2e.helpers import eventually
from tests.e2e.kafka_reading import records_of_keys
from tests.e2e.test_thin_path import fresh_plan, registered_points

pytestmark = pytest.mark.e2e
COUNTED = (
    "registered",
    "connected",
    "late",
    "disconnected",
    "never_connected",
    "learners_present",
    "learners_expected",
)


async def oracle(
    kafka: Broker, registration: httpx.AsyncClient, session: str, course: str
) -> dict[str, Any]:
    """The totals (docs/architecture.md) recomputed from the registry and the raw status
    records on the topic."""
    auth = {"Authorization": f"Bearer {DEV_OPERATOR_TOKEN}"}
    page = (
        await registration.get("/v1/points", params={"course": course, "limit": 1000}, headers=auth)
    ).json()
    points = {p["code"]: p for p in page["items"] if p["active"]}
    keys = {status_key(session, code) for code in points}
    latest: dict[str, PointStatus] = {}
    for _, value in await records_of_keys(kafka.bootstrap, POINT_STATUS.name, keys):
        if value is not None:
            record = decode(PointStatus, value)
            latest[record.point_code] = record
    totals = dict.fromkeys(COUNTED, 0)
    provinces: dict[str, int] = {}
    for code, point in points.items():
        status = latest.get(code)
        state = status.state if status else PointState.NEVER_CONNECTED
        totals["registered"] += 1
        totals[state.value] += 1
        totals["learners_expected"] += point["expected_learners"]
        if status and state in (PointState.CONNECTED, PointState.LATE):
            totals["learners_present"] += status.learners
        provinces[point["province_code"]] = provinces.get(point["province_code"], 0) + (
            state is PointState.CONNECTED
        )
    return totals | {"connected_by_province": provinces}


def served(totals: dict[str, Any]) -> dict[str, Any]:
    return {k: totals[k] for k in COUNTED} | {
        "connected_by_province": {p: c["connected"] for p, c in totals["by_province"].items()}
    }


async def beat_all(
    attendance: httpx.AsyncClient, points: list[SimulatedPoint], session: str
) -> None:
    for point in points:
        assert (await send_heartbeat(attendance, point, session)).status_code == 202


async def test_totals_equal_the_raw_records_through_drops_reconnects_and_a_rebuild(
    kafka: Broker, clients: dict[str, httpx.AsyncClient], tmp_path: Path
) -> None:
    plan = fresh_plan(points=10)
    points = await registered_points(clients, plan)
    staying, dropping, absent = points[:6], points[6:9], points[9]
    for n, point in enumerate(points):
        point.learners = 10 + n

    async def keep_beating(group: list[SimulatedPoint]) -> None:
        while True:
            await beat_all(clients["attendance"], group, plan.session_code)
            await asyncio.sleep(plan.heartbeat_interval_s)

    async def agree() -> tuple[dict[str, Any], dict[str, Any]]:
        served_now = (
            await clients["reporting"].get(f"/v1/sessions/{plan.session_code}/totals")
        ).json()
        return served(served_now), await oracle(
            kafka, clients["registration"], plan.session_code, plan.course_code
        )

    beating = asyncio.create_task(keep_beating(staying))
    try:
        await beat_all(clients["attendance"], dropping, plan.session_code)
        # the dropping points fall silent: late, then disconnected
        ours, _ = await eventually(
            agree, lambda pair: pair[0] == pair[1] and pair[0]["disconnected"] == 3
        )
        assert (ours["connected"], ours["never_connected"]) == (6, 1)
        # one comes back and stays: a reconnect
        staying.append(dropping[0])
        ours, _ = await eventually(
            agree, lambda pair: pair[0] == pair[1] and pair[0]["connected"] == 7
        )
        rebuilt = await asyncio.to_thread(
            lambda: start_in("reporting", bootstrap=kafka.bootstrap, data_dir=tmp_path)
        )
        try:
            await asyncio.to_thread(wait_healthy, rebuilt)
            async with httpx.AsyncClient(base_url=rebuilt.url) as fresh:

                async def both() -> tuple[dict[str, Any], dict[str, Any]]:
                    first = (
                        await clients["reporting"].get(f"/v1/sessions/{plan.session_code}/totals")
                    ).json()
                    response = await fresh.get(f"/v1/sessions/{plan.session_code}/totals")
                    second = (
                        response.json()
                        if response.status_code == 200
                        else {k: -1 for k in COUNTED} | {"by_province": {}}
                    )
                    return served(first), served(second)

                first, _ = await eventually(both, lambda pair: pair[0] == pair[1])
                assert first["connected"] == 7 and first["disconnected"] == 2
        finally:
            rebuilt.stop()
    finally:
        beating.cancel()
    report = (await clients["reporting"].get(f"/v1/sessions/{plan.session_code}/report")).json()
    assert report["never_joined"] == [absent.code]
    reconnected = next(p for p in report["points"] if p["code"] == dropping[0].code)
    assert reconnected["reconnects"] == 1 and reconnected["joined"]
    csv_report = await clients["reporting"].get(
        f"/v1/sessions/{plan.session_code}/report", params={"format": "csv"}
    )
    assert csv_report.status_code == 200 and absent.code in csv_report.text
    course = (await clients["reporting"].get(f"/v1/courses/{plan.course_code}/report")).json()
    assert course["never_joined"] == [absent.code] and course["sessions"] == [plan.session_code]
    html = await clients["reporting"].get(
        f"/v1/sessions/{plan.session_code}/report", params={"format": "html"}
    )
    assert html.status_code == 200 and "Báo cáo điểm danh" in html.text


async def test_the_stream_and_the_snapshots_follow_changes(
    kafka: Broker, clients: dict[str, httpx.AsyncClient]
) -> None:
    plan = fresh_plan(points=2)
    first, second = await registered_points(clients, plan)
    first.learners = 17
    await beat_all(clients["attendance"], [first], plan.session_code)
    url = f"/v1/sessions/{plan.session_code}/stream"
    async with clients["reporting"].stream("GET", url, timeout=60) as stream:
        events = _events(stream.aiter_lines())

        async def next_totals() -> dict[str, Any]:
            return await asyncio.wait_for(anext(events), 30)

        seen = await next_totals()
        while seen["learners_present"] != 17:
            seen = await next_totals()
        second.learners = 5
        await beat_all(clients["attendance"], [second], plan.session_code)
        while seen["learners_present"] != 22:
            seen = await next_totals()
    # present: connected, or late by now (the plan's liveness is seconds long)
    assert seen["connected"] + seen["late"] == 2

    async def snapshot() -> Totals | None:
        records = await records_of_keys(
            kafka.bootstrap, TOTALS.name, {session_key(plan.session_code)}
        )
        values = [v for _, v in records if v is not None]
        return decode(Totals, values[-1]) if values else None

    latest = await eventually(snapshot, lambda t: t is not None and t.learners_present == 22)
    assert latest is not None and latest.connected + latest.late == 2


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    with contextlib.suppress(StopAsyncIteration):
        async for line in lines:
            if line.startswith("data:"):
                yield json.loads(line.removeprefix("data:").strip())
