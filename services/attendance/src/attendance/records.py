"""Attendance records for reports: per session and point, what its track adds up to, written to
the database in batches.

The records are derived from the tracks, which the changelog keeps, so writing them is an
idempotent upsert: a record that could not be written (database down) is written later, and a
restored partition writes all of its records again.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Field, SQLModel

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


# How a moment (seconds since the epoch) is written in the driver's terms.
TimeColumn = Callable[[float | None], Any]


def record_of(
    key: TrackKey, track: Track, as_column: TimeColumn, updated_at: Any
) -> tuple[Any, ...]:
    """The record's row, in the table's column order, times written by `as_column`."""
    return (
        key[0],
        key[1],
        track.state.value,
        as_column(track.first_seen),
        as_column(track.last_seen),
        round(track.present_seconds, 3),
        track.reconnects,
        track.learners,
        track.min_learners,
        track.max_learners,
        round(track.average_learners, 3),
        ",".join(sorted(track.flags)),
        updated_at,
    )


def upsert(engine: Engine, rows: list[tuple[Any, ...]]) -> None:
    """Write rows made by `record_of` with `time_column_of(engine)`.

    The statement is compiled once and run with many parameter sets straight through the
    driver: SQLAlchemy's per-value type processing was a quarter of a processor's time at
    20,000 heartbeats a second, so the rows arrive already in the driver's terms.
    """
    sql, positional = _upsert_sql(engine.dialect)
    parameters: list[Any] = (
        rows if positional else [dict(zip(COLUMNS, row, strict=True)) for row in rows]
    )
    with engine.begin() as connection:
        connection.exec_driver_sql(sql, parameters)


def time_column_of(engine: Engine) -> TimeColumn:
    return _sqlite_time if engine.dialect.name == "sqlite" else _aware_time


COLUMNS = tuple(c.name for c in AttendanceRecord.__table__.columns)  # type: ignore[attr-defined]


@cache
def _upsert_sql(dialect: Dialect) -> tuple[str, bool]:
    """The statement's SQL, and whether its driver takes values by position (SQLite), in
    the table's order, rather than by name (psycopg)."""
    table = AttendanceRecord.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    statement = insert(table)
    latest = {c.name: statement.excluded[c.name] for c in table.columns if not c.primary_key}
    keys = ["session_code", "point_code"]
    compiled = statement.on_conflict_do_update(index_elements=keys, set_=latest).compile(
        dialect=dialect
    )
    if compiled.positiontup is None:
        return compiled.string, False
    order = tuple(compiled.positiontup)
    if order != COLUMNS:
        raise RuntimeError(f"upsert parameters {order} not in the table's order {COLUMNS}")
    return compiled.string, True


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
            except SQLAlchemyError as error:
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
            as_column = time_column_of(self._engine)
            now = as_column(time.time())
            await asyncio.to_thread(
                upsert, self._engine, [record_of(k, t, as_column, now) for k, t in batch.items()]
            )
        except SQLAlchemyError as error:
            log.warning("attendance records not written (%s); retrying", error)
            self._dirty = batch | self._dirty  # newer changes win
            return 0
        return len(batch)


def _aware_time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _sqlite_time(seconds: float | None) -> str | None:
    """What SQLAlchemy's SQLite DATETIME stores (UTC, no offset), so the ORM reads it back."""
    if seconds is None:
        return None
    # From a naive epoch: a third faster than an aware datetime made naive, twice per record.
    return (_NAIVE_EPOCH + timedelta(seconds=seconds)).isoformat(" ", "microseconds")


_NAIVE_EPOCH = datetime(1970, 1, 1)
