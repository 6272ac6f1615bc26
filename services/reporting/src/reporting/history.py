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
        self._moments: dict[tuple[str, str], list[Moment]] = {}

    def put(self, status: PointStatusRecord) -> None:
        key = (status.session_code, status.point_code)
        moments = self._moments.get(key)
        moment = moment_of(status, moments[-1] if moments else None)
        if moment is None:
            return
        if moments is None:
            self._moments[key] = [moment]
            return
        moments.append(moment)
        if len(moments) > self._keep:
            del moments[: len(moments) - self._keep]

    def of(self, session_code: str, point_code: str) -> list[Moment]:
        return list(self._moments.get((session_code, point_code), ()))

    def forget(self, session_code: str) -> None:
        """A session removed: its points' moments go with it."""
        for key in [key for key in self._moments if key[0] == session_code]:
            del self._moments[key]
