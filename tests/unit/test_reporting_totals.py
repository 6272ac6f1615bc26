"""Totals are a function of the latest record per point, and always add up."""

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from contracts.events import (
    Channel,
    Level,
    PointRegistration,
    PointState,
    PointStatus,
    SessionSchedule,
)
from contracts.registry import RegistryTable
from reporting.totals import StatusKey, session_totals

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
SESSION = SessionSchedule(code="S1", course_code="C1", starts_at=NOW, ends_at=NOW)


def point(
    code: str, *, courses: tuple[str, ...] = ("C1",), expected: int = 30, active: bool = True
) -> PointRegistration:
    return PointRegistration(
        code=code,
        name=code,
        level=Level.COMMUNE,
        channel=Channel.VIDEO_BRIDGE,
        expected_learners=expected,
        courses=courses,
        active=active,
    )


def status(code: str, state: PointState, learners: int, session: str = "S1") -> PointStatus:
    return PointStatus(
        session_code=session, point_code=code, state=state, learners=learners, since=NOW
    )


def test_counts_each_registered_point_once_by_its_latest_state() -> None:
    registry = RegistryTable()
    for p in [
        point("A"),
        point("B"),
        point("C"),
        point("D"),
        point("X", courses=("C2",)),
        point("Y", active=False),
    ]:
        registry.put_point(p)
    statuses: dict[StatusKey, PointStatus] = {
        ("S1", "A"): status("A", PointState.CONNECTED, 25),
        ("S1", "B"): status("B", PointState.LATE, 10),
        ("S1", "C"): status("C", PointState.DISCONNECTED, 40),
        ("S1", "X"): status("X", PointState.CONNECTED, 99),  # not in this session's course
        ("S2", "D"): status("D", PointState.CONNECTED, 99, session="S2"),
    }
    totals = session_totals(SESSION, registry, statuses)
    assert (
        totals.registered,
        totals.connected,
        totals.late,
        totals.disconnected,
        totals.never_connected,
    ) == (4, 1, 1, 1, 1)
    assert (totals.learners_present, totals.learners_expected) == (35, 120)


@given(
    st.dictionaries(
        st.from_regex(r"P[0-9]{1,3}", fullmatch=True),
        st.tuples(st.sampled_from(list(PointState)), st.integers(0, 500), st.booleans()),
        max_size=60,
    )
)
def test_states_add_up_to_registered_and_learners_to_the_sum_over_present_points(
    points: dict[str, tuple[PointState, int, bool]],
) -> None:
    registry = RegistryTable()
    statuses: dict[StatusKey, PointStatus] = {}
    for code, (state, learners, registered) in points.items():
        if registered:
            registry.put_point(point(code))
        if state is not PointState.NEVER_CONNECTED:
            statuses[("S1", code)] = status(code, state, learners)
    totals = session_totals(SESSION, registry, statuses)
    assert (
        totals.connected + totals.late + totals.disconnected + totals.never_connected
        == totals.registered
    )
    assert totals.registered == sum(registered for _, _, registered in points.values())
    assert totals.learners_present == sum(
        learners
        for state, learners, registered in points.values()
        if registered and state in (PointState.CONNECTED, PointState.LATE)
    )
