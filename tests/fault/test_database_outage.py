"""Attendance's database (PostgreSQL) unavailable for 20 s while heartbeats
flow, with the processor killed (kill -9) in the middle of the outage. Offsets go on being
committed meanwhile, and that is safe: records are derived from the tracks, which the changelog
keeps, and a restored partition writes all its records again. Once the database is back the
records equal the oracle, the killed instance's unwritten ones included."""

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from devstack.kafka import Broker
from devstack.postgres import TempPostgres
from tests.conftest import Figures
from tests.e2e.helpers import eventually
from tests.fault.fleet import UNDER_LOAD, Fleet, Load, fault_plan, fleet_on, flowing, register
from tests.fault.oracle import (
    Oracle,
    agreement,
    committed_offsets,
    missing_from_topic,
    recompute,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fault, UNDER_LOAD]
SEED = 8_005
OUTAGE_SECONDS = 20.0  # the minute, shortened to keep CI time; see docs/reliability.md


@pytest.fixture
def database(postgres: TempPostgres) -> Iterator[tuple[TempPostgres, str]]:
    name = f"fault_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    try:
        yield postgres, name
    finally:
        set_available(postgres, name, True)
        postgres.drop_database(name)


@pytest.fixture
def fleet(broker: Broker, tmp_path: Path, database: tuple[TempPostgres, str]) -> Iterator[Fleet]:
    server, name = database
    env = {"ATTENDANCE_DATABASE_URL": server.url(name)}
    yield from fleet_on(broker, tmp_path, processor_env=env)


def set_available(server: TempPostgres, name: str, available: bool) -> None:
    """Open or shut the database: shut, every connection to it is cut and none is accepted."""
    with server.connect() as connection:
        connection.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(name), sql.SQL("true" if available else "false")
            )
        )
        if not available:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )


def stored_records(server: TempPostgres, name: str, session_code: str) -> dict[str, Any]:
    with server.connect(name) as connection:
        rows = connection.execute(
            "SELECT point_code, state, reconnects, learners, first_connected_at,"
            " last_heartbeat_at, connected_seconds FROM attendance_record"
            " WHERE session_code = %s",
            (session_code,),
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def record_differences(oracle: Oracle, stored: dict[str, Any]) -> dict[str, Any]:
    """Per point, (truth, stored) where the attendance record disagrees with the oracle."""
    differences = {}
    for code, truth in oracle.truths.items():
        expected = (
            truth.state,
            truth.reconnects,
            truth.learners,
            truth.first_seen,
            truth.last_seen,
            round(truth.present_seconds, 2),
        )
        row = stored.get(code)
        seen = None
        if row is not None:
            state, reconnects, learners, first, last, seconds = row
            seen = (state, reconnects, learners, _epoch(first), _epoch(last), round(seconds, 2))
        if seen is None or not _close(expected, seen):
            differences[code] = (expected, seen)
    return differences


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _close(expected: tuple[Any, ...], seen: tuple[Any, ...]) -> bool:
    # Timestamps and seconds go through floats and the database: equal to the millisecond.
    return all(
        abs(a - b) < 0.011 if isinstance(a, float) and isinstance(b, float) else a == b
        for a, b in zip(expected, seen, strict=True)
    )


async def test_a_database_outage_loses_no_attendance_record(
    broker: Broker, fleet: Fleet, database: tuple[TempPostgres, str], figures: Figures
) -> None:
    server, name = database
    plan = fault_plan("database")
    await asyncio.to_thread(fleet.start_all)
    points = await register(fleet, plan, SEED)
    load = Load(fleet.url("ingest"), plan.session_code, points, plan.heartbeat_interval_s)
    async with flowing(load):
        await asyncio.sleep(5)
        await asyncio.to_thread(set_available, server, name, False)
        down_since = time.monotonic()
        committed_before = sum((await committed_offsets(broker.bootstrap)).values())
        await asyncio.sleep(OUTAGE_SECONDS / 3)
        load.silent.update(p.code for p in points[:3])  # leave while nothing can be written
        await asyncio.to_thread(fleet.kill, "processor-0")
        began = time.monotonic()
        await asyncio.to_thread(fleet.start, "processor-0")
        restart = time.monotonic() - began
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_since)))
        committed_during = sum((await committed_offsets(broker.bootstrap)).values())
        await asyncio.to_thread(set_available, server, name, True)
        outage = time.monotonic() - down_since
        comparison = await agreement(broker.bootstrap, fleet.url("reporting"), plan.session_code)

    async def records_against_oracle() -> dict[str, Any]:
        # Recomputed each time: the points fall silent now, and late, then disconnected.
        oracle = await recompute(broker.bootstrap, plan.session_code)
        stored = await asyncio.to_thread(stored_records, server, name, plan.session_code)
        return record_differences(oracle, stored)

    # Written every 10 s: the records settle where the oracle is.
    await eventually(records_against_oracle, lambda differences: differences == {}, 30)
    settled = await asyncio.to_thread(stored_records, server, name, plan.session_code)
    missing = await missing_from_topic(broker.bootstrap, plan.session_code, load.accepted)
    figures(
        **load.figures(),
        found_in_kafka=len(load.accepted) - len(missing),
        outage_seconds=round(outage, 1),
        offsets_committed_during_outage=committed_during - committed_before,
        processor_restart_seconds=round(restart, 1),
        records=len(settled),
        record_differences=0,
        differences=comparison.differences,
    )
    assert missing == set()
    assert comparison.differences == 0
    assert len(settled) == len([p for p in points if not p.never_joins])
