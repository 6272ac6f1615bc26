"""The tracks of one partition of `attendance.heartbeats`, its clock, and its deadlines.

Pure: heartbeats and watermarks in, the changed tracks out (into a pending table the caller
writes to Kafka at its next commit).
"""

from collections.abc import Callable
from typing import NamedTuple

from attendance.clock import Gap, IngestClock
from attendance.domain import (
    NEVER_CONNECTED,
    Beat,
    Liveness,
    Track,
    deadline,
    excused,
    held,
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


class Pending:
    """Changes since the last commit: per track the latest (visible if any of them was), and
    every state a track passed through on the way. A learner count that changed twice needs
    only its latest; a point that went late and then disconnected before the commit (a
    processor catching up) must still show the desk both transitions, in order."""

    def __init__(self) -> None:
        self.latest: dict[TrackKey, Change] = {}
        self.passed: list[tuple[TrackKey, Track]] = []

    def __bool__(self) -> bool:
        return bool(self.latest)

    def put(self, change: Change) -> Change:
        earlier = self.latest.get(change.key)
        if earlier is not None and earlier.visible:
            if not change.visible:
                change = change._replace(visible=True)
            elif earlier.track.state is not change.track.state:
                self.passed.append((earlier.key, earlier.track))
        self.latest[change.key] = change
        return change


class Tracker:
    def __init__(
        self,
        liveness_of: LivenessOf,
        expected_of: ExpectedOf = lambda _: 0,
        *,
        clock: IngestClock,
        rules: QualityRules = DEFAULT_RULES,
    ) -> None:
        self._liveness_of = liveness_of
        self._expected_of = expected_of
        self._rules = rules
        self._tracks: dict[TrackKey, Track] = {}
        self._wheel: DeadlineWheel[TrackKey] = DeadlineWheel()
        self.clock = clock

    def tracks(self) -> dict[TrackKey, Track]:
        return self._tracks

    def track(self, session_code: str, point_code: str) -> Track:
        return self._tracks.get((session_code, point_code), NEVER_CONNECTED)

    def restore(self, key: TrackKey, track: Track) -> None:
        """Take a track back from the changelog, with its deadline."""
        self._tracks[key] = track
        self._wheel.schedule(key, deadline(track, self._liveness_of(key[0])))

    def on_beat(self, key: TrackKey, beat: Beat, pending: Pending) -> Change | None:
        """Apply one heartbeat; None when it changes nothing (a duplicate, an older one)."""
        gap = self.clock.stamp(beat.received_at)
        if gap is not None:
            self._excuse(gap, pending)
        before = self._tracks.get(key, NEVER_CONNECTED)
        liveness = self._liveness_of(key[0])
        moved = on_heartbeat(before, beat, liveness)
        if moved is before:
            return None
        after = flagged(before, moved, self._expected_of(key[1]), self._rules)
        return self._store(key, before, after, liveness, pending)

    def on_refused(self, key: TrackKey, until: float, pending: Pending) -> None:
        """A heartbeat of the point was refused, its answer given by `until`: not taken, but
        no silence of the point's before then."""
        before = self._tracks.get(key)
        if before is None:
            return
        after = held(before, until)
        if after is not before:
            self._store(key, before, after, self._liveness_of(key[0]), pending)

    def on_watermark(self, ingest: str, at: float, final: bool, pending: Pending) -> None:
        """Apply an ingest's watermark: excuse the outage it ends, expire what fell silent."""
        gap, moved = self.clock.watermark(ingest, at, final)
        if gap is not None:
            self._excuse(gap, pending)
        now = self.clock.now
        if not moved or now is None:
            return
        for key in self._wheel.pop_due(now):
            before = self._tracks[key]
            liveness = self._liveness_of(key[0])
            self._store(key, before, on_time(before, now, liveness), liveness, pending)

    def _excuse(self, gap: Gap, pending: Pending) -> None:
        """The monitor accepted nothing for a while: that is no point's silence."""
        for key in self._wheel.scheduled():
            before = self._tracks[key]
            after = excused(before, gap.since, gap.seconds)
            if after is not before:
                self._store(key, before, after, self._liveness_of(key[0]), pending)

    def _store(
        self, key: TrackKey, before: Track, after: Track, liveness: Liveness, pending: Pending
    ) -> Change:
        self._tracks[key] = after
        self._wheel.schedule(key, deadline(after, liveness))
        return pending.put(Change(key, after, is_visible_change(before, after)))
