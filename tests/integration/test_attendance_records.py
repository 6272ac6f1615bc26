"""Attendance records are upserted in batches on SQLite and PostgreSQL, and survive an outage."""

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from attendance.domain import NEVER_CONNECTED, Beat, Liveness, on_heartbeat
from attendance.records import AttendanceRecord, RecordWriter
from servicekit.database import make_engine

pytestmark = pytest.mark.integration
LIVENESS = Liveness(late_after=12, disconnected_after=30)


def session_of(learners: list[tuple[float, int]]):  # type: ignore[no-untyped-def]
    track = NEVER_CONNECTED
    for seq, (at, count) in enumerate(learners):
        track = on_heartbeat(track, Beat(seq=seq, received_at=at, learners=count), LIVENESS)
    return track


async def test_records_add_up_the_track_and_are_rewritten_in_place(database_url: str) -> None:
    engine = make_engine(database_url)
    writer = RecordWriter(engine)
    AttendanceRecord.metadata.create_all(engine)
    # 10 learners for 10 s, then 30 for 20 s, a 40 s silence (disconnected), back with 25.
    track = session_of([(1000, 10), (1010, 30), (1020, 30), (1030, 30), (1070, 25)])
    writer.changed([(("S1", "P1"), track)])
    assert await writer.write_once() == 1
    track = on_heartbeat(track, Beat(seq=9, received_at=1075, learners=5), LIVENESS)
    writer.changed([(("S1", "P1"), track)])
    assert await writer.write_once() == 1
    with Session(engine) as db:
        (record,) = db.exec(select(AttendanceRecord)).all()
    assert (record.connected_seconds, record.reconnects) == (35.0, 1)
    assert (record.min_learners, record.max_learners, record.learners) == (5, 30, 5)
    # (10*10 + 30*20 + 25*5) / 35
    assert record.avg_learners == pytest.approx(825 / 35, abs=1e-3)
    assert record.first_connected_at is not None and record.first_connected_at.timestamp() == 1000


async def test_records_not_written_are_kept_for_the_next_try(database_url: str) -> None:
    engine = make_engine(database_url)
    writer = RecordWriter(engine)
    track = session_of([(1000, 10)])
    writer.changed([(("S1", "P1"), track)])
    assert await writer.write_once() == 0  # no table yet: the database "is down"
    AttendanceRecord.metadata.create_all(engine)
    assert await writer.write_once() == 1
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM attendance_record")).scalar() == 1


async def test_times_are_read_back_to_the_microsecond_in_utc(database_url: str) -> None:
    engine = make_engine(database_url)
    writer = RecordWriter(engine)
    AttendanceRecord.metadata.create_all(engine)
    writer.changed(
        [(("S1", "P1"), session_of([(1_764_576_000.25, 10), (1_764_576_004.123456, 12)]))]
    )
    assert await writer.write_once() == 1
    with Session(engine) as db:
        (record,) = db.exec(select(AttendanceRecord)).all()
    assert record.first_connected_at == datetime(2025, 12, 1, 8, 0, 0, 250_000, tzinfo=UTC)
    assert record.last_heartbeat_at == datetime(2025, 12, 1, 8, 0, 4, 123_456, tzinfo=UTC)
    assert record.updated_at.tzinfo is not None
    assert abs(record.updated_at.timestamp() - time.time()) < 60
    assert (record.state, record.learners, record.flags) == ("connected", 12, "")
