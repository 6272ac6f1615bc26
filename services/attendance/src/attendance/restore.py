"""Reading back the changelog partitions an instance has just been given."""

import time
from collections.abc import Iterable

from aiokafka import TopicPartition

from attendance.domain import Track
from attendance.encoding import restored
from attendance.tracker import TrackKey
from contracts.codec import ContractError
from contracts.topics import STATE_CHANGELOG
from servicekit.kafka import Record
from servicekit.reading import read_whole

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

    def apply(record: Record) -> None:
        _apply(found[record.partition], record.key, record.value)

    await read_whole(bootstrap, wanted, apply)
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
