"""One partition's tracks: statuses only on visible changes, expiry by the ingest's watermarks,
and the monitor's own outages kept out of every point's silence."""

from attendance.clock import IngestClock
from attendance.domain import Beat, Liveness
from attendance.encoding import restored, snapshot, status
from attendance.quality import FROZEN, JUMP, OVER_CAPACITY, QualityRules
from attendance.tracker import Pending, Tracker
from contracts.codec import decode
from contracts.events import PointState, PointStatus

LIVENESS = Liveness(late_after=12, disconnected_after=30)


def beat(seq: int, at: float, learners: int = 10) -> Beat:
    return Beat(seq=seq, received_at=at, learners=learners)


def tracker(**kwargs: object) -> Tracker:
    clock = IngestClock(outage_after=1.0, gone_after=10.0)
    return Tracker(lambda _: LIVENESS, lambda _: 40, clock=clock, **kwargs)  # type: ignore[arg-type]


def states(pending: Pending) -> list[tuple[str, PointState]]:
    return sorted((key[1], change.track.state) for key, change in pending.latest.items())


def marks(t: Tracker, until: float, every: float = 0.25, start: float = 100.0) -> Pending:
    """The ingest proving it accepts from `start` to `until`, a watermark every `every` s."""
    pending = Pending()
    at = start
    while at <= until + 1e-9:
        t.on_watermark("ingest-1", at, False, pending)
        at += every
    return pending


def test_only_visible_changes_are_marked_visible() -> None:
    t, pending = tracker(), Pending()
    first = t.on_beat(("S1", "A"), beat(1, 100), pending)
    assert first is not None and first.visible
    same = t.on_beat(("S1", "A"), beat(2, 105), Pending())
    assert same is not None and not same.visible  # last_seen moved: changelog only
    assert t.on_beat(("S1", "A"), beat(2, 106), Pending()) is None  # a duplicate changes nothing
    fewer = t.on_beat(("S1", "A"), beat(3, 110, learners=9), Pending())
    assert fewer is not None and fewer.visible


def test_every_state_passed_through_before_a_commit_is_kept_in_order() -> None:
    t, pending = tracker(), Pending()
    t.on_beat(("S1", "A"), beat(1, 100, learners=5), pending)
    t.on_beat(("S1", "A"), beat(2, 101, learners=6), pending)  # a count: folds
    for at in (100.25 + 0.25 * n for n in range(160)):  # a backlog: late, then disconnected
        t.on_watermark("ingest-1", at, False, pending)
    assert [(k[1], track.state, track.learners) for k, track in pending.passed] == [
        ("A", PointState.CONNECTED, 6),
        ("A", PointState.LATE, 6),
    ]
    assert pending.latest[("S1", "A")].track.state is PointState.DISCONNECTED


def test_a_change_since_the_last_commit_stays_visible() -> None:
    t, pending = tracker(), Pending()
    t.on_beat(("S1", "A"), beat(1, 100), pending)
    t.on_beat(("S1", "A"), beat(2, 105), pending)  # invisible on its own
    assert pending.latest[("S1", "A")].visible and pending.latest[("S1", "A")].track.seq == 2


def test_expiry_follows_the_watermarks() -> None:
    t = tracker()
    t.on_beat(("S1", "A"), beat(1, 100), Pending())
    marks(t, 109.75)
    t.on_beat(("S1", "B"), beat(1, 110), Pending())
    assert states(marks(t, 111.75, start=110.0)) == []
    assert states(marks(t, 112.0, start=112.0)) == [("A", PointState.LATE)]
    assert states(marks(t, 140.0, start=112.25)) == [
        ("A", PointState.DISCONNECTED),
        ("B", PointState.DISCONNECTED),
    ]
    assert t.track("S1", "A").since == 130.0  # when it became disconnected, not when seen
    assert not marks(t, 150.0, start=140.25)


def test_without_watermarks_nothing_expires() -> None:
    t = tracker()
    t.on_beat(("S1", "A"), beat(1, 100), Pending())
    t.on_beat(("S1", "B"), beat(1, 100.5), Pending())
    t.on_beat(("S1", "B"), beat(2, 101), Pending())  # time passes in heartbeats, not in proof
    assert t.track("S1", "A").state is PointState.CONNECTED


def test_a_backlog_is_judged_in_its_own_time() -> None:
    t, pending = tracker(), Pending()
    # The processor was away for a minute: it reads what the ingest wrote meanwhile, in order.
    t.on_beat(("S1", "A"), beat(1, 100), pending)
    t.on_beat(("S1", "B"), beat(1, 100), pending)
    for seq, at in enumerate(range(105, 161, 5), start=2):
        marks(t, at - 0.25, start=at - 5)
        t.on_beat(("S1", "A"), beat(seq, at), pending)  # A kept beating; B had gone quiet
    assert t.track("S1", "A").state is PointState.CONNECTED
    assert t.track("S1", "A").reconnects == 0
    assert t.track("S1", "B").state is PointState.DISCONNECTED
    assert t.track("S1", "B").since == 130.0


def test_the_monitors_outage_is_no_points_silence() -> None:
    t, pending = tracker(), Pending()
    t.on_beat(("S1", "A"), beat(1, 100), pending)
    t.on_beat(("S1", "B"), beat(1, 100), pending)
    marks(t, 104.0)
    # Kafka away from 104 to 150: nothing lands. Then A's next heartbeat and the watermarks.
    back = Pending()
    t.on_beat(("S1", "A"), beat(2, 150.1), back)
    marks(t, 160.0, start=150.25)
    a, b = t.track("S1", "A"), t.track("S1", "B")
    assert (a.state, a.reconnects) == (PointState.CONNECTED, 0)
    # B: 4 s of silence before the outage, 1 s of it allowed as a pause, then from 150.1 on:
    # late after 12 s of that, at 157.1.
    assert b.state is PointState.LATE and b.since == 157.1
    assert b.last_seen == 100
    marks(t, 200.0, start=160.25)
    assert t.track("S1", "B").state is PointState.DISCONNECTED
    assert t.track("S1", "B").reconnects == 0


def test_a_heartbeat_after_an_outage_excuses_it_before_it_counts() -> None:
    t = tracker()
    t.on_beat(("S1", "A"), beat(1, 100), Pending())
    marks(t, 101.0)
    pending = Pending()
    # The first record after 40 s of outage is A's own heartbeat: no reconnect.
    t.on_beat(("S1", "A"), beat(2, 141.0), pending)
    assert t.track("S1", "A").reconnects == 0
    assert t.track("S1", "A").state is PointState.CONNECTED


def test_restored_tracks_expire_like_the_originals() -> None:
    original = tracker()
    original.on_beat(("S1", "A"), beat(1, 100, learners=12), Pending())
    key, track = restored(snapshot("S1", "A", original.track("S1", "A")))
    assert (key, track) == (("S1", "A"), original.track("S1", "A"))
    copy = tracker()
    copy.restore(key, track)
    assert states(marks(copy, 112.0)) == [("A", PointState.LATE)]
    assert decode(PointStatus, status("S1", "A", copy.track("S1", "A"))).learners == 12


def test_implausible_counts_are_flagged_not_rejected() -> None:
    t = tracker(rules=QualityRules(frozen_after_seconds=60))
    t.on_beat(("S1", "A"), beat(1, 100, learners=30), Pending())
    crowd = t.on_beat(("S1", "A"), beat(2, 105, learners=61), Pending())
    assert crowd is not None and crowd.visible
    assert crowd.track.flags == {OVER_CAPACITY, JUMP}
    calm = t.on_beat(("S1", "A"), beat(3, 110, learners=62), Pending())
    assert calm is not None and calm.track.flags == {OVER_CAPACITY}
    t.on_beat(("S1", "B"), beat(1, 100, learners=20), Pending())
    for seq in range(2, 15):
        t.on_beat(("S1", "B"), beat(seq, 100 + 5 * seq, learners=20), Pending())
    assert t.track("S1", "B").flags == {FROZEN}
    assert decode(PointStatus, status("S1", "B", t.track("S1", "B"))).flags == (FROZEN,)
