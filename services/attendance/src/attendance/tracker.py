"""Every track this instance owns, and the statuses to publish as heartbeats and time arrive."""

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from attendance.domain import (
    NEVER_CONNECTED,
    Beat,
    Liveness,
    Track,
    deadline,
    is_visible_change,
    on_beat,
    on_time,
)
from attendance.timers import DeadlineWheel
from contracts.events import Heartbeat, PointStatus

TrackKey = tuple[str, str]  # (session code, point code)
LivenessOf = Callable[[str], Liveness]


class Tracker:
    def __init__(self, liveness_of: LivenessOf) -> None:
        self._liveness_of = liveness_of
        self._tracks: dict[TrackKey, Track] = {}
        self._wheel: DeadlineWheel[TrackKey] = DeadlineWheel()

    def __len__(self) -> int:
        return len(self._tracks)

    def track(self, session_code: str, point_code: str) -> Track:
        return self._tracks.get((session_code, point_code), NEVER_CONNECTED)

    def on_heartbeats(self, heartbeats: Iterable[Heartbeat]) -> list[PointStatus]:
        changed: dict[TrackKey, None] = {}  # ordered set: one status per key, its latest
        for heartbeat in heartbeats:
            key = (heartbeat.session_code, heartbeat.point_code)
            beat = Beat(
                seq=heartbeat.seq,
                received_at=heartbeat.received_at.timestamp(),
                learners=heartbeat.learners,
                leaving=heartbeat.leaving,
            )
            if self._advance(key, on_beat(self.track(*key), beat)):
                changed[key] = None
        return [_status(key, self._tracks[key]) for key in changed]

    def on_time(self, now: float) -> list[PointStatus]:
        statuses = []
        for key in self._wheel.pop_due(now):
            if self._advance(key, on_time(self._tracks[key], now, self._liveness_of(key[0]))):
                statuses.append(_status(key, self._tracks[key]))
        return statuses

    def _advance(self, key: TrackKey, after: Track) -> bool:
        """Store the new track and its next deadline; whether downstream must hear of it."""
        before = self.track(*key)
        if after is before:
            return False
        self._tracks[key] = after
        self._wheel.schedule(key, deadline(after, self._liveness_of(key[0])))
        return is_visible_change(before, after)


def _status(key: TrackKey, track: Track) -> PointStatus:
    return PointStatus(
        session_code=key[0],
        point_code=key[1],
        state=track.state,
        learners=track.learners,
        since=datetime.fromtimestamp(track.since, UTC),
        last_heartbeat_at=(
            None if track.last_seen is None else datetime.fromtimestamp(track.last_seen, UTC)
        ),
        reconnects=track.reconnects,
    )
