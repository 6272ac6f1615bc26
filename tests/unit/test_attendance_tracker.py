"""One partition's tracks: statuses only on visible changes, expiry by the partition's clock."""

from attendance.domain import Beat, Liveness
from attendance.encoding import restored, snapshot, status
from attendance.quality import FROZEN, JUMP, OVER_CAPACITY, QualityRules
from attendance.tracker import PartitionClock, Tracker
from contracts.codec import decode
from contracts.events import PointState, PointStatus

LIVENESS = Liveness(late_after=12, disconnected_after=30)


def beat(seq: int, at: float, learners: int = 10) -> Beat:
    return Beat(seq=seq, received_at=at, learners=learners)


def caught_up_tracker(**kwargs: object) -> Tracker:
    return Tracker(lambda _: LIVENESS, lambda _: 40, grace=0.0, **kwargs)  # type: ignore[arg-type]


def states(changes: list) -> list[tuple[str, PointState]]:  # type: ignore[type-arg]
    return sorted((c.key[1], c.track.state) for c in changes)


def test_only_visible_changes_are_marked_visible() -> None:
    tracker = caught_up_tracker()
    first = tracker.on_beat(("S1", "A"), beat(1, 100))
    assert first is not None and first.visible
    same = tracker.on_beat(("S1", "A"), beat(2, 105))
    assert same is not None and not same.visible  # last_seen moved: changelog only
    assert tracker.on_beat(("S1", "A"), beat(2, 106)) is None  # a duplicate changes nothing
    fewer = tracker.on_beat(("S1", "A"), beat(3, 110, learners=9))
    assert fewer is not None and fewer.visible


def test_expiry_follows_the_wall_clock_when_caught_up() -> None:
    tracker = caught_up_tracker()
    tracker.on_beat(("S1", "A"), beat(1, 100))
    tracker.on_beat(("S1", "B"), beat(1, 110))
    assert tracker.on_time(111.9, caught_up=True) == []
    assert states(tracker.on_time(112.0, caught_up=True)) == [("A", PointState.LATE)]
    assert states(tracker.on_time(140.0, caught_up=True)) == [
        ("A", PointState.DISCONNECTED),
        ("B", PointState.DISCONNECTED),
    ]
    assert tracker.on_time(1_000.0, caught_up=True) == []


def test_a_backlog_never_turns_into_false_disconnects() -> None:
    tracker = caught_up_tracker()
    tracker.on_beat(("S1", "A"), beat(1, 100))
    tracker.on_beat(("S1", "B"), beat(1, 100))
    # The processor was away for a minute; heartbeats up to 160 wait in Kafka.
    assert tracker.on_time(160.0, caught_up=False) == []
    for seq, at in enumerate(range(105, 161, 5), start=2):
        tracker.on_beat(("S1", "A"), beat(seq, at))  # A kept beating; B had gone quiet
        tracker.on_time(160.0, caught_up=False)
    assert tracker.track("S1", "A").state is PointState.CONNECTED
    assert tracker.track("S1", "B").state is PointState.DISCONNECTED
    assert tracker.track("S1", "A").reconnects == 0


def test_the_clock_holds_back_by_the_grace_and_behind_by_the_data() -> None:
    clock = PartitionClock(grace=0.5)
    assert clock.now(100.0, caught_up=False) is None
    assert clock.now(100.0, caught_up=True) == 99.5
    clock.observe(90.0)
    assert clock.now(100.0, caught_up=False) == 90.0
    clock.observe(80.0)
    assert clock.now(100.0, caught_up=False) == 90.0


def test_restored_tracks_expire_like_the_originals() -> None:
    original = caught_up_tracker()
    original.on_beat(("S1", "A"), beat(1, 100, learners=12))
    key, track = restored(snapshot("S1", "A", original.track("S1", "A")))
    assert (key, track) == (("S1", "A"), original.track("S1", "A"))
    copy = caught_up_tracker()
    copy.restore(key, track)
    assert states(copy.on_time(112.0, caught_up=True)) == [("A", PointState.LATE)]
    assert decode(PointStatus, status("S1", "A", copy.track("S1", "A"))).learners == 12


def test_implausible_counts_are_flagged_not_rejected() -> None:
    tracker = caught_up_tracker(rules=QualityRules(frozen_after_seconds=60))
    tracker.on_beat(("S1", "A"), beat(1, 100, learners=30))
    crowd = tracker.on_beat(("S1", "A"), beat(2, 105, learners=61))
    assert crowd is not None and crowd.visible
    assert crowd.track.flags == {OVER_CAPACITY, JUMP}
    calm = tracker.on_beat(("S1", "A"), beat(3, 110, learners=62))
    assert calm is not None and calm.track.flags == {OVER_CAPACITY}
    tracker.on_beat(("S1", "B"), beat(1, 100, learners=20))
    for seq in range(2, 15):
        tracker.on_beat(("S1", "B"), beat(seq, 100 + 5 * seq, learners=20))
    assert tracker.track("S1", "B").flags == {FROZEN}
    assert decode(PointStatus, status("S1", "B", tracker.track("S1", "B"))).flags == (FROZEN,)
