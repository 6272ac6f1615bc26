"""Tracks as the records the processor writes: changelog snapshots (and back), statuses."""

from datetime import UTC, datetime
from typing import Literal

from attendance.domain import Track
from contracts.codec import decode, encode
from contracts.events import Code, Event, PointState, PointStatus


class TrackSnapshot(Event):
    """A point's track in a session as the processor last saw it (attendance.state-changelog)."""

    event_type: Literal["attendance.track"] = "attendance.track"
    schema_version: Literal[1] = 1
    session_code: Code
    point_code: Code
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


def snapshot(session_code: str, point_code: str, track: Track) -> bytes:
    return encode(
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
        )
    )


def restored(data: bytes) -> tuple[tuple[str, str], Track]:
    saved = decode(TrackSnapshot, data)
    track = Track(
        state=saved.state,
        seq=saved.seq,
        learners=saved.learners,
        last_seen=saved.last_seen,
        since=saved.since,
        reconnects=saved.reconnects,
        first_seen=saved.first_seen,
        present_seconds=saved.present_seconds,
        learner_seconds=saved.learner_seconds,
        min_learners=saved.min_learners,
        max_learners=saved.max_learners,
        count_varied=saved.count_varied,
        flags=frozenset(saved.flags),
    )
    return (saved.session_code, saved.point_code), track


def status(session_code: str, point_code: str, track: Track) -> PointStatus:
    return PointStatus(
        session_code=session_code,
        point_code=point_code,
        state=track.state,
        learners=track.learners,
        since=datetime.fromtimestamp(track.since, UTC),
        last_heartbeat_at=_moment(track.last_seen),
        reconnects=track.reconnects,
        flags=tuple(sorted(track.flags)),
        first_connected_at=_moment(track.first_seen),
        present_seconds=track.present_seconds,
        learner_seconds=track.learner_seconds,
        min_learners=track.min_learners,
        max_learners=track.max_learners,
    )


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)
