"""Duplicated, reordered and replayed heartbeats, and point clocks ten minutes
off, change no total: a heartbeat's sequence number decides, the server's clock judges."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from contracts.topics import HEARTBEATS
from devstack.kafka import Broker
from devstack.services import ServiceProcess
from devstack.simulate import SimulatedPoint
from tests.conftest import Figures
from tests.fault.fleet import PLAN, UNDER_LOAD, register_at
from tests.fault.oracle import agreement, missing_from_topic, session_heartbeats

pytestmark = [pytest.mark.e2e, pytest.mark.fault, UNDER_LOAD]
SEED = 8_007
SKEW = timedelta(minutes=10)


def body(point: SimulatedPoint, session: str, seq: int, **changes: Any) -> dict[str, Any]:
    return {
        "point_code": point.code,
        "session_code": session,
        "seq": seq,
        "sent_at": datetime.now(UTC).isoformat(),
        "learners": point.learners,
    } | changes


class Sender:
    """Heartbeats posted as given, and what each was answered."""

    def __init__(self, attendance: httpx.AsyncClient) -> None:
        self.attendance = attendance
        self.answers: dict[str, dict[int, int]] = {}
        self.accepted: set[tuple[str, int]] = set()

    async def send(self, kind: str, point: SimulatedPoint, beat: dict[str, Any]) -> None:
        answer = await self.attendance.post(
            "/v1/heartbeats", json=beat, headers={"Authorization": f"Bearer {point.token}"}
        )
        by_status = self.answers.setdefault(kind, {})
        by_status[answer.status_code] = by_status.get(answer.status_code, 0) + 1
        if answer.status_code == 202:
            self.accepted.add((point.code, beat["seq"]))


async def replay_raw(bootstrap: str, session: str) -> int:
    """Publish every heartbeat of the session on the topic once more, straight to Kafka."""
    raw = [(key, value) for key, value, _ in await session_heartbeats(bootstrap, session)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in raw:
            await producer.send(HEARTBEATS.name, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return len(raw)


async def test_duplicates_reordering_replays_and_skewed_clocks_change_no_total(
    kafka: Broker,
    stack: dict[str, ServiceProcess],
    clients: dict[str, httpx.AsyncClient],
    figures: Figures,
) -> None:
    code = "R" + uuid.uuid4().hex[:8].upper()
    # Liveness long enough that nobody goes late while the test looks.
    plan = replace(
        PLAN, course_code=code, session_code=f"{code}-S1", late_after_s=30, disconnected_after_s=60
    )
    points = await register_at(stack["registration"].url, stack["attendance"].url, plan, SEED)
    joining = [p for p in points if not p.never_joins]
    sender, session = Sender(clients["attendance"]), plan.session_code
    for point in joining:
        point.seq += 1
        await sender.send("baseline", point, body(point, session, point.seq))
    reporting = stack["reporting"].url
    before = await agreement(kafka.bootstrap, reporting, session)

    for point in joining:
        # The same heartbeat twice, then the same sequence number with another count.
        await sender.send("duplicate", point, body(point, session, point.seq))
        await sender.send("duplicate", point, body(point, session, point.seq, learners=999))
    for point in joining:
        # The newer one first; the older one, arriving after, says something else.
        point.seq += 2
        await sender.send("reordered", point, body(point, session, point.seq))
        await sender.send("reordered", point, body(point, session, point.seq - 1, learners=777))
    replayed = await replay_raw(kafka.bootstrap, session)
    for n, point in enumerate(joining):
        skewed = datetime.now(UTC) + (SKEW if n % 2 else -SKEW)
        point.seq += 1
        await sender.send(
            "clock 10 min off", point, body(point, session, point.seq, sent_at=skewed.isoformat())
        )
    after = await agreement(kafka.bootstrap, reporting, session)
    missing = await missing_from_topic(kafka.bootstrap, plan.session_code, sender.accepted)
    figures(
        answers=sender.answers,
        accepted=len(sender.accepted),
        found_in_kafka=len(sender.accepted) - len(missing),
        replayed_records=replayed,
        records_on_topic=after.oracle.records,
        totals_before={k: v for k, v in before.totals.items() if k != "by_province"},
        totals_after={k: v for k, v in after.totals.items() if k != "by_province"},
        differences=after.differences,
    )
    assert missing == set()
    assert after.totals == before.totals
    assert after.differences == 0
    # The skewed clocks were heard, and judged by the server's clock: every joiner connected.
    assert after.totals["connected"] == len(joining)
