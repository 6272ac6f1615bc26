"""Attendance records for reports: per session and point, what its track adds up to, written to
the database in batches.

The records are derived from the tracks, which the changelog keeps, so writing them is an
idempotent upsert: a record that could not be written (database down) is written later, and a
restored partition writes all of its records again.
"""

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel, create_engine

from attendance.domain import Track
from attendance.tracker import TrackKey

log = logging.getLogger(__name__)


# What a point's attendance of a session adds up to.
class AttendanceRecord(SQLModel, table=True):
    __tablename__ = "attendance_record"

    session_code: str = Field(primary_key=True, max_length=64)
    point_code: str = Field(primary_key=True, max_length=64)
    state: str = Field(max_length=20)
    first_connected_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    connected_seconds: float = 0.0
    reconnects: int = 0
    learners: int = 0
    min_learners: int | None = None
    max_learners: int | None = None
    avg_learners: float = 0.0
    flags: str = ""
    updated_at: datetime


def record_of(key: TrackKey, track: Track) -> dict[str, Any]:
    return {
        "session_code": key[0],
        "point_code": key[1],
        "state": track.state.value,
        "first_connected_at": _moment(track.first_seen),
        "last_heartbeat_at": _moment(track.last_seen),
        "connected_seconds": round(track.present_seconds, 3),
        "reconnects": track.reconnects,
        "learners": track.learners,
        "min_learners": track.min_learners,
        "max_learners": track.max_learners,
        "avg_learners": round(track.average_learners, 3),
        "flags": ",".join(sorted(track.flags)),
        "updated_at": datetime.now(UTC),
    }


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    return create_engine(url, pool_pre_ping=True)


def upsert(engine: Engine, rows: list[dict[str, Any]]) -> None:
    # One statement, compiled once and run with many parameter sets: a multi-row VALUES
    # statement would be compiled again for every chunk.
    with engine.begin() as connection:
        connection.execute(_upsert_statement(engine.dialect.name), rows)


@cache
def _upsert_statement(dialect_name: str) -> Any:
    table = AttendanceRecord.__table__  # type: ignore[attr-defined]
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    statement = dialect.insert(table)
    latest = {c.name: statement.excluded[c.name] for c in table.columns if not c.primary_key}
    keys = ["session_code", "point_code"]
    return statement.on_conflict_do_update(index_elements=keys, set_=latest)


class RecordWriter:
    """Collects changed tracks and writes their records every `every` seconds."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dirty: dict[TrackKey, Track] = {}

    def changed(self, tracks: Iterable[tuple[TrackKey, Track]]) -> None:
        self._dirty.update(tracks)

    async def run(self, every: float) -> None:
        while True:
            try:
                await asyncio.to_thread(SQLModel.metadata.create_all, self._engine)
                break
            except Exception as error:
                log.warning("attendance database unavailable (%s); retrying", error)
                await asyncio.sleep(every)
        while True:
            await asyncio.sleep(every)
            await self.write_once()

    async def write_once(self) -> int:
        batch, self._dirty = self._dirty, {}
        if not batch:
            return 0
        try:
            await asyncio.to_thread(
                upsert, self._engine, [record_of(k, t) for k, t in batch.items()]
            )
        except Exception as error:
            log.warning("attendance records not written (%s); retrying", error)
            self._dirty = batch | self._dirty  # newer changes win
            return 0
        return len(batch)


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)
