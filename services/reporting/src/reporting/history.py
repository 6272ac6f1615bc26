"""What each point went through in a session, for its page: a moment each time its state
changed, with the learners it had then, and between changes a sample of its learners every few
minutes when the count moved. Built from the status records as they arrive, so a restarted
instance has what the (compacted) status topic still holds. Pure: no Kafka, HTTP or database.

Memory is what bounds it: a moment is a small tuple, a point keeps its latest `KEEP`, and
samples are minutes apart, not one per heartbeat.
"""

from datetime import UTC, datetime
from typing import NamedTuple

from contracts.events import PointState
from contracts.wire import PointStatusRecord
from reporting.incidents import PRESENT

KEEP = 500  # moments per point and session: hours of a point flapping every minute
SAMPLE_SECONDS = 300.0  # between two samples of a steady point's learners


class Moment(NamedTuple):
    at: float  # a POSIX timestamp: a float is smaller than a datetime, kept by the thousand
    state: PointState
    learners: int  # those present: 0 while the point is disconnected or never connected

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.at, UTC)


def moment_of(status: PointStatusRecord, last: Moment | None) -> Moment | None:
    """The moment `status` adds after `last`, if any: a change of state (at its `since`), or
    learners that moved, at least `SAMPLE_SECONDS` after the last moment."""
    learners = status.learners if status.state in PRESENT else 0
    if last is None or status.state is not last.state:
        at = status.since.timestamp()
        return Moment(at, status.state, learners) if last is None or at >= last.at else None
    heard = (status.last_heartbeat_at or status.since).timestamp()
    if learners == last.learners or heard - last.at < SAMPLE_SECONDS:
        return None
    return Moment(heard, status.state, learners)


class PointHistory:
    """The moments of every point in every session, oldest first."""

    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        # Session code -> point code -> its moments: the one alone, as most points hold one
        # (a moment and a list each for 100,000 points were a fifth of reporting's memory), or
        # a list once there are more. By session, so the point codes are the statuses' own.
        self._moments: dict[str, dict[str, Moment | list[Moment]]] = {}

    def put(self, status: PointStatusRecord) -> None:
        points = self._moments.get(status.session_code)
        if points is None:
            points = self._moments[status.session_code] = {}
        held = points.get(status.point_code)
        # A list first: a moment alone is a tuple too.
        moment = moment_of(status, held[-1] if isinstance(held, list) else held)
        if moment is None:
            return
        if held is None:
            points[status.point_code] = moment
        elif not isinstance(held, list):
            points[status.point_code] = [held, moment][-self._keep :]
        else:
            held.append(moment)
            if len(held) > self._keep:
                del held[: len(held) - self._keep]

    def of(self, session_code: str, point_code: str) -> list[Moment]:
        held = self._moments.get(session_code, {}).get(point_code)
        if held is None:
            return []
        return list(held) if isinstance(held, list) else [held]

    def forget(self, session_code: str) -> None:
        """A session removed: its points' moments go with it."""
        self._moments.pop(session_code, None)
