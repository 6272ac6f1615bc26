"""A point's history: the moments its status records add, checked against the records alone."""

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from contracts.events import PointState
from contracts.wire import PointStatusRecord
from reporting.history import SAMPLE_SECONDS, Moment, PointHistory, moment_of
from reporting.incidents import PRESENT

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def record(
    state: PointState, since_s: float, heard_s: float | None = None, learners: int = 20
) -> PointStatusRecord:
    return PointStatusRecord(
        session_code="S1",
        point_code="P1",
        state=state,
        learners=learners,
        since=T0 + timedelta(seconds=since_s),
        last_heartbeat_at=None if heard_s is None else T0 + timedelta(seconds=heard_s),
    )


def moments(history: PointHistory) -> list[tuple[float, PointState, int]]:
    return [(m.at - T0.timestamp(), m.state, m.learners) for m in history.of("S1", "P1")]


def test_each_change_of_state_is_a_moment_at_its_since_with_the_learners_present() -> None:
    history = PointHistory()
    for put in (
        record(PointState.CONNECTED, 0, 0, learners=12),
        record(PointState.CONNECTED, 0, 5, learners=12),  # the same: nothing to add
        record(PointState.LATE, 30, 5, learners=12),
        record(PointState.DISCONNECTED, 60, 5, learners=12),
        record(PointState.CONNECTED, 95, 95, learners=18),
    ):
        history.put(put)
    assert moments(history) == [
        (0, PointState.CONNECTED, 12),
        (30, PointState.LATE, 12),
        (60, PointState.DISCONNECTED, 0),
        (95, PointState.CONNECTED, 18),
    ]
    assert history.of("S1", "P2") == [] and history.of("S2", "P1") == []


def test_learners_are_sampled_minutes_apart_not_per_heartbeat() -> None:
    history = PointHistory()
    history.put(record(PointState.CONNECTED, 0, 0, learners=10))
    for second in range(5, int(SAMPLE_SECONDS), 5):
        history.put(record(PointState.CONNECTED, 0, second, learners=10 + second % 3))
    assert len(history.of("S1", "P1")) == 1
    history.put(record(PointState.CONNECTED, 0, SAMPLE_SECONDS, learners=25))
    history.put(record(PointState.CONNECTED, 0, SAMPLE_SECONDS * 3, learners=25))  # unmoved
    assert moments(history) == [
        (0, PointState.CONNECTED, 10),
        (SAMPLE_SECONDS, PointState.CONNECTED, 25),
    ]


def test_an_older_change_replayed_after_a_newer_one_adds_nothing() -> None:
    history = PointHistory()
    history.put(record(PointState.CONNECTED, 100, 100))
    history.put(record(PointState.DISCONNECTED, 40, 10))
    assert [m.state for m in history.of("S1", "P1")] == [PointState.CONNECTED]


def test_a_point_keeps_its_latest_moments_and_a_removed_session_forgets_them() -> None:
    history = PointHistory(keep=3)
    flapping = [PointState.CONNECTED, PointState.LATE] * 4
    for second, state in enumerate(flapping):
        history.put(record(state, second * 10, second * 10))
    assert [m.at - T0.timestamp() for m in history.of("S1", "P1")] == [50, 60, 70]
    history.forget("S1")
    assert history.of("S1", "P1") == []


STATES = st.sampled_from(list(PointState))


def collapsed(states: list[PointState]) -> list[PointState]:
    return [s for i, s in enumerate(states) if i == 0 or s is not states[i - 1]]


@given(st.lists(st.tuples(STATES, st.integers(0, 400), st.integers(0, 60)), max_size=40))
def test_the_moments_tell_each_change_of_state_of_the_records_at_its_time(
    steps: list[tuple[PointState, int, int]],
) -> None:
    # Records in time order, as one partition delivers them.
    history, now = PointHistory(), 0.0
    records: list[PointStatusRecord] = []
    for state, gap, learners in steps:
        now += gap
        changed = not records or records[-1].state is not state
        since = now if changed else records[-1].since.timestamp() - T0.timestamp()
        records.append(record(state, since, now, learners))
        history.put(records[-1])
    kept = history.of("S1", "P1")
    assert all(a.at <= b.at for a, b in itertools.pairwise(kept))
    assert collapsed([m.state for m in kept]) == collapsed([r.state for r in records])
    changes = [r for i, r in enumerate(records) if i == 0 or r.state is not records[i - 1].state]
    starts = [m for i, m in enumerate(kept) if i == 0 or m.state is not kept[i - 1].state]
    assert [m.when for m in starts] == [r.since for r in changes]
    assert all(m.learners == 0 for m in kept if m.state not in PRESENT)


@given(
    st.integers(1, 3),
    st.lists(
        st.tuples(st.sampled_from(["S1", "S2"]), st.sampled_from(["P1", "P2"]), STATES),
        max_size=30,
    ),
)
def test_each_point_of_each_session_keeps_its_own_latest_moments(
    keep: int, steps: list[tuple[str, str, PointState]]
) -> None:
    """Against a list per session and point, trimmed to the latest `keep`."""
    history = PointHistory(keep=keep)
    expected: dict[tuple[str, str], list[Moment]] = {}
    for at, (session, point, state) in enumerate(steps):
        status = PointStatusRecord(
            session_code=session,
            point_code=point,
            state=state,
            learners=at,
            since=T0 + timedelta(seconds=at),
        )
        history.put(status)
        held = expected.setdefault((session, point), [])
        if (moment := moment_of(status, held[-1] if held else None)) is not None:
            expected[(session, point)] = [*held, moment][-keep:]
    for (session, point), held in expected.items():
        assert history.of(session, point) == held
    history.forget("S1")
    assert history.of("S1", "P1") == history.of("S1", "P2") == []
    assert history.of("S2", "P1") == expected.get(("S2", "P1"), [])
