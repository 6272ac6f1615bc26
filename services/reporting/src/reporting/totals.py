"""Totals of a session (DESIGN §5) as a pure function of the latest record of each point."""

from collections import Counter
from collections.abc import Mapping

from contracts.events import PointState, PointStatus, SessionSchedule, Totals
from contracts.registry import RegistryTable

StatusKey = tuple[str, str]  # (session code, point code)
_PRESENT = (PointState.CONNECTED, PointState.LATE)


def session_totals(
    session: SessionSchedule,
    registry: RegistryTable,
    statuses: Mapping[StatusKey, PointStatus],
) -> Totals:
    """Registered points of the session's course and where each one stands.

    A point with no status record yet is `never_connected`; statuses of points no longer
    registered are ignored, so the counts always add up to `registered`.
    """
    states: Counter[PointState] = Counter()
    learners_present = learners_expected = registered = 0
    for point in registry.enrolled(session):
        registered += 1
        learners_expected += point.expected_learners
        status = statuses.get((session.code, point.code))
        state = PointState.NEVER_CONNECTED if status is None else status.state
        states[state] += 1
        if status is not None and state in _PRESENT:
            learners_present += status.learners
    return Totals(
        session_code=session.code,
        registered=registered,
        connected=states[PointState.CONNECTED],
        late=states[PointState.LATE],
        disconnected=states[PointState.DISCONNECTED],
        never_connected=states[PointState.NEVER_CONNECTED],
        learners_present=learners_present,
        learners_expected=learners_expected,
    )
