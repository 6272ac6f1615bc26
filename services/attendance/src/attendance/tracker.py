"""The tracks of one partition of `attendance.heartbeats`, its clock, and its deadlines."""

from collections.abc import Callable
from typing import NamedTuple

from attendance.domain import (
    NEVER_CONNECTED,
    Beat,
    Liveness,
    Track,
    deadline,
    is_visible_change,
    on_heartbeat,
    on_time,
)
from attendance.quality import QualityRules, flagged
from attendance.timers import DeadlineWheel

DEFAULT_RULES = QualityRules()
TrackKey = tuple[str, str]  # (session code, point code)
LivenessOf = Callable[[str], Liveness]
ExpectedOf = Callable[[str], int]


class Change(NamedTuple):
    """A track that changed; `visible` when downstream (the status topic) must hear of it."""

    key: TrackKey
    track: Track
    visible: bool


class PartitionClock:
    """The time expiry is judged by in one partition.

    While the partition is caught up, wall time less a grace for heartbeats still in flight.
    While it is behind (a restart, a rebalance, a burst), never later than the newest heartbeat
    processed: silence is only believed once the backlog that might break it has been read.
    """

    def __init__(self, grace: float) -> None:
        self._grace = grace
        self._newest: float | None = None

    def observe(self, received_at: float) -> None:
        self._newest = received_at if self._newest is None else max(self._newest, received_at)

    def now(self, wall: float, caught_up: bool) -> float | None:
        if caught_up:
            return wall - self._grace
        return None if self._newest is None else min(wall - self._grace, self._newest)


class Tracker:
    def __init__(
        self,
        liveness_of: LivenessOf,
        expected_of: ExpectedOf = lambda _: 0,
        *,
        rules: QualityRules = DEFAULT_RULES,
        grace: float = 0.5,
    ) -> None:
        self._liveness_of = liveness_of
        self._expected_of = expected_of
        self._rules = rules
        self._tracks: dict[TrackKey, Track] = {}
        self._wheel: DeadlineWheel[TrackKey] = DeadlineWheel()
        self.clock = PartitionClock(grace)

    def __len__(self) -> int:
        return len(self._tracks)

    def tracks(self) -> dict[TrackKey, Track]:
        return self._tracks

    def track(self, session_code: str, point_code: str) -> Track:
        return self._tracks.get((session_code, point_code), NEVER_CONNECTED)

    def restore(self, key: TrackKey, track: Track) -> None:
        """Take a track back from the changelog, with its deadline."""
        self._tracks[key] = track
        self._wheel.schedule(key, deadline(track, self._liveness_of(key[0])))
        if track.last_seen is not None:
            self.clock.observe(track.last_seen)

    def on_beat(self, key: TrackKey, beat: Beat) -> Change | None:
        """Apply one heartbeat; None when it changes nothing (a duplicate, an older one)."""
        self.clock.observe(beat.received_at)
        before = self._tracks.get(key, NEVER_CONNECTED)
        liveness = self._liveness_of(key[0])
        moved = on_heartbeat(before, beat, liveness)
        if moved is before:
            return None
        after = flagged(before, moved, self._expected_of(key[1]), self._rules)
        return Change(key, after, self._store(key, before, after, liveness))

    def on_time(self, wall: float, caught_up: bool) -> list[Change]:
        """Expire what the partition's clock says has been silent too long."""
        now = self.clock.now(wall, caught_up)
        if now is None:
            return []
        changes = []
        for key in self._wheel.pop_due(now):
            before = self._tracks[key]
            liveness = self._liveness_of(key[0])
            after = on_time(before, now, liveness)
            changes.append(Change(key, after, self._store(key, before, after, liveness)))
        return changes

    def _store(self, key: TrackKey, before: Track, after: Track, liveness: Liveness) -> bool:
        self._tracks[key] = after
        self._wheel.schedule(key, deadline(after, liveness))
        return is_visible_change(before, after)
