"""Live totals: after any sequence of records, equal to a recomputation from the latest record
of each key, with the invariants holding after every single record."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events import Channel, Level, PointState, SessionSchedule
from contracts.wire import PointRecord, PointStatusRecord
from reporting.live import LiveTotals, totals_of
from reporting.timeline import sampled

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
SESSIONS = {
    code: SessionSchedule(
        code=code, course_code=course, starts_at=NOW, ends_at=NOW + timedelta(hours=3)
    )
    for code, course in (("S1", "C1"), ("S2", "C1"), ("S3", "C2"))
}
PROVINCES = ("01", "38", "79")


def point(
    code: str, province: int, channel: int, courses: tuple[str, ...], active: bool, expected: int
) -> PointRecord:
    return PointRecord(
        code=code,
        name=code,
        level=Level.COMMUNE,
        channel=list(Channel)[channel],
        province_code=PROVINCES[province],
        expected_learners=expected,
        courses=courses,
        active=active,
    )


def status(session: str, code: str, state: PointState, learners: int) -> PointStatusRecord:
    return PointStatusRecord(
        session_code=session, point_code=code, state=state, learners=learners, since=NOW
    )


codes = st.sampled_from([f"P{n}" for n in range(8)])
records = st.lists(
    st.one_of(
        st.builds(
            lambda c, p, ch, courses, active, e: ("point", point(c, p, ch, courses, active, e)),
            codes,
            st.integers(0, 2),
            st.integers(0, 2),
            st.sampled_from([("C1",), ("C2",), ("C1", "C2"), ()]),
            st.booleans(),
            st.integers(0, 60),
        ),
        st.builds(lambda c: ("remove", c), codes),
        st.builds(lambda s: ("session", SESSIONS[s]), st.sampled_from(sorted(SESSIONS))),
        st.builds(
            lambda s, c, state, learners: ("status", status(s, c, state, learners)),
            st.sampled_from(sorted(SESSIONS)),
            codes,
            st.sampled_from([PointState.CONNECTED, PointState.LATE, PointState.DISCONNECTED]),
            st.integers(0, 100),
        ),
    ),
    max_size=60,
)


def recomputed(live: LiveTotals, session_code: str) -> dict[str, int]:
    """The totals (docs/architecture.md) from scratch, from the latest records the fold has seen."""
    session = live.registry.sessions[session_code]
    counts = {state.value: 0 for state in PointState} | {
        "registered": 0,
        "present": 0,
        "expected": 0,
    }
    for p in live.registry.points.values():
        if not p.active or session.course_code not in p.courses:
            continue
        s = live.status(session_code, p.code)
        state = s.state if s else PointState.NEVER_CONNECTED
        counts["registered"] += 1
        counts[state.value] += 1
        counts["expected"] += p.expected_learners
        if s and state in (PointState.CONNECTED, PointState.LATE):
            counts["present"] += s.learners
    return counts


def put(live: LiveTotals, kind: str, record: object, defer: bool = False) -> None:
    if kind == "point":
        live.put_point(record, NOW, defer=defer)  # type: ignore[arg-type]
    elif kind == "remove":
        live.remove_point(record, NOW, defer=defer)  # type: ignore[arg-type]
    elif kind == "session":
        live.put_session(record, NOW, defer=defer)  # type: ignore[arg-type]
    else:
        live.put_status(record, NOW, defer=defer)  # type: ignore[arg-type]


@settings(max_examples=300)
@given(records)
def test_incremental_totals_equal_a_recomputation_after_every_record(
    events: list[tuple[str, object]],
) -> None:
    live = LiveTotals()
    for kind, record in events:
        put(live, kind, record)
        for code, view in live.sessions.items():
            totals = totals_of(code, view, NOW, live.judged)
            expected = recomputed(live, code)
            assert (
                totals.registered,
                totals.connected,
                totals.late,
                totals.disconnected,
                totals.never_connected,
                totals.learners_present,
                totals.learners_expected,
            ) == (
                expected["registered"],
                expected["connected"],
                expected["late"],
                expected["disconnected"],
                expected["never_connected"],
                expected["present"],
                expected["expected"],
            )
            assert sum(c.registered for c in totals.by_province.values()) == totals.registered
            assert sum(c.connected for c in totals.by_channel.values()) == totals.connected
            assert (
                sum(c.learners_present for c in totals.by_level.values()) == totals.learners_present
            )


def test_replaying_the_same_records_changes_nothing() -> None:
    live = LiveTotals()
    live.put_session(SESSIONS["S1"], NOW)
    live.put_point(point("P1", 0, 0, ("C1",), True, 30), NOW)
    for _ in range(3):
        live.put_status(status("S1", "P1", PointState.CONNECTED, 25), NOW)
    totals = totals_of("S1", live.sessions["S1"], NOW, live.judged)
    assert (totals.connected, totals.learners_present, totals.peak_connected) == (1, 25, 1)


def test_peaks_keep_their_time() -> None:
    live = LiveTotals()
    live.put_session(SESSIONS["S1"], NOW)
    for n in range(3):
        live.put_point(point(f"P{n}", 0, 0, ("C1",), True, 30), NOW)
    later = NOW + timedelta(minutes=5)
    for n in range(3):
        live.put_status(status("S1", f"P{n}", PointState.CONNECTED, 20), later)
    live.put_status(status("S1", "P0", PointState.DISCONNECTED, 0), later + timedelta(minutes=1))
    totals = totals_of("S1", live.sessions["S1"], NOW, live.judged)
    assert (totals.connected, totals.peak_connected, totals.peak_connected_at) == (2, 3, later)
    assert (totals.peak_learners, totals.peak_learners_at) == (60, later)


def tallies(live: LiveTotals) -> dict[str, object]:
    """Everything a session's totals count, without the peaks (history, not state)."""
    return {
        code: totals_of(code, view, NOW, live.judged).model_dump(
            exclude={"peak_connected", "peak_connected_at", "peak_learners", "peak_learners_at"}
        )
        for code, view in live.sessions.items()
    }


@settings(max_examples=300)
@given(records, st.lists(st.booleans(), min_size=60, max_size=60), st.sets(st.integers(0, 59)))
def test_deferred_records_settle_to_the_incremental_totals(
    events: list[tuple[str, object]], deferred: list[bool], settles: set[int]
) -> None:
    """Records stored while catching up (some deferred, some not, settled now and then) end in
    the same totals as folding each one in."""
    incremental, catching_up = LiveTotals(), LiveTotals()
    for number, (kind, record) in enumerate(events):
        put(incremental, kind, record)
        put(catching_up, kind, record, defer=deferred[number])
        if number in settles:
            catching_up.settle()
    catching_up.settle()
    assert tallies(catching_up) == tallies(incremental)


def test_the_groups_of_each_session_and_its_samples_while_on_air() -> None:
    live = LiveTotals()
    live.put_session(SESSIONS["S1"], NOW)
    live.put_point(point("P1", 0, 0, ("C1",), True, 10), NOW)
    live.put_point(point("P2", 2, 1, ("C1",), True, 20), NOW)
    live.put_status(status("S1", "P1", PointState.CONNECTED, 7), NOW)
    assert live.registered_by_group() == {
        ("S1", "province", "01"): 1,
        ("S1", "province", "79"): 1,
        ("S1", "channel", "video_bridge"): 1,
        ("S1", "channel", "teams"): 1,
    }
    (sample,) = sampled(live, NOW + timedelta(minutes=1))
    assert (sample.session_code, sample.registered, sample.connected) == ("S1", 2, 1)
    assert (sample.learners_present, sample.learners_expected) == (7, 30)
    assert sampled(live, NOW + timedelta(hours=4)) == []  # the session has ended
    assert sampled(live, NOW - timedelta(seconds=1)) == []  # not started yet


def test_peaks_from_before_a_restart_are_kept_if_higher() -> None:
    live = LiveTotals()
    live.put_session(SESSIONS["S1"], NOW)
    live.put_point(point("P1", 0, 0, ("C1",), True, 10), NOW)
    live.put_status(status("S1", "P1", PointState.CONNECTED, 7), NOW)
    live.settle()
    live.raise_peaks("S1", connected=40, learners=3)
    live.raise_peaks("NO-SUCH", connected=99, learners=99)  # no such session: nothing
    view = live.view("S1")
    assert view is not None
    assert (view.peak_connected.value, view.peak_learners.value) == (40, 7)
