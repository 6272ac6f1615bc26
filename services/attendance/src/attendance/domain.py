"""Connection state of a point in a session (DESIGN §4): pure decisions, no I/O.

Times are seconds since the epoch as the *server* saw them: liveness is never judged by the
point's own clock.
"""

from dataclasses import dataclass, replace

from contracts.events import PointState


@dataclass(frozen=True, slots=True)
class Liveness:
    """How long silence may last before a point is shown late, then disconnected."""

    late_after: float = 12.0
    disconnected_after: float = 30.0


@dataclass(frozen=True, slots=True)
class Beat:
    """What the state machine needs of one heartbeat."""

    seq: int
    received_at: float
    learners: int
    leaving: bool = False


@dataclass(frozen=True, slots=True)
class Track:
    """Where one point stands in one session."""

    state: PointState = PointState.NEVER_CONNECTED
    seq: int = -1
    learners: int = 0
    last_seen: float | None = None
    since: float = 0.0
    reconnects: int = 0


NEVER_CONNECTED = Track()
_SILENT_STATES = (PointState.LATE, PointState.DISCONNECTED)


def on_beat(track: Track, beat: Beat) -> Track:
    """The track after a heartbeat; a duplicate or older heartbeat changes nothing."""
    if beat.seq <= track.seq:
        return track
    state = PointState.DISCONNECTED if beat.leaving else PointState.CONNECTED
    returning = track.state in _SILENT_STATES and state is PointState.CONNECTED
    return Track(
        state=state,
        seq=beat.seq,
        learners=beat.learners,
        last_seen=beat.received_at,
        since=track.since if state is track.state else beat.received_at,
        reconnects=track.reconnects + returning,
    )


def on_time(track: Track, now: float, liveness: Liveness) -> Track:
    """The track once the clock reads `now`: silence makes connected late, then disconnected."""
    due = deadline(track, liveness)
    if due is None or now < due:
        return track
    assert track.last_seen is not None
    if now >= track.last_seen + liveness.disconnected_after:
        return replace(
            track,
            state=PointState.DISCONNECTED,
            since=track.last_seen + liveness.disconnected_after,
        )
    return replace(track, state=PointState.LATE, since=track.last_seen + liveness.late_after)


def deadline(track: Track, liveness: Liveness) -> float | None:
    """When silence next changes this track's state, if it ever does."""
    if track.last_seen is None:
        return None
    if track.state is PointState.CONNECTED:
        return track.last_seen + min(liveness.late_after, liveness.disconnected_after)
    if track.state is PointState.LATE:
        return track.last_seen + liveness.disconnected_after
    return None


def is_visible_change(before: Track, after: Track) -> bool:
    """Whether downstream must hear of it: only state and learner count matter to them."""
    return before.state is not after.state or before.learners != after.learners
