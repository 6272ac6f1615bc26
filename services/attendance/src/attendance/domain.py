"""Connection state of a point in a session: pure decisions, no I/O.

Times are seconds since the epoch as the *server* saw them: liveness is never judged by the
point's own clock. Silence is measured from `silent_since`: the last heartbeat, or its answer
when the monitor was slow to give it (an agent sends its next heartbeat after the answer),
moved later by every stretch in which the monitor itself could not accept heartbeats (see
`attendance.clock`): the monitor's own slowness and outages are not the points' silence.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from contracts.events import PointState


@dataclass(frozen=True, slots=True)
class Liveness:
    """How long silence may last before a point is shown late, then disconnected; and until
    when attendance adds up. A point still beating after its session's end is still shown as
    it is, but its minutes, learner counts and reconnects stop there, so a report of an ended
    session stops moving."""

    late_after: float = 12.0
    disconnected_after: float = 30.0
    ends_at: float = math.inf


class Beat(NamedTuple):
    """What the state machine needs of one heartbeat (one per heartbeat: cheap to make)."""

    seq: int
    received_at: float
    learners: int
    leaving: bool = False
    # When the monitor answered it (Kafka stored it), if later than `received_at`.
    answered_at: float | None = None


class Track(NamedTuple):
    """Where one point stands in one session, and what its attendance adds up to so far.

    Immutable, and a named tuple rather than a frozen dataclass: a new track per heartbeat is
    the processor's inner loop, and a frozen dataclass pays a guarded `__setattr__` per field.
    """

    state: PointState = PointState.NEVER_CONNECTED
    seq: int = -1
    learners: int = 0
    last_seen: float | None = None
    since: float = 0.0
    reconnects: int = 0
    first_seen: float | None = None
    # Time present (connected or late) between heartbeats, and learners integrated over it.
    present_seconds: float = 0.0
    learner_seconds: float = 0.0
    min_learners: int | None = None
    max_learners: int | None = None
    # Whether the learner count ever changed since the first heartbeat (see attendance.quality).
    count_varied: bool = False
    flags: frozenset[str] = frozenset()
    # Where silence is measured from: `last_seen`, later by the monitor's own outages since.
    silent_since: float | None = None

    @property
    def present(self) -> bool:
        return self.state in PRESENT

    @property
    def average_learners(self) -> float:
        """Time-weighted average of learners while present (the last count before any time)."""
        if self.present_seconds > 0:
            return self.learner_seconds / self.present_seconds
        return float(self.learners if self.first_seen is not None else 0)


NEVER_CONNECTED = Track()
PRESENT = frozenset({PointState.CONNECTED, PointState.LATE})
_SILENT = frozenset({PointState.LATE, PointState.DISCONNECTED})


def on_beat(track: Track, beat: Beat, ends_at: float = math.inf) -> Track:
    """The track after a heartbeat; a duplicate or older heartbeat changes nothing. Only
    what happened by `ends_at` adds to the attendance."""
    # Unpacked once, and the new track built by position: reading the fields one by one and
    # building it with keywords were most of this function's time, once per heartbeat.
    seq, received_at, learners, leaving, answered_at = beat
    (
        was,
        last_seq,
        had,
        seen,
        since,
        reconnects,
        first_seen,
        present_seconds,
        learner_seconds,
        fewest,
        most,
        varied,
        flags,
        quiet,
    ) = track
    if seq <= last_seq:
        return track
    state = PointState.DISCONNECTED if leaving else PointState.CONNECTED
    counted = state is PointState.CONNECTED and received_at <= ends_at
    previous = received_at if seen is None else seen
    # Two ingest servers' clocks may disagree by a hair: silence is measured from the latest.
    last_seen = max(previous, received_at)
    gap = min(last_seen, ends_at) - min(previous, ends_at) if was in PRESENT else 0.0
    return Track(
        state,
        seq,
        learners,
        last_seen,
        since if state is was else received_at,
        reconnects + (counted and was in _SILENT),
        received_at if first_seen is None else first_seen,
        present_seconds + gap,
        learner_seconds + had * gap,
        _fold(min, fewest, learners, counted),
        _fold(max, most, learners, counted),
        varied or (first_seen is not None and counted and learners != had),
        flags,
        _latest(quiet, last_seen, answered_at),
    )


def on_heartbeat(track: Track, beat: Beat, liveness: Liveness) -> Track:
    """Time up to the heartbeat's arrival, then the heartbeat: the outcome does not depend on
    whether an expiry tick happened to run in between."""
    return on_beat(on_time(track, beat.received_at, liveness), beat, liveness.ends_at)


def on_time(track: Track, now: float, liveness: Liveness) -> Track:
    """The track once the clock reads `now`: silence makes connected late, then disconnected."""
    due = deadline(track, liveness)
    if due is None or now < due:
        return track
    quiet = silent_since(track)
    assert quiet is not None
    if now >= quiet + liveness.disconnected_after:
        return track._replace(
            state=PointState.DISCONNECTED, since=quiet + liveness.disconnected_after
        )
    return track._replace(state=PointState.LATE, since=quiet + liveness.late_after)


def deadline(track: Track, liveness: Liveness) -> float | None:
    """When silence next changes this track's state, if it ever does."""
    # `silent_since` inline: twice per heartbeat.
    quiet = track.last_seen if track.silent_since is None else track.silent_since
    if quiet is None:
        return None
    if track.state is PointState.CONNECTED:
        return quiet + min(liveness.late_after, liveness.disconnected_after)
    if track.state is PointState.LATE:
        return quiet + liveness.disconnected_after
    return None


def silent_since(track: Track) -> float | None:
    """Where the track's silence is measured from (a track saved before outages were taken
    out of silence has only its last heartbeat)."""
    return track.last_seen if track.silent_since is None else track.silent_since


def excused(track: Track, since: float, seconds: float) -> Track:
    """The track once `seconds` from `since` on are known to have been the monitor's own
    outage: a present point silent since before it gets that much longer before it is late;
    one silent only since within it (answered after the last evidence) no less than that."""
    quiet = silent_since(track)
    if track.state not in PRESENT or quiet is None or quiet >= since + seconds:
        return track
    return track._replace(silent_since=quiet + seconds if quiet <= since else since + seconds)


def held(track: Track, until: float) -> Track:
    """The track once a heartbeat of its point was refused, the monitor keeping the point
    waiting for that answer until `until`: the room spoke, and a present point's silence counts
    from its answer at the earliest, as from a heartbeat's (`Beat.answered_at`)."""
    quiet = silent_since(track)
    if track.state not in PRESENT or quiet is None or quiet >= until:
        return track
    return track._replace(silent_since=until)


def is_visible_change(before: Track, after: Track) -> bool:
    """Whether downstream must hear of it: state, learner count, reconnects and quality flags.

    Reconnects on their own too: a heartbeat after a silence the clock never expired (it was
    held back, the broker being away) goes from connected to connected, one reconnect more.
    """
    return (
        before.state is not after.state
        or before.learners != after.learners
        or before.reconnects != after.reconnects
        or before.flags != after.flags
    )


def _latest(silent_since: float | None, last_seen: float, answered_at: float | None) -> float:
    heard = last_seen if answered_at is None or answered_at < last_seen else answered_at
    return heard if silent_since is None or silent_since < heard else silent_since


def _fold(
    pick: Callable[[int, int], int], current: int | None, value: int, counted: bool
) -> int | None:
    if not counted:
        return current
    return value if current is None else pick(current, value)
