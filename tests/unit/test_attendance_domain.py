"""The connection state machine, against a reference read from docs/architecture.md."""

import math
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attendance.domain import (
    NEVER_CONNECTED,
    Beat,
    Liveness,
    Track,
    deadline,
    excused,
    held,
    is_visible_change,
    on_beat,
    on_heartbeat,
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


def test_attendance_stops_adding_up_at_the_end_of_the_session() -> None:
    """Ends at 110: the point is still shown as it is after that, but its figures stop."""
    ending = replace(LIVENESS, ends_at=110.0)
    track = on_heartbeat(NEVER_CONNECTED, Beat(seq=1, received_at=100.0, learners=25), ending)
    track = on_heartbeat(track, Beat(seq=2, received_at=105.0, learners=20), ending)
    after = on_heartbeat(track, Beat(seq=3, received_at=115.0, learners=40), ending)
    assert (after.state, after.learners) == (PointState.CONNECTED, 40)
    assert (after.present_seconds, after.learner_seconds) == (10.0, 5 * 25 + 5 * 20)
    assert (after.min_learners, after.max_learners) == (20, 25)
    gone = on_time(after, 150.0, ending)
    back = on_heartbeat(gone, Beat(seq=4, received_at=151.0, learners=30), ending)
    assert (back.state, back.reconnects, back.present_seconds) == (PointState.CONNECTED, 0, 10.0)


def test_leaving_disconnects_at_once() -> None:
    track = on_beat(NEVER_CONNECTED, Beat(seq=1, received_at=100.0, learners=25))
    left = on_beat(track, Beat(seq=2, received_at=104.0, learners=0, leaving=True))
    assert (left.state, left.since) == (PointState.DISCONNECTED, 104.0)


def test_only_state_and_learners_are_visible_changes() -> None:
    track = on_beat(NEVER_CONNECTED, Beat(seq=1, received_at=100.0, learners=25))
    same = on_beat(track, Beat(seq=2, received_at=105.0, learners=25))
    assert not is_visible_change(track, same)
    assert is_visible_change(same, on_beat(same, Beat(seq=3, received_at=110.0, learners=24)))


def test_a_reconnect_within_one_heartbeat_is_a_visible_change() -> None:
    # The clock was held back (broker away): the silence is only seen with the next heartbeat.
    track = on_beat(NEVER_CONNECTED, Beat(seq=1, received_at=100.0, learners=25))
    back = on_heartbeat(track, Beat(seq=2, received_at=150.0, learners=25), LIVENESS)
    assert (back.state, back.reconnects) == (PointState.CONNECTED, 1)
    assert is_visible_change(track, back)


@pytest.mark.parametrize(
    ("answered_at", "silent_since"),
    [
        (None, 160.0),  # heard before the outage: its whole length more
        (105.0, 165.0),  # answered before it too
        (130.0, 170.0),  # answered within it: silent no earlier than the outage's end
        (175.0, 175.0),  # answered after it: nothing to excuse
    ],
)
def test_an_outage_is_no_point_silence(answered_at: float | None, silent_since: float) -> None:
    """The monitor accepted nothing for 60 s from 110 on (less the outage allowance)."""
    track = on_beat(NEVER_CONNECTED, Beat(1, 100.0, 25, answered_at=answered_at))
    assert excused(track, since=110.0, seconds=60.0).silent_since == silent_since


def test_a_refused_heartbeat_moves_the_silence_to_its_answer() -> None:
    """Refused at 106 (the monitor kept the point waiting for its answer until then): a point
    heard at 100 is late 12 s after the answer, not after the heartbeat."""
    track = held(on_beat(NEVER_CONNECTED, Beat(1, 100.0, 25)), until=106.0)
    assert track.silent_since == 106.0
    assert on_time(track, 117.9, LIVENESS).state is PointState.CONNECTED
    assert on_time(track, 118.0, LIVENESS).state is PointState.LATE
    assert deadline(track, LIVENESS) == 118.0


def test_a_refused_heartbeat_keeps_a_late_point_late_and_puts_off_its_disconnection() -> None:
    heard = on_beat(NEVER_CONNECTED, Beat(1, 100.0, 25, answered_at=108.0))
    assert held(heard, until=106.0) is heard  # its silence already starts later
    late = held(on_time(heard, 121.0, LIVENESS), until=125.0)  # late before it was read
    assert (late.state, deadline(late, LIVENESS)) == (PointState.LATE, 155.0)
    gone = on_time(heard, 140.0, LIVENESS)
    assert held(gone, until=145.0) is gone  # a heartbeat, not a refusal, brings it back
    assert held(NEVER_CONNECTED, until=125.0) is NEVER_CONNECTED


# A heartbeat arriving `gap` seconds after the previous event, with a sequence number that may
# repeat or go backwards (duplicates, reordering), a learner count, maybe the leaving flag, and
# how long the monitor took to answer it (Kafka slow to store it; within the ingest's timeout).
events = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=40.0),
        st.integers(min_value=0, max_value=30),
        st.integers(min_value=0, max_value=200),
        st.booleans(),
        st.sampled_from([0.0, 0.0, 0.5, 2.0, 5.0]),
    ),
    max_size=40,
)


@dataclass
class Reference:
    """The connection states of docs/architecture.md read literally, from the accepted
    heartbeats alone."""

    ends_at: float
    accepted: list[Beat] = field(default_factory=list)
    present_seconds: float = 0.0
    learner_seconds: float = 0.0
    reconnects: int = 0

    def accept(self, beat: Beat) -> None:
        """Attendance adds up within the session only: nothing after its end."""
        if self.accepted:
            last = self.accepted[-1]
            state_then = self.state(beat.received_at)
            within = min(beat.received_at, self.ends_at) - min(last.received_at, self.ends_at)
            if state_then in (PointState.CONNECTED, PointState.LATE):
                self.present_seconds += within
                self.learner_seconds += last.learners * within
            if (
                state_then in (PointState.LATE, PointState.DISCONNECTED)
                and not beat.leaving
                and beat.received_at <= self.ends_at
            ):
                self.reconnects += 1
        self.accepted.append(beat)

    def state(self, now: float) -> PointState:
        """Silence counts from the latest moment the point was heard or answered: a point
        waiting for the monitor's answer is not silent."""
        if not self.accepted:
            return PointState.NEVER_CONNECTED
        last = self.accepted[-1]
        heard = max(max(b.received_at, b.answered_at or b.received_at) for b in self.accepted)
        if last.leaving or now >= heard + LIVENESS.disconnected_after:
            return PointState.DISCONNECTED
        late = now >= heard + LIVENESS.late_after
        return PointState.LATE if late else PointState.CONNECTED


@given(
    events,
    st.floats(min_value=0.0, max_value=60.0),
    st.booleans(),
    st.one_of(st.just(math.inf), st.floats(min_value=0.0, max_value=400.0)),
)
def test_state_and_attendance_always_match_the_design(
    heartbeats: list[tuple[float, int, int, bool, float]],
    final_gap: float,
    ticking: bool,
    ends_after: float,
) -> None:
    """With or without expiry ticks between heartbeats, the outcome is the same."""
    track: Track = NEVER_CONNECTED
    now = 1_000.0
    liveness = replace(LIVENESS, ends_at=now + ends_after)
    reference = Reference(liveness.ends_at)
    for gap, seq, learners, leaving, wait in heartbeats:
        now += gap
        if ticking:
            track = on_time(track, now, liveness)
        answered_at = now + wait if wait else None
        beat = Beat(seq, now, learners, leaving, answered_at)
        if seq > (reference.accepted[-1].seq if reference.accepted else -1):
            reference.accept(beat)
        track = on_heartbeat(track, beat, liveness)
        assert track.state is reference.state(now)
    now += final_gap
    track = on_time(track, now, liveness)
    assert track.state is reference.state(now)
    last = reference.accepted[-1] if reference.accepted else None
    assert track.learners == (last.learners if last else 0)
    assert track.seq == (last.seq if last else -1)
    assert track.reconnects == reference.reconnects
    assert track.present_seconds == pytest.approx(reference.present_seconds)
    assert track.learner_seconds == pytest.approx(reference.learner_seconds)
    assert track.first_seen == (reference.accepted[0].received_at if last else None)
