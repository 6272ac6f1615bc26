"""Reading back the changelog partitions an instance has just been given."""

import gc
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from attendance.domain import Track
from attendance.encoding import restored
from attendance.tracker import TrackKey
from contracts.codec import ContractError
from contracts.topics import STATE_CHANGELOG

Restored = dict[int, dict[TrackKey, Track]]


async def read_changelog(bootstrap: str, partitions: Iterable[int]) -> tuple[Restored, float]:
    """The latest track of every key in `partitions`, read from the beginning to the end as of
    now, and how long that took. Only committed transactions count: what an instance decided
    and never committed (it was fenced, or failed) is not state. Unreadable records are
    skipped: the heartbeats replayed after the last commit rebuild what they held."""
    began = time.perf_counter()
    wanted = [TopicPartition(STATE_CHANGELOG.name, p) for p in partitions]
    found: Restored = {tp.partition: {} for tp in wanted}
    if not wanted:
        return found, 0.0
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    # Restoring allocates only objects that live on: the collector's passes over the growing
    # table would cost a third of the restore and free nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        consumer.assign(wanted)
        await consumer.seek_to_beginning(*wanted)
        ends = await consumer.end_offsets(wanted)
        remaining = {tp for tp in wanted if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
            for tp, records in batches.items():
                tracks = found[tp.partition]
                for record in records:
                    _apply(tracks, record.key, record.value)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        if collecting:
            gc.enable()
        await consumer.stop()
    return found, time.perf_counter() - began


def _apply(tracks: dict[TrackKey, Track], key: bytes | None, value: bytes | None) -> None:
    if value is None:
        if key is not None:
            session, _, point = key.decode().partition("/")
            tracks.pop((session, point), None)
        return
    try:
        track_key, track = restored(value)
    except ContractError:
        return
    tracks[track_key] = track
