"""The connection state machine of DESIGN §4, against a reference read from the design."""

from hypothesis import given
from hypothesis import strategies as st

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
from contracts.events import PointState

LIVENESS = Liveness(late_after=12.0, disconnected_after=30.0)


def test_first_heartbeat_connects_without_counting_a_reconnect() -> None:
    track = on_beat(NEVER_CONNECTED, Beat(seq=1, received_at=100.0, learners=25))
    assert track.state is PointState.CONNECTED
    assert (track.learners, track.since, track.reconnects) == (25, 100.0, 0)


def test_duplicate_and_older_heartbeats_change_nothing() -> None:
    track = on_beat(NEVER_CONNECTED, Beat(seq=5, received_at=100.0, learners=25))
    assert on_beat(track, Beat(seq=5, received_at=101.0, learners=30)) is track
    assert on_beat(track, Beat(seq=4, received_at=102.0, learners=30)) is track


def test_silence_makes_a_point_late_then_disconnected() -> None:
    track = on_beat(NEVER_CONNECTED, Beat(seq=1, received_at=100.0, learners=25))
    assert on_time(track, 111.9, LIVENESS) is track
    late = on_time(track, 112.0, LIVENESS)
    assert (late.state, late.since) == (PointState.LATE, 112.0)
    gone = on_time(late, 130.0, LIVENESS)
    assert (gone.state, gone.since) == (PointState.DISCONNECTED, 130.0)
    assert deadline(gone, LIVENESS) is None


def test_a_point_silent_past_both_limits_at_once_is_disconnected_when_it_went() -> None:
    track = on_beat(NEVER_CONNECTED, Beat(seq=1, received_at=100.0, learners=25))
    gone = on_time(track, 500.0, LIVENESS)
    assert (gone.state, gone.since) == (PointState.DISCONNECTED, 130.0)


def test_returning_after_silence_is_a_counted_reconnect() -> None:
    track = on_beat(NEVER_CONNECTED, Beat(seq=1, received_at=100.0, learners=25))
    gone = on_time(track, 131.0, LIVENESS)
    back = on_beat(gone, Beat(seq=2, received_at=140.0, learners=20))
    assert (back.state, back.reconnects, back.since, back.learners) == (
        PointState.CONNECTED,
        1,
        140.0,
        20,
    )


def test_leaving_disconnects_at_once() -> None:
    track = on_beat(NEVER_CONNECTED, Beat(seq=1, received_at=100.0, learners=25))
    left = on_beat(track, Beat(seq=2, received_at=104.0, learners=0, leaving=True))
    assert (left.state, left.since) == (PointState.DISCONNECTED, 104.0)


def test_only_state_and_learners_are_visible_changes() -> None:
    track = on_beat(NEVER_CONNECTED, Beat(seq=1, received_at=100.0, learners=25))
    same = on_beat(track, Beat(seq=2, received_at=105.0, learners=25))
    assert not is_visible_change(track, same)
    assert is_visible_change(same, on_beat(same, Beat(seq=3, received_at=110.0, learners=24)))


# A heartbeat arriving `gap` seconds after the previous event, with a sequence number that may
# repeat or go backwards.
events = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=40.0),
        st.integers(min_value=0, max_value=30),
        st.integers(min_value=0, max_value=200),
        st.booleans(),
    ),
    max_size=40,
)


def reference_state(accepted: list[Beat], now: float) -> PointState:
    """DESIGN §4 read literally, from the accepted heartbeats alone."""
    if not accepted:
        return PointState.NEVER_CONNECTED
    last = accepted[-1]
    if last.leaving or now >= last.received_at + LIVENESS.disconnected_after:
        return PointState.DISCONNECTED
    late = now >= last.received_at + LIVENESS.late_after
    return PointState.LATE if late else PointState.CONNECTED


@given(events, st.floats(min_value=0.0, max_value=60.0))
def test_state_always_matches_the_design(
    heartbeats: list[tuple[float, int, int, bool]], final_gap: float
) -> None:
    track: Track = NEVER_CONNECTED
    now = 1_000.0
    accepted: list[Beat] = []
    for gap, seq, learners, leaving in heartbeats:
        now += gap
        track = on_time(track, now, LIVENESS)
        beat = Beat(seq=seq, received_at=now, learners=learners, leaving=leaving)
        if seq > (accepted[-1].seq if accepted else -1):
            accepted.append(beat)
        track = on_beat(track, beat)
        assert track.state is reference_state(accepted, now)
    now += final_gap
    track = on_time(track, now, LIVENESS)
    assert track.state is reference_state(accepted, now)
    assert track.learners == (accepted[-1].learners if accepted else 0)
    assert track.seq == (accepted[-1].seq if accepted else -1)
