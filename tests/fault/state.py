"""What a refused request must leave untouched: the registry's rows and the records on the
topics."""

import asyncio
import sqlite3
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.topics import HEARTBEATS, WATERMARK_PREFIX, Topic
from devstack.services import ServiceProcess
from tests.fault.oracle import read_records

# The registry's own tables; the outbox is left out because the relay empties it on its own.
REGISTRY_TABLES = ("course", "broadcast", "point", "enrolment")
Rows = dict[str, list[tuple[object, ...]]]


def registration_db(registration: ServiceProcess) -> Path:
    """The SQLite file of a service started by `devstack.services`: its data dir holds the log
    dir and the database (`service_env`)."""
    return Path(registration.log_path).parent.parent / "registration.db"


def _read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)


def registry_rows(db: Path) -> Rows:
    """Every row of the registry's tables, in a stable order."""
    with _read_only(db) as connection:
        return {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in REGISTRY_TABLES
        }


def outbox_size(db: Path) -> int:
    with _read_only(db) as connection:
        return int(connection.execute("SELECT count(*) FROM outboxevent").fetchone()[0])


async def outbox_drained(db: Path, patience: float = 30.0) -> None:
    """Wait until the relay has published everything committed so far."""
    deadline = time.monotonic() + patience
    while await asyncio.to_thread(outbox_size, db):
        if time.monotonic() > deadline:
            raise AssertionError("the outbox relay never caught up")
        await asyncio.sleep(0.1)


async def records_published(bootstrap: str, topics: tuple[Topic, ...]) -> dict[str, int]:
    """Records ever written to each topic, leaving out the ingest's watermarks (they say the
    ingest is up, a few times a second, whatever anyone sends)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(t.name, p) for t in topics for p in range(t.partitions)]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    written = {t.name: sum(ends[tp] for tp in partitions if tp.topic == t.name) for t in topics}
    if HEARTBEATS in topics:
        records = await read_records(bootstrap, HEARTBEATS)
        written[HEARTBEATS.name] = sum(not _is_watermark(r.key) for r in records)
    return written


def _is_watermark(key: bytes | None) -> bool:
    return key is not None and key.startswith(WATERMARK_PREFIX)


async def every_record(bootstrap: str, topics: tuple[Topic, ...]) -> list[bytes]:
    """Each record of `topics` so far, key, value and headers run together: for a search."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(t.name, p) for t in topics for p in range(t.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[bytes] = []
        while await _behind(consumer, ends):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                found += [
                    b"\0".join([r.key or b"", r.value or b"", *(value for _, value in r.headers)])
                    for r in records
                ]
        return found
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for partition, end in ends.items():
        if await consumer.position(partition) < end:
            return True
    return False
