"""Live totals of every session (DESIGN §5), kept current as records arrive.

Each (session, point) contributes to its session's tallies; when a status or a registration
changes, the old contribution is taken out and the new one put in. Totals are therefore a
function of the latest record per key (a replayed record changes nothing), and the invariants
hold after every record: the states add up to `registered`, learners present to the sum over
present points. Pure: no Kafka, HTTP or database here.
"""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from contracts.events import (
    Counts,
    PointRegistration,
    PointState,
    PointStatus,
    SessionSchedule,
    Totals,
)
from contracts.registry import RegistryTable

Key = tuple[str, str]  # (session code, point code)
PRESENT = (PointState.CONNECTED, PointState.LATE)
NO_PROVINCE = "--"


@dataclass(frozen=True)
class Contribution:
    """What one point adds to one session's totals."""

    province: str
    channel: str
    level: str
    state: PointState
    learners_present: int
    learners_expected: int


@dataclass
class Tally:
    registered: int = 0
    states: Counter[PointState] = field(default_factory=Counter)
    learners_present: int = 0
    learners_expected: int = 0

    def apply(self, c: Contribution, sign: int) -> None:
        self.registered += sign
        self.states[c.state] += sign
        self.learners_present += sign * c.learners_present
        self.learners_expected += sign * c.learners_expected

    @property
    def connected(self) -> int:
        return self.states[PointState.CONNECTED]

    def counts(self) -> Counts:
        return Counts(
            registered=self.registered,
            connected=self.states[PointState.CONNECTED],
            late=self.states[PointState.LATE],
            disconnected=self.states[PointState.DISCONNECTED],
            never_connected=self.states[PointState.NEVER_CONNECTED],
            learners_present=self.learners_present,
            learners_expected=self.learners_expected,
        )


@dataclass
class Peak:
    value: int = 0
    at: datetime | None = None

    def offer(self, value: int, at: datetime) -> None:
        if value > self.value:
            self.value, self.at = value, at


@dataclass
class SessionView:
    overall: Tally = field(default_factory=Tally)
    provinces: dict[str, Tally] = field(default_factory=dict)
    channels: dict[str, Tally] = field(default_factory=dict)
    levels: dict[str, Tally] = field(default_factory=dict)
    peak_connected: Peak = field(default_factory=Peak)
    peak_learners: Peak = field(default_factory=Peak)
    version: int = 0

    def apply(self, c: Contribution, sign: int) -> None:
        self.overall.apply(c, sign)
        for breakdown, label in (
            (self.provinces, c.province),
            (self.channels, c.channel),
            (self.levels, c.level),
        ):
            tally = breakdown.get(label)
            if tally is None:
                tally = breakdown[label] = Tally()
            tally.apply(c, sign)
        self.version += 1


class LiveTotals:
    def __init__(self) -> None:
        self.registry = RegistryTable()
        self.statuses: dict[Key, PointStatus] = {}
        self.sessions: dict[str, SessionView] = {}
        self._contributions: dict[Key, Contribution] = {}

    # --- records in ----------------------------------------------------------------------------

    def put_point(self, point: PointRegistration, at: datetime) -> None:
        old = self.registry.points.get(point.code)
        self.registry.put_point(point)
        self._refresh_point(point.code, old, at)

    def remove_point(self, code: str, at: datetime) -> None:
        old = self.registry.points.get(code)
        self.registry.remove_point(code)
        self._refresh_point(code, old, at)

    def put_session(self, session: SessionSchedule, at: datetime) -> None:
        self.registry.put_session(session)
        self.sessions.setdefault(session.code, SessionView())
        for point in self.registry.points.values():
            self._refresh((session.code, point.code), at)

    def remove_session(self, code: str) -> None:
        self.registry.sessions.pop(code, None)
        self.sessions.pop(code, None)
        for key in [k for k in self._contributions if k[0] == code]:
            del self._contributions[key]

    def put_status(self, status: PointStatus, at: datetime) -> None:
        key = (status.session_code, status.point_code)
        self.statuses[key] = status
        self._refresh(key, at)

    # --- views ---------------------------------------------------------------------------------

    def view(self, session_code: str) -> SessionView | None:
        return self.sessions.get(session_code)

    def enrolled(self, session_code: str) -> Iterator[tuple[PointRegistration, PointStatus | None]]:
        for session, point_code in self._contributions:
            if session == session_code:
                yield self.registry.points[point_code], self.statuses.get((session, point_code))

    # --- bookkeeping ---------------------------------------------------------------------------

    def _refresh_point(self, code: str, old: PointRegistration | None, at: datetime) -> None:
        courses = set(old.courses if old else ()) | set(self._courses_of(code))
        for session in self.registry.sessions.values():
            if session.course_code in courses:
                self._refresh((session.code, code), at)

    def _courses_of(self, code: str) -> tuple[str, ...]:
        point = self.registry.points.get(code)
        return point.courses if point else ()

    def _refresh(self, key: Key, at: datetime | None) -> None:
        """Replace what (session, point) adds to its session with what it adds now."""
        view = self.sessions.get(key[0])
        if view is None:
            return
        before = self._contributions.pop(key, None)
        after = self._contribution(key)
        if before == after:
            if after is not None:
                self._contributions[key] = after
            return
        if before is not None:
            view.apply(before, -1)
        if after is not None:
            view.apply(after, +1)
            self._contributions[key] = after
        if at is not None:
            view.peak_connected.offer(view.overall.connected, at)
            view.peak_learners.offer(view.overall.learners_present, at)

    def _contribution(self, key: Key) -> Contribution | None:
        session = self.registry.sessions.get(key[0])
        point = self.registry.points.get(key[1])
        if session is None or point is None or not point.active:
            return None
        if session.course_code not in point.courses:
            return None
        status = self.statuses.get(key)
        state = PointState.NEVER_CONNECTED if status is None else status.state
        present = status.learners if status is not None and state in PRESENT else 0
        return Contribution(
            province=point.province_code or NO_PROVINCE,
            channel=point.channel.value,
            level=point.level.value,
            state=state,
            learners_present=present,
            learners_expected=point.expected_learners,
        )


def totals_of(session_code: str, view: SessionView, as_of: datetime) -> Totals:
    """The snapshot of a session that the REST API, SSE stream and `reporting.totals` carry."""
    return Totals(
        session_code=session_code,
        as_of=as_of,
        **view.overall.counts().model_dump(),
        peak_connected=view.peak_connected.value,
        peak_connected_at=view.peak_connected.at,
        peak_learners=view.peak_learners.value,
        peak_learners_at=view.peak_learners.at,
        by_province={k: t.counts() for k, t in sorted(view.provinces.items()) if t.registered},
        by_channel={k: t.counts() for k, t in sorted(view.channels.items()) if t.registered},
        by_level={k: t.counts() for k, t in sorted(view.levels.items()) if t.registered},
    )
