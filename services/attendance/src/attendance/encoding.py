"""Tracks as the records the processor writes (changelog snapshots and back, statuses), and
heartbeats and watermarks as the processor reads them, through the msgspec mirrors of the
contracts (`contracts.wire`): the processor's inner loop.
"""

import sys
from datetime import UTC, datetime
from typing import Literal

import msgspec

from attendance.domain import Beat, Track
from contracts.codec import ContractError
from contracts.events import PointState
from contracts.wire import (
    HeartbeatRecord,
    LinkQualityRecord,
    MonitorClockRecord,
    PointStatusRecord,
    WatermarkRecord,
    encode_json,
    is_code,
    read_heartbeat,
    read_watermark,
    reader,
)


class TrackSnapshot(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A point's track in a session as the processor last saw it (attendance.state-changelog)."""

    event_type: Literal["attendance.track"] = "attendance.track"
    schema_version: Literal[1] = 1
    session_code: str  # Codes, checked by `restored`
    point_code: str
    state: PointState
    seq: int
    learners: int
    last_seen: float | None
    since: float
    reconnects: int
    first_seen: float | None = None
    present_seconds: float = 0.0
    learner_seconds: float = 0.0
    min_learners: int | None = None
    max_learners: int | None = None
    count_varied: bool = False
    flags: tuple[str, ...] = ()
    silent_since: float | None = None


_restore = reader(TrackSnapshot, "TrackSnapshot")


def heartbeat_of(
    data: bytes | None, answered_at: float | None = None
) -> tuple[tuple[str, str], Beat]:
    """The track key and the beat of a heartbeat record (answered at `answered_at`, when
    known); ContractError if it is not one."""
    beat = read_heartbeat(data)
    if not (is_code(beat.point_code) and is_code(beat.session_code)):
        raise ContractError("not a valid Heartbeat: a point or session code out of pattern")
    return (sys.intern(beat.session_code), beat.point_code), Beat(
        beat.seq, beat.received_at.timestamp(), beat.learners, beat.leaving, answered_at
    )


def watermark_of(data: bytes | None) -> tuple[str, float, bool]:
    """The instance, moment and `final` of a watermark record; ContractError if it is not one."""
    mark = read_watermark(data)
    if not is_code(mark.ingest):
        raise ContractError("not a valid IngestWatermark: an ingest name out of pattern")
    return mark.ingest, mark.accepting_at.timestamp(), mark.final


def watermark_record(ingest: str, accepting_at: float, final: bool = False) -> bytes:
    return encode_json(
        WatermarkRecord(ingest=ingest, accepting_at=_instant(accepting_at), final=final)
    )


def monitor_clock(partition: int, judged_until: float) -> bytes:
    return encode_json(MonitorClockRecord(partition=partition, judged_until=_instant(judged_until)))


def heartbeat_record(
    point_code: str,
    session_code: str,
    seq: int,
    sent_at: datetime,
    received_at: datetime,
    learners: int,
    link: dict[str, float | None] | None,
    leaving: bool,
) -> bytes:
    """The record of an accepted heartbeat, as `contracts.codec.encode` would write it."""
    return encode_json(
        HeartbeatRecord(
            point_code=point_code,
            session_code=session_code,
            seq=seq,
            sent_at=sent_at,
            received_at=received_at,
            learners=learners,
            link=None if link is None else LinkQualityRecord(**link),
            leaving=leaving,
        )
    )


def snapshot(session_code: str, point_code: str, track: Track) -> bytes:
    # Field by field rather than through `track._asdict()`: a dict a track was a third of this.
    return encode_json(
        TrackSnapshot(
            session_code=session_code,
            point_code=point_code,
            state=track.state,
            seq=track.seq,
            learners=track.learners,
            last_seen=track.last_seen,
            since=track.since,
            reconnects=track.reconnects,
            first_seen=track.first_seen,
            present_seconds=track.present_seconds,
            learner_seconds=track.learner_seconds,
            min_learners=track.min_learners,
            max_learners=track.max_learners,
            count_varied=track.count_varied,
            flags=tuple(sorted(track.flags)) if track.flags else (),
            silent_since=track.silent_since,
        )
    )


def restored(data: bytes | None) -> tuple[tuple[str, str], Track]:
    saved = _restore(data)
    if not (is_code(saved.point_code) and is_code(saved.session_code)):
        raise ContractError("not a valid TrackSnapshot: a point or session code out of pattern")
    # Field by field, by position: through `Track._fields` and `_replace` it was most of a
    # restore's time, once per point.
    track = Track(
        saved.state,
        saved.seq,
        saved.learners,
        saved.last_seen,
        saved.since,
        saved.reconnects,
        saved.first_seen,
        saved.present_seconds,
        saved.learner_seconds,
        saved.min_learners,
        saved.max_learners,
        saved.count_varied,
        frozenset(saved.flags) if saved.flags else _NO_FLAGS,
        saved.silent_since,
    )
    # Every track of a session holds the same code: one string for all of them.
    return (sys.intern(saved.session_code), saved.point_code), track


def status(session_code: str, point_code: str, track: Track) -> bytes:
    """The `contracts.events.PointStatus` record of a track."""
    return encode_json(
        PointStatusRecord(
            session_code=session_code,
            point_code=point_code,
            state=track.state,
            learners=track.learners,
            since=_instant(track.since),
            last_heartbeat_at=None if track.last_seen is None else _instant(track.last_seen),
            reconnects=track.reconnects,
            flags=tuple(sorted(track.flags)) if track.flags else (),
            first_connected_at=None if track.first_seen is None else _instant(track.first_seen),
            present_seconds=track.present_seconds,
            learner_seconds=track.learner_seconds,
            min_learners=track.min_learners,
            max_learners=track.max_learners,
        )
    )


_NO_FLAGS: frozenset[str] = frozenset()


def _instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
