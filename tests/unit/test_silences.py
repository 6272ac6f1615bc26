"""The fault tests' yardstick of false transitions: what each room really did, from its
requests, and which statuses that makes false."""

from datetime import UTC, datetime

from hypothesis import assume, given
from hypothesis import strategies as st

from contracts.events import PointState, PointStatus
from devstack.silences import MISSED_BEAT, Silences, false_transitions

INTERVAL = 1.0
T0 = 1_800_000_000.0  # a wall time


def at_pace(silences: Silences, code: str, beats: list[float], answer: float = 0.05) -> None:
    for began in beats:
        silences.speaking(code, began)
        silences.answered(code, began + answer)


def status(code: str, state: PointState, last: float, since: float) -> PointStatus:
    return PointStatus(
        session_code="S1",
        point_code=code,
        state=state,
        learners=10,
        since=datetime.fromtimestamp(since, UTC),
        last_heartbeat_at=datetime.fromtimestamp(last, UTC),
    )


def test_a_room_at_its_pace_kept_sending_and_a_late_status_of_it_is_false() -> None:
    silences = Silences(INTERVAL)
    at_pace(silences, "P1", [T0 + k for k in range(20)])
    assert silences.kept_sending("P1", T0 + 5, T0 + 8, now=T0 + 20)
    late = status("P1", PointState.LATE, T0 + 5, T0 + 8)
    assert false_transitions({"P1": [late]}, silences) == {"P1": ["late"]}


def test_a_load_that_stalled_explains_the_late_it_caused() -> None:
    # Seen on two busy cores: a point that meant to beat every second sent nothing for 5 s.
    silences = Silences(INTERVAL)
    at_pace(silences, "P1", [T0, T0 + 1, T0 + 2, T0 + 7.14, T0 + 8.14])
    late = status("P1", PointState.LATE, T0 + 2.01, T0 + 5.01)
    assert false_transitions({"P1": [late]}, silences) == {}


def test_a_slow_answer_is_the_room_still_speaking() -> None:
    # A request the ingest holds for its publish timeout while Kafka is away: no silence.
    silences = Silences(INTERVAL)
    at_pace(silences, "P1", [T0, T0 + 1])
    silences.speaking("P1", T0 + 2)
    silences.answered("P1", T0 + 7)
    at_pace(silences, "P1", [T0 + 7.01, T0 + 8])
    assert silences.kept_sending("P1", T0 + 1.01, T0 + 4.01, now=T0 + 9)


def test_a_room_that_stopped_is_silent_from_its_last_answer_on() -> None:
    silences = Silences(INTERVAL)
    at_pace(silences, "P1", [T0, T0 + 1, T0 + 2])
    last_answer = T0 + 2.05
    assert silences.kept_sending("P1", T0, last_answer + 1, now=last_answer + MISSED_BEAT)
    assert not silences.kept_sending("P1", T0 + 2, T0 + 8, now=T0 + 8)


def test_never_spoken_left_and_not_yet_started_are_no_steady_rooms() -> None:
    silences = Silences(INTERVAL)
    at_pace(silences, "P1", [T0 + 5, T0 + 6])
    silences.speaking("P2", T0, leaving=False)
    silences.answered("P2", T0 + 0.1)
    silences.speaking("P2", T0 + 1, leaving=True)
    silences.answered("P2", T0 + 1.1)
    assert not silences.kept_sending("P0", T0, T0 + 3, now=T0 + 3)
    assert not silences.kept_sending("P1", T0, T0 + 6, now=T0 + 6)
    assert not silences.kept_sending("P2", T0, T0 + 1.05, now=T0 + 1.2)
    assert silences.steady(T0 + 5, T0 + 6.5) == {"P1"}


def test_connected_statuses_are_never_false() -> None:
    silences = Silences(INTERVAL)
    at_pace(silences, "P1", [T0 + k for k in range(10)])
    shown = status("P1", PointState.CONNECTED, T0 + 5, T0 + 5)
    assert false_transitions({"P1": [shown]}, silences) == {}


@given(
    pauses=st.lists(st.floats(0.0, 6.0), min_size=2, max_size=30),
    start=st.floats(0.0, 60.0),
    length=st.floats(0.5, 10.0),
)
def test_kept_sending_is_exactly_no_missed_beat_in_the_window(
    pauses: list[float], start: float, length: float
) -> None:
    """Against a direct reading of the rule: every quiet stretch meeting [start, end] is within
    MISSED_BEAT intervals."""
    silences, quiet, moment = Silences(INTERVAL), [], T0
    for pause in pauses:
        silences.speaking("P1", moment)
        silences.answered("P1", moment + 0.1)
        quiet.append((moment + 0.1, moment + 0.1 + pause))
        moment += 0.1 + pause
    now = moment  # the last stretch still open, as long as its pause
    begin, end = T0 + start, T0 + start + length
    assume(end <= now)  # a status read claims no silence past the moment it is judged
    expected = begin >= T0 and all(
        q_end - q_begin <= MISSED_BEAT * INTERVAL
        for q_begin, q_end in quiet
        if q_begin < end and q_end > begin
    )
    assert silences.kept_sending("P1", begin, end, now=now) == expected


def test_a_load_whose_loop_stalled_spoke_for_none_of_its_rooms_meanwhile() -> None:
    """Each request was made at its pace, but the load's loop ran nothing for 4 s: the
    requests it had made waited in it, and a late status within those seconds is not false;
    one outside them still is."""
    silences = Silences(INTERVAL)
    at_pace(silences, "A", [T0 + n for n in range(20)])
    silences.stalled(T0 + 5.2, T0 + 9.2)
    inside = status("A", PointState.LATE, last=T0 + 5.05, since=T0 + 8.05)
    outside = status("A", PointState.LATE, last=T0 + 12.05, since=T0 + 15.05)
    assert false_transitions({"A": [inside]}, silences) == {}
    assert false_transitions({"A": [outside]}, silences) == {"A": ["late"]}
    assert silences.counts()["load_stalls"] == 1
