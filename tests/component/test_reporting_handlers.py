"""Reporting's handlers in process, on FastStream's TestKafkaBroker: the compacted topics'
records as the processor and registration write them, the totals and drops the desk is
served, the dead letters of what cannot be read. The real broker's side of it is in
tests/e2e/test_reporting.py."""

import importlib
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from contracts.accounts import Role
from contracts.codec import encode
from contracts.events import (
    AccountGrant,
    Channel,
    DeskAction,
    Level,
    MonitorClock,
    PointRegistration,
    PointState,
    PointStatus,
    Response,
    SessionSchedule,
)
from contracts.tokens import hash_token
from contracts.topics import (
    DESK_ACTIONS,
    MONITOR_CLOCK,
    POINT_STATUS,
    REGISTRY_ACCOUNTS,
    REGISTRY_POINTS,
    REGISTRY_SESSIONS,
    account_key,
    action_key,
    dead_letter_name,
    point_key,
    session_key,
    status_key,
)
from servicekit.kafka import records_of

COURSE = "C-1"
POINTS = (("P-1", "01", 30), ("P-2", "01", 20), ("P-3", "02", 10))
SESSIONS = itertools.count(1)


@pytest.fixture(scope="module")
def reporting(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """reporting.app as uvicorn imports it, its settings from the environment of the moment."""
    database = Path(tmp_path_factory.mktemp("reporting")) / "reporting.db"
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("REPORTING_DATABASE_URL", f"sqlite:///{database}")
        return importlib.import_module("reporting.app")


@pytest.fixture(scope="module")
def parked() -> list[tuple[str, bytes]]:
    """(dead-letter topic, value) of every record parked, in order."""
    return []


@pytest.fixture(scope="module")
async def kafka(reporting: ModuleType, parked: list[tuple[str, bytes]]) -> AsyncIterator[Any]:
    read = (REGISTRY_POINTS.name, POINT_STATUS.name, MONITOR_CLOCK.name, DESK_ACTIONS.name)
    broker: KafkaBroker = reporting.broker

    @broker.subscriber(*(dead_letter_name(topic) for topic in read))
    async def dead_letter(message: KafkaMessage) -> None:
        parked.extend((record.topic, message.body) for record in records_of(message))

    async with TestKafkaBroker(reporting.broker) as broker:
        yield broker


def registration(code: str, province: str, expected: int) -> bytes:
    point = PointRegistration(
        code=code,
        name=f"Commune {code}",
        level=Level.COMMUNE,
        province_code=province,
        channel=Channel.VIDEO_BRIDGE,
        expected_learners=expected,
        courses=(COURSE,),
    )
    return encode(point)


async def put_status(
    kafka: Any, session: str, code: str, state: PointState, learners: int, at: datetime
) -> None:
    status = PointStatus(
        session_code=session,
        point_code=code,
        state=state,
        learners=learners,
        since=at,
        last_heartbeat_at=at,
    )
    await kafka.publish(encode(status), POINT_STATUS.name, key=status_key(session, code))


async def put_clock(kafka: Any, judged_until: datetime) -> None:
    clock = MonitorClock(partition=0, judged_until=judged_until)
    await kafka.publish(encode(clock), MONITOR_CLOCK.name, key=b"0")


@pytest.fixture
async def session(kafka: Any) -> str:
    """A session on air of the course the three points of two provinces are registered to,
    its own for each test; the processor's clock judged now."""
    code = f"S-{next(SESSIONS)}"
    for point, province, expected in POINTS:
        await kafka.publish(
            registration(point, province, expected), REGISTRY_POINTS.name, key=point_key(point)
        )
    now = datetime.now(UTC)
    schedule = SessionSchedule(
        code=code,
        course_code=COURSE,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
    )
    await kafka.publish(encode(schedule), REGISTRY_SESSIONS.name, key=session_key(code))
    await put_clock(kafka, now)
    return code


def served(reporting: ModuleType, path: str) -> Any:
    # Outside `with`: the routes without the lifespan, which would start a broker of its own.
    response = TestClient(reporting.app).get(f"/v1/sessions/{path}")
    assert response.status_code == 200, response.text
    return response.json()


async def test_statuses_fold_into_the_totals_the_desk_is_served(
    reporting: ModuleType, kafka: Any, session: str
) -> None:
    at = datetime.now(UTC)
    await put_status(kafka, session, "P-1", PointState.CONNECTED, 25, at)
    await put_status(kafka, session, "P-2", PointState.CONNECTED, 18, at)
    await put_status(kafka, session, "P-2", PointState.CONNECTED, 19, at)  # the latest counts

    totals = served(reporting, f"{session}/totals")
    assert (totals["registered"], totals["connected"], totals["never_connected"]) == (3, 2, 1)
    assert (totals["learners_present"], totals["learners_expected"]) == (44, 60)
    assert totals["unknown"] is False
    provinces = served(reporting, f"{session}/breakdown/province")
    assert (provinces["01"]["connected"], provinces["02"]["never_connected"]) == (2, 1)


async def test_a_drop_is_listed_first_and_a_point_removed_leaves_the_totals(
    reporting: ModuleType, kafka: Any, session: str
) -> None:
    at = datetime.now(UTC)
    for point in ("P-1", "P-2", "P-3"):
        await put_status(kafka, session, point, PointState.CONNECTED, 5, at)
    await put_status(kafka, session, "P-2", PointState.DISCONNECTED, 0, at + timedelta(seconds=30))

    page = served(reporting, f"{session}/points")
    assert page["items"][0]["code"] == "P-2"
    assert served(reporting, f"{session}/totals")["disconnected"] == 1

    await kafka.publish(None, REGISTRY_POINTS.name, key=point_key("P-2"))  # a tombstone
    totals = served(reporting, f"{session}/totals")
    assert (totals["registered"], totals["connected"], totals["disconnected"]) == (2, 2, 0)


async def test_unreadable_records_are_parked_and_the_next_one_is_read(
    reporting: ModuleType, kafka: Any, session: str, parked: list[tuple[str, bytes]]
) -> None:
    garbage = b'{"event_type": "attendance.point_status", "learners": -1}'
    topics = (REGISTRY_POINTS.name, POINT_STATUS.name, MONITOR_CLOCK.name, DESK_ACTIONS.name)
    for topic in topics:
        await kafka.publish(garbage, topic, key=b"P-1")
    await put_status(kafka, session, "P-1", PointState.CONNECTED, 7, datetime.now(UTC))

    assert sorted(parked[-4:]) == sorted((dead_letter_name(topic), garbage) for topic in topics)
    totals = served(reporting, f"{session}/totals")
    assert (totals["connected"], totals["learners_present"]) == (1, 7)


async def test_a_clock_left_behind_makes_the_states_unknown_not_dropped(
    reporting: ModuleType, kafka: Any, session: str
) -> None:
    await put_status(kafka, session, "P-1", PointState.CONNECTED, 9, datetime.now(UTC))
    await put_clock(kafka, datetime.now(UTC) - timedelta(minutes=1))
    totals = served(reporting, f"{session}/totals")
    assert totals["unknown"] is True
    assert (totals["connected"], totals["disconnected"]) == (1, 0)

    await put_clock(kafka, datetime.now(UTC))
    assert served(reporting, f"{session}/totals")["unknown"] is False


async def test_an_action_reaches_every_desk_through_its_topic(
    reporting: ModuleType, kafka: Any, session: str
) -> None:
    grant = AccountGrant(name="lan", role=Role.OPERATOR, token_hash=hash_token("ac_lan"))
    await kafka.publish(encode(grant), REGISTRY_ACCOUNTS.name, key=account_key("lan"))
    at = datetime.now(UTC) - timedelta(seconds=40)
    await put_status(kafka, session, "P-1", PointState.DISCONNECTED, 0, at)
    # Through the route: published on desk.actions, read back by the handler.
    answer = TestClient(reporting.app).post(
        f"/v1/sessions/{session}/actions",
        json={"subject": "point:P-1", "response": "acknowledge"},
        headers={"Authorization": "Bearer ac_lan"},
    )
    assert answer.status_code == 202, answer.text
    # From another instance: only on the topic.
    note = DeskAction(
        id="0" * 32,
        session_code=session,
        subject="point:P-1",
        response=Response.ANNOTATE,
        by="minh",
        at=datetime.now(UTC),
        note="power cut",
    )
    await kafka.publish(encode(note), DESK_ACTIONS.name, key=action_key(note.id))
    await kafka.publish(encode(note), DESK_ACTIONS.name, key=action_key(note.id))  # again
    (point,) = [p for p in served(reporting, f"{session}/points")["items"] if p["code"] == "P-1"]
    assert point["handling"]["acknowledged_by"] == "lan"
    assert [n["note"] for n in point["handling"]["notes"]] == ["power cut"]
    assert [a["by"] for a in served(reporting, f"{session}/actions")] == ["lan", "minh"]
