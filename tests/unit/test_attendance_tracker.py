"""The tracker publishes a status only when a point's state or learner count changes."""

from datetime import UTC, datetime

from attendance.domain import Liveness
from attendance.tracker import Tracker
from contracts.events import Heartbeat, PointState


def heartbeat(point: str, seq: int, at: float, learners: int = 10) -> Heartbeat:
    moment = datetime.fromtimestamp(at, UTC)
    return Heartbeat(
        point_code=point,
        session_code="S1",
        seq=seq,
        sent_at=moment,
        received_at=moment,
        learners=learners,
    )


def test_statuses_only_on_visible_changes_and_expiry() -> None:
    tracker = Tracker(lambda _: Liveness(late_after=12, disconnected_after=30))
    first = tracker.on_heartbeats([heartbeat("A", 1, 100), heartbeat("B", 1, 100)])
    assert [(s.point_code, s.state) for s in first] == [
        ("A", PointState.CONNECTED),
        ("B", PointState.CONNECTED),
    ]
    assert tracker.on_heartbeats([heartbeat("A", 2, 105), heartbeat("A", 2, 106)]) == []
    assert [s.learners for s in tracker.on_heartbeats([heartbeat("B", 2, 110, learners=9)])] == [9]
    assert tracker.on_time(116) == []
    late = tracker.on_time(117.0)
    assert [(s.point_code, s.state) for s in late] == [("A", PointState.LATE)]
    gone = tracker.on_time(140.0)
    assert sorted((s.point_code, s.state) for s in gone) == [
        ("A", PointState.DISCONNECTED),
        ("B", PointState.DISCONNECTED),
    ]
    assert tracker.on_time(1_000.0) == []


def test_one_status_per_point_per_batch_carrying_the_latest_state() -> None:
    tracker = Tracker(lambda _: Liveness())
    statuses = tracker.on_heartbeats(
        [heartbeat("A", 1, 100, learners=5), heartbeat("A", 2, 101, learners=7)]
    )
    assert [(s.point_code, s.learners) for s in statuses] == [("A", 7)]
