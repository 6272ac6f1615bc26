"""Tracks as the records the processor writes (changelog snapshots and back, statuses), and
heartbeats as the processor reads them.

These are the processor's inner loop, so they go through msgspec structs that mirror the
contracts field for field (same names, order, constraints; `tests/unit/test_attendance_encoding.py`
holds them to the pydantic models): the JSON on the wire is the contract's, at a fraction of
pydantic's cost per record.
"""

import re
import sys
from datetime import UTC, datetime
from typing import Annotated, Literal, TypeVar

import msgspec

from attendance.domain import Beat, Track
from contracts.codec import ContractError, check_size
from contracts.events import CODE_PATTERN, PointState

# The same check as a whole-string match: msgspec's `pattern` searches, and Python's `$` lets a
# trailing newline through, which pydantic refuses (it is also a little cheaper).
_is_code = re.compile(CODE_PATTERN).fullmatch
Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Moment = Annotated[datetime, msgspec.Meta(tz=True)]


class LinkQuality(msgspec.Struct, frozen=True):
    bitrate_kbps: NonNegative | None = None
    packet_loss_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    rtt_ms: NonNegative | None = None


class HeartbeatRecord(msgspec.Struct, frozen=True, kw_only=True):
    """`contracts.events.Heartbeat`, checked the same way, fields in the same order."""

    event_type: Literal["attendance.heartbeat"] = "attendance.heartbeat"
    schema_version: Literal[1] = 1
    point_code: str  # a Code, checked by `heartbeat_of`
    session_code: str
    seq: Annotated[int, msgspec.Meta(ge=0)]
    sent_at: Moment
    received_at: Moment
    learners: Count
    link: LinkQuality | None = None
    leaving: bool = False


class TrackSnapshot(msgspec.Struct, frozen=True, kw_only=True):
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


class WatermarkRecord(msgspec.Struct, frozen=True, kw_only=True):
    """`contracts.events.IngestWatermark`, fields in the same order."""

    event_type: Literal["attendance.watermark"] = "attendance.watermark"
    schema_version: Literal[1] = 1
    ingest: str  # a Code, checked by `watermark_of`
    accepting_at: Moment
    final: bool = False


class MonitorClockRecord(msgspec.Struct, frozen=True, kw_only=True):
    """`contracts.events.MonitorClock`, fields in the same order."""

    event_type: Literal["attendance.monitor_clock"] = "attendance.monitor_clock"
    schema_version: Literal[1] = 1
    partition: int
    judged_until: datetime


class PointStatusRecord(msgspec.Struct, frozen=True, kw_only=True):
    """`contracts.events.PointStatus` as the processor writes it, fields in the same order."""

    event_type: Literal["attendance.point_status"] = "attendance.point_status"
    schema_version: Literal[1] = 1
    session_code: str
    point_code: str
    state: PointState
    learners: int
    since: datetime
    last_heartbeat_at: datetime | None
    reconnects: int
    flags: tuple[str, ...]
    first_connected_at: datetime | None
    present_seconds: float
    learner_seconds: float
    min_learners: int | None
    max_learners: int | None


# Lax like pydantic's JSON mode ("12" for 12, a number for a moment); unknown fields ignored.
_heartbeats = msgspec.json.Decoder(HeartbeatRecord, strict=False)
_snapshots = msgspec.json.Decoder(TrackSnapshot, strict=False)
_watermarks = msgspec.json.Decoder(WatermarkRecord, strict=False)
_encoder = msgspec.json.Encoder()


def heartbeat_of(data: bytes | None) -> tuple[tuple[str, str], Beat]:
    """The track key and the beat of a heartbeat record; ContractError if it is not one."""
    beat = _decode(_heartbeats, data, "Heartbeat")
    if not (_is_code(beat.point_code) and _is_code(beat.session_code)):
        raise ContractError("not a valid Heartbeat: a point or session code out of pattern")
    return (sys.intern(beat.session_code), beat.point_code), Beat(
        beat.seq, beat.received_at.timestamp(), beat.learners, beat.leaving
    )


def watermark_of(data: bytes | None) -> tuple[str, float, bool]:
    """The instance, moment and `final` of a watermark record; ContractError if it is not one."""
    mark = _decode(_watermarks, data, "IngestWatermark")
    if not _is_code(mark.ingest):
        raise ContractError("not a valid IngestWatermark: an ingest name out of pattern")
    return mark.ingest, mark.accepting_at.timestamp(), mark.final


def watermark_record(ingest: str, accepting_at: float, final: bool = False) -> bytes:
    return _encoder.encode(
        WatermarkRecord(ingest=ingest, accepting_at=_moment(accepting_at), final=final)
    )


def monitor_clock(partition: int, judged_until: float) -> bytes:
    return _encoder.encode(
        MonitorClockRecord(partition=partition, judged_until=_moment(judged_until))
    )


def json_bytes(value: object) -> bytes:
    """JSON of plain values (dicts, lists, numbers, strings, datetimes) in one call."""
    return _encoder.encode(value)


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
    return _encoder.encode(
        HeartbeatRecord(
            point_code=point_code,
            session_code=session_code,
            seq=seq,
            sent_at=sent_at,
            received_at=received_at,
            learners=learners,
            link=None if link is None else LinkQuality(**link),
            leaving=leaving,
        )
    )


def snapshot(session_code: str, point_code: str, track: Track) -> bytes:
    return _encoder.encode(
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
            flags=tuple(sorted(track.flags)),
            silent_since=track.silent_since,
        )
    )


def restored(data: bytes | None) -> tuple[tuple[str, str], Track]:
    saved = _decode(_snapshots, data, "TrackSnapshot")
    if not (_is_code(saved.point_code) and _is_code(saved.session_code)):
        raise ContractError("not a valid TrackSnapshot: a point or session code out of pattern")
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
    return _encoder.encode(
        PointStatusRecord(
            session_code=session_code,
            point_code=point_code,
            state=track.state,
            learners=track.learners,
            since=_moment(track.since),
            last_heartbeat_at=None if track.last_seen is None else _moment(track.last_seen),
            reconnects=track.reconnects,
            flags=tuple(sorted(track.flags)),
            first_connected_at=None if track.first_seen is None else _moment(track.first_seen),
            present_seconds=track.present_seconds,
            learner_seconds=track.learner_seconds,
            min_learners=track.min_learners,
            max_learners=track.max_learners,
        )
    )


_NO_FLAGS: frozenset[str] = frozenset()


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


S = TypeVar("S")


def _decode(decoder: msgspec.json.Decoder[S], data: bytes | None, what: str) -> S:
    if data is None:
        raise ContractError(f"empty record where a {what} was expected")
    check_size(data, what)
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as error:  # invalid JSON, or JSON that breaks the contract
        raise ContractError(f"not a valid {what}: {error}") from None
