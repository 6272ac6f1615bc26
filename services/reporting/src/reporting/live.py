"""Live totals of every session (docs/architecture.md), kept current as records arrive.

What a (session, point) adds to its session's tallies is a pure function of the session, the
point's registration and its latest status. When a record replaces one of those, the old
contribution is taken out and the new one put in, so totals are a function of the latest record
per key (a replayed record changes nothing) and the invariants hold after every record: the
states add up to `registered`, learners present to the sum over present points.

Reading the compacted topics after a restart brings a whole table at once. Folding it record by
record would pay that bookkeeping per record; instead the records are stored (`defer=True`) and
`settle` computes each touched session once from what is stored. Pure: no Kafka, HTTP or
database here.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, TypeVar

from contracts.events import Channel, Counts, Level, PointState, SessionSchedule, Totals
from contracts.wire import PointRecord, PointStatusRecord
from reporting.incidents import PRESENT

NO_PROVINCE = "--"
T = TypeVar("T")


class Contribution(NamedTuple):
    """What one point adds to one session's totals."""

    province: str
    channel: str
    level: str
    state: PointState
    learners_present: int
    learners_expected: int


def counts_in(session: SessionSchedule, point: PointRecord | None) -> bool:
    """Whether `point` counts in the session: known, active, and enrolled in its course."""
    return point is not None and point.active and session.course_code in point.courses


def contribution(
    session: SessionSchedule, point: PointRecord | None, status: PointStatusRecord | None
) -> Contribution | None:
    """None when the point does not count in the session (unknown, inactive or not enrolled)."""
    if point is None or not counts_in(session, point):
        return None
    state = PointState.NEVER_CONNECTED if status is None else status.state
    present = status.learners if status is not None and state in PRESENT else 0
    return Contribution(
        point.province_code or NO_PROVINCE,
        point.channel.value,
        point.level.value,
        state,
        present,
        point.expected_learners,
    )


def _no_states() -> dict[PointState, int]:
    return dict.fromkeys(PointState, 0)


@dataclass(slots=True)
class Tally:
    registered: int = 0
    states: dict[PointState, int] = field(default_factory=_no_states)
    learners_present: int = 0
    learners_expected: int = 0

    def add(self, state: PointState, points: int, present: int, expected: int) -> None:
        self.registered += points
        self.states[state] += points
        self.learners_present += present
        self.learners_expected += expected

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
        self.add(
            c.province,
            c.channel,
            c.level,
            c.state,
            sign,
            sign * c.learners_present,
            sign * c.learners_expected,
        )

    def add(
        self,
        province: str,
        channel: str,
        level: str,
        state: PointState,
        points: int,
        present: int,
        expected: int,
    ) -> None:
        """`points` points of one kind and state, with their learners (all negative to remove)."""
        self.overall.add(state, points, present, expected)
        for breakdown, label in (
            (self.provinces, province),
            (self.channels, channel),
            (self.levels, level),
        ):
            tally = breakdown.get(label)
            if tally is None:
                tally = breakdown[label] = Tally()
            tally.add(state, points, present, expected)

    def swap(self, before: Contribution | None, after: Contribution | None) -> bool:
        """Replace one point's contribution; whether anything changed."""
        if before == after:
            return False
        if before is not None:
            self.apply(before, -1)
        if after is not None:
            self.apply(after, +1)
        self.version += 1
        return True

    def reset(self, groups: "Groups") -> None:
        """The tallies of exactly these points (peaks are history and stay)."""
        self.overall = Tally()
        self.provinces, self.channels, self.levels = {}, {}, {}
        for (province, channel, level, state), (points, present, expected) in groups.items():
            self.add(province, channel.value, level.value, state, points, present, expected)
        self.version += 1

    def offer_peaks(self, at: datetime) -> None:
        self.peak_connected.offer(self.overall.connected, at)
        self.peak_learners.offer(self.overall.learners_present, at)


# Points grouped by what they count towards: (province, channel, level, state) ->
# [points, learners present, learners expected].
Groups = dict[tuple[str, Channel, Level, PointState], list[int]]


def grouped(
    session: SessionSchedule, points: Iterable[PointRecord], statuses: dict[str, PointStatusRecord]
) -> Groups:
    """What the points add to the session, summed by kind: `contribution` for a whole table,
    in one pass with no object per point."""
    groups, never = Groups(), PointState.NEVER_CONNECTED
    for point in points:
        if not counts_in(session, point):
            continue
        status = statuses.get(point.code)
        state = never if status is None else status.state
        present = status.learners if status is not None and state in PRESENT else 0
        key = (point.province_code or NO_PROVINCE, point.channel, point.level, state)
        group = groups.get(key)
        if group is None:
            groups[key] = [1, present, point.expected_learners]
        else:
            group[0] += 1
            group[1] += present
            group[2] += point.expected_learners
    return groups


@dataclass
class Registry:
    """The latest record per key of `registry.points` and `registry.sessions`."""

    points: dict[str, PointRecord] = field(default_factory=dict)
    sessions: dict[str, SessionSchedule] = field(default_factory=dict)


class LiveTotals:
    def __init__(self, unknown_after: float = 5.0) -> None:
        self.registry = Registry()
        self.judged = Judged(unknown_after)
        self.sessions: dict[str, SessionView] = {}
        # session code -> point code -> latest status; nested so the keys are shared strings
        self._statuses: dict[str, dict[str, PointStatusRecord]] = {}
        self._sessions_of: dict[str, list[str]] = {}  # course code -> its session codes
        # Sessions whose tallies wait for `settle`, and the latest time a record brought.
        self._stale: set[str] = set()
        self._stale_at: datetime | None = None
        # Province codes, course lists and session codes repeat in every record: one copy each.
        self._shared: dict[object, object] = {}

    # --- records in ----------------------------------------------------------------------------

    def put_point(self, point: PointRecord, at: datetime, *, defer: bool = False) -> None:
        point.province_code = self._share(point.province_code)
        point.courses = self._share(point.courses)
        old = self.registry.points.get(point.code)
        self.registry.points[point.code] = point
        self._point_changed(point.code, old, point, at, defer)

    def remove_point(self, code: str, at: datetime, *, defer: bool = False) -> None:
        old = self.registry.points.pop(code, None)
        self._point_changed(code, old, None, at, defer)

    def put_session(self, session: SessionSchedule, at: datetime, *, defer: bool = False) -> None:
        self.registry.sessions[session.code] = session
        self.sessions.setdefault(session.code, SessionView())
        self._index_courses()
        self._mark_stale(session.code, at)
        if not defer:
            self.settle()

    def remove_session(self, code: str) -> None:
        self.registry.sessions.pop(code, None)
        self.sessions.pop(code, None)
        self._index_courses()
        self._stale.discard(code)

    def put_status(
        self, status: PointStatusRecord, at: datetime, *, defer: bool = False
    ) -> PointStatusRecord | None:
        """Store the point's latest status in its session; returns the one it replaces."""
        session_code = status.session_code = self._share(status.session_code)
        point = self.registry.points.get(status.point_code)
        if point is not None:
            status.point_code = point.code
        statuses = self._statuses.get(session_code)
        if statuses is None:
            statuses = self._statuses[session_code] = {}
        old = statuses.get(status.point_code)
        statuses[status.point_code] = status
        if defer or session_code in self._stale:
            self._mark_stale(session_code, at)
            return old
        session, view = self.registry.sessions.get(session_code), self.sessions.get(session_code)
        if session is None or view is None:
            return old
        if view.swap(contribution(session, point, old), contribution(session, point, status)):
            view.offer_peaks(at)
        return old

    def settle(self) -> None:
        """Compute every session whose records were stored without folding them."""
        for code in self._stale:
            session, view = self.registry.sessions.get(code), self.sessions.get(code)
            if session is not None and view is not None:
                view.reset(
                    grouped(session, self.registry.points.values(), self._statuses.get(code, {}))
                )
                if self._stale_at is not None:
                    view.offer_peaks(self._stale_at)
        self._stale.clear()
        self._stale_at = None

    # --- views ---------------------------------------------------------------------------------

    def on_air(self, session_code: str, now: datetime) -> bool:
        session = self.registry.sessions.get(session_code)
        return session is not None and session.starts_at <= now <= session.ends_at

    def registered_by_group(self) -> dict[tuple[str, str, str], int]:
        """Points registered in each (session, "province" or "channel", group)."""
        return {
            (code, kind, group): tally.registered
            for code, view in list(self.sessions.items())
            for kind, groups in (("province", view.provinces), ("channel", view.channels))
            for group, tally in groups.items()
        }

    def raise_peaks(self, session_code: str, connected: int, learners: int) -> None:
        """Peaks seen before a restart (kept in the timeline) still count."""
        view = self.sessions.get(session_code)
        if view is not None:
            view.peak_connected.value = max(view.peak_connected.value, connected)
            view.peak_learners.value = max(view.peak_learners.value, learners)

    def view(self, session_code: str) -> SessionView | None:
        return self.sessions.get(session_code)

    def status(self, session_code: str, point_code: str) -> PointStatusRecord | None:
        return self._statuses.get(session_code, {}).get(point_code)

    def enrolled(self, session_code: str) -> Iterator[tuple[PointRecord, PointStatusRecord | None]]:
        """The points that count in the session, with their latest status in it."""
        session = self.registry.sessions.get(session_code)
        if session is None:
            return
        statuses = self._statuses.get(session_code, {})
        # A copy: reports iterate in a worker thread while consumers add points.
        for point in list(self.registry.points.values()):
            if counts_in(session, point):
                yield point, statuses.get(point.code)

    def counts(self, session_code: str, point_code: str) -> bool:
        """Whether the point counts in the session (one of `enrolled`'s)."""
        session = self.registry.sessions.get(session_code)
        return session is not None and counts_in(session, self.registry.points.get(point_code))

    # --- bookkeeping ---------------------------------------------------------------------------

    def _point_changed(
        self,
        code: str,
        old: PointRecord | None,
        new: PointRecord | None,
        at: datetime,
        defer: bool,
    ) -> None:
        courses = (old.courses if old else ()) + (new.courses if new else ())
        for session_code in {s for course in courses for s in self._sessions_of.get(course, ())}:
            if defer or session_code in self._stale:
                self._mark_stale(session_code, at)
                continue
            session, view = self.registry.sessions[session_code], self.sessions[session_code]
            status = self.status(session_code, code)
            if view.swap(contribution(session, old, status), contribution(session, new, status)):
                view.offer_peaks(at)

    def _index_courses(self) -> None:
        self._sessions_of = {}
        for session in self.registry.sessions.values():
            self._sessions_of.setdefault(session.course_code, []).append(session.code)

    def _mark_stale(self, session_code: str, at: datetime) -> None:
        self._stale.add(session_code)
        if self._stale_at is None or at > self._stale_at:
            self._stale_at = at

    def _share(self, value: T) -> T:
        return self._shared.setdefault(value, value)  # type: ignore[return-value]


class Judged:
    """How far the processor has judged each heartbeat partition (`attendance.monitor-clock`):
    the desk's states are true as of the earliest of them."""

    def __init__(self, unknown_after: float) -> None:
        self._unknown_after = unknown_after
        self._until: dict[int, datetime] = {}

    def put(self, partition: int, until: datetime) -> None:
        self._until[partition] = until

    def until(self) -> datetime | None:
        return min(self._until.values(), default=None)

    def unknown(self, now: datetime) -> bool:
        """Whether the states cannot be vouched for now (never judged, or not lately)."""
        until = self.until()
        return until is None or (now - until).total_seconds() > self._unknown_after


def totals_of(session_code: str, view: SessionView, as_of: datetime, judged: Judged) -> Totals:
    """The snapshot of a session that the REST API, SSE stream and `reporting.totals` carry."""
    return Totals(
        session_code=session_code,
        as_of=as_of,
        judged_until=judged.until(),
        unknown=judged.unknown(as_of),
        **view.overall.counts().model_dump(),
        peak_connected=view.peak_connected.value,
        peak_connected_at=view.peak_connected.at,
        peak_learners=view.peak_learners.value,
        peak_learners_at=view.peak_learners.at,
        by_province={k: t.counts() for k, t in sorted(view.provinces.items()) if t.registered},
        by_channel={k: t.counts() for k, t in sorted(view.channels.items()) if t.registered},
        by_level={k: t.counts() for k, t in sorted(view.levels.items()) if t.registered},
    )
