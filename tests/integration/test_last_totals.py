"""The last published totals, read back at start on the real broker: each session's latest
snapshot, marked stale; a session deleted leaves none, a snapshot unreadable the one before."""

import pytest
from aiokafka import AIOKafkaProducer

from contracts.codec import encode
from contracts.events import Counts, Totals
from contracts.topics import TOTALS, session_key
from devstack.kafka import Broker
from reporting.snapshots import last_totals

pytestmark = pytest.mark.integration


def totals(session_code: str, connected: int) -> Totals:
    counts = dict.fromkeys(Counts.model_fields, 0) | {"registered": 10, "connected": connected}
    return Totals(session_code=session_code, as_of="2026-12-07T08:00:00Z", **counts)


async def test_each_sessions_last_snapshot_is_read_back_marked_stale(kafka: Broker) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    try:
        sent = [
            ("IT-LAST-A", encode(totals("IT-LAST-A", 3))),
            ("IT-LAST-A", encode(totals("IT-LAST-A", 7))),
            ("IT-LAST-B", encode(totals("IT-LAST-B", 1))),
            ("IT-LAST-B", None),  # the session deleted
            ("IT-LAST-C", encode(totals("IT-LAST-C", 2))),
            ("IT-LAST-C", b"{not totals"),
        ]
        for code, value in sent:
            await producer.send_and_wait(TOTALS.name, value, key=session_key(code))
    finally:
        await producer.stop()

    found = await last_totals(kafka.bootstrap)

    assert found["IT-LAST-A"] == totals("IT-LAST-A", 7).model_copy(update={"stale": True})
    assert "IT-LAST-B" not in found
    # An unreadable snapshot is passed over: the one before it is shown, of its own moment.
    assert found["IT-LAST-C"].connected == 2
