"""One incident when a province loses many points at once, as soon as they are shown
disconnected; scattered drops only once each lasted the grace; nothing for flaps or goodbyes."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from contracts.events import Channel, Level, PointState
from contracts.wire import PointRecord, PointStatusRecord
from reporting.incidents import IncidentDetector, IncidentRules

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
RULES = IncidentRules(
    grace=timedelta(seconds=60),
    together=timedelta(seconds=15),
    window=timedelta(minutes=3),
    min_points=5,
    min_share=0.3,
)
REGISTERED = {("S1", "province", "01"): 20, ("S1", "province", "38"): 20}


def drop(detector: IncidentDetector, point: str, province: str, at: datetime) -> None:
    detector.dropped("S1", point, [("S1", "province", province)], at)


def test_many_drops_together_in_one_province_make_one_incident_at_once() -> None:
    detector = IncidentDetector(RULES)
    for n in range(5):  # 5 of 20 within 4 s: under the 30 %
        drop(detector, f"H{n}", "01", T0 + timedelta(seconds=n))
    drop(detector, "T1", "38", T0)
    assert detector.tick(T0 + timedelta(seconds=4), REGISTERED) == ([], [])
    for n in range(5, 8):  # 8 within 7 s
        drop(detector, f"H{n}", "01", T0 + timedelta(seconds=n))
    opened, closed = detector.tick(T0 + timedelta(seconds=8), REGISTERED)
    assert [(i.kind, i.group, len(i.points), i.opened_at) for i in opened] == [
        ("province", "01", 8, T0)
    ]
    assert detector.tick(T0 + timedelta(seconds=9), REGISTERED) == ([], [])  # not raised twice
    for n in range(6):
        detector.back("S1", f"H{n}")
    opened, closed = detector.tick(T0 + timedelta(seconds=20), REGISTERED)
    assert [(i.group, i.closed_at) for i in closed] == [("01", T0 + timedelta(seconds=20))]
    assert detector.opened_total["province"] == 1


def test_an_incident_opened_together_stays_open_past_the_grace_and_closes_on_return() -> None:
    detector = IncidentDetector(RULES)
    for n in range(8):
        drop(detector, f"H{n}", "01", T0)
    (incident,), _ = detector.tick(T0 + timedelta(seconds=1), REGISTERED)
    for second in range(2, 300, 5):  # the drops are confirmed meanwhile: still one incident
        assert detector.tick(T0 + timedelta(seconds=second), REGISTERED) == ([], [])
    assert incident.points == {f"H{n}" for n in range(8)}
    for n in range(8):
        detector.back("S1", f"H{n}")
    assert detector.tick(T0 + timedelta(seconds=301), REGISTERED) == ([], [incident])
    assert detector.open == {}


def test_drops_spread_out_count_only_once_each_lasted_the_grace() -> None:
    detector = IncidentDetector(RULES)
    for n in range(6):  # 6 of 20, 20 s apart: never together, all within the window
        drop(detector, f"H{n}", "01", T0 + timedelta(seconds=20 * n))
    for second in range(0, 160, 5):
        assert detector.tick(T0 + timedelta(seconds=second), REGISTERED) == ([], [])
    opened, _ = detector.tick(T0 + timedelta(seconds=160), REGISTERED)  # the last past its grace
    assert [(i.group, len(i.points), i.opened_at) for i in opened] == [("01", 6, T0)]


def test_flaps_one_after_another_raise_nothing() -> None:
    detector = IncidentDetector(RULES)
    for n in range(10):  # each down for 20 s, one every 25 s
        at = T0 + timedelta(seconds=25 * n)
        drop(detector, f"H{n}", "01", at)
        for second in range(0, 25, 5):
            assert detector.tick(at + timedelta(seconds=second), REGISTERED) == ([], [])
            if second == 20:
                detector.back("S1", f"H{n}")
    assert detector.tick(T0 + timedelta(minutes=10), REGISTERED) == ([], [])


def test_short_flaps_together_below_the_share_raise_nothing() -> None:
    detector = IncidentDetector(RULES)
    for n in range(5):  # 5 of 20 together: under the 30 %
        drop(detector, f"H{n}", "01", T0)
    assert detector.tick(T0 + timedelta(seconds=10), REGISTERED) == ([], [])
    for n in range(5):
        detector.back("S1", f"H{n}")  # back within the grace
    assert detector.tick(T0 + timedelta(seconds=120), REGISTERED) == ([], [])


def test_scattered_drops_below_the_share_raise_nothing() -> None:
    detector = IncidentDetector(RULES)
    big = {("S1", "province", "01"): 100}
    for n in range(10):  # 10 of 100 is under the 30 %
        drop(detector, f"H{n}", "01", T0)
    assert detector.tick(T0 + timedelta(seconds=70), big) == ([], [])


def test_the_incidents_of_a_session_no_longer_on_air_close() -> None:
    detector = IncidentDetector(RULES)
    for n in range(8):
        drop(detector, f"H{n}", "01", T0)
    (incident,), _ = detector.tick(T0 + timedelta(seconds=1), REGISTERED, on_air={"S1"})
    assert detector.tick(T0 + timedelta(seconds=2), REGISTERED, on_air=set()) == ([], [incident])


def status(point: str, state: PointState, at: datetime = T0) -> PointStatusRecord:
    return PointStatusRecord(session_code="S1", point_code=point, state=state, learners=0, since=at)


HALL = PointRecord(
    code="H0", name="H0", level=Level.COMMUNE, channel=Channel.TEAMS, province_code="01"
)


def test_a_status_from_present_to_disconnected_is_a_drop_of_its_province_and_channel() -> None:
    detector = IncidentDetector(RULES)
    connected, gone = status("H0", PointState.CONNECTED), status("H0", PointState.DISCONNECTED)
    detector.status_changed(connected, gone, HALL)
    for n in range(1, 5):
        detector.dropped("S1", f"H{n}", [("S1", "channel", "teams")], T0)
    registered = REGISTERED | {("S1", "channel", "teams"): 5}
    opened, _ = detector.tick(T0 + timedelta(seconds=61), registered)
    assert [(i.kind, i.group, sorted(i.points)) for i in opened] == [
        ("channel", "teams", ["H0", "H1", "H2", "H3", "H4"])
    ]


def test_statuses_that_are_no_drop_count_nothing() -> None:
    detector = IncidentDetector(RULES)
    never, gone = status("H0", PointState.NEVER_CONNECTED), status("H0", PointState.DISCONNECTED)
    detector.status_changed(gone, gone, HALL)  # still disconnected: no new drop
    detector.status_changed(never, gone, None)  # a point no longer registered
    detector.status_changed(None, status("H0", PointState.CONNECTED), HALL)  # a first status
    assert detector.tick(T0 + timedelta(minutes=5), REGISTERED) == ([], [])


def test_a_present_status_ends_the_drop_before_its_grace() -> None:
    detector = IncidentDetector(RULES)
    for n in range(8):
        drop(detector, f"H{n}", "01", T0)
    for n in range(8):
        detector.status_changed(
            status(f"H{n}", PointState.DISCONNECTED), status(f"H{n}", PointState.LATE), HALL
        )
    assert detector.tick(T0 + timedelta(seconds=70), REGISTERED) == ([], [])


def test_goodbyes_and_silences_after_the_session_are_no_drops() -> None:
    detector = IncidentDetector(RULES)
    for n in range(8):
        left = status(f"H{n}", PointState.DISCONNECTED)
        left.last_heartbeat_at = left.since  # said it left: its status is its last heartbeat
        detector.status_changed(status(f"H{n}", PointState.CONNECTED), left, HALL)
    for n in range(8, 16):
        gone = status(f"H{n}", PointState.DISCONNECTED)
        detector.status_changed(status(f"H{n}", PointState.CONNECTED), gone, HALL, on_air=False)
    registered = REGISTERED | {("S1", "channel", "teams"): 100}
    assert detector.tick(T0 + timedelta(seconds=70), registered) == ([], [])
    for n in range(16, 24):  # silent while on air: dropped
        detector.status_changed(
            status(f"H{n}", PointState.CONNECTED), status(f"H{n}", PointState.DISCONNECTED), HALL
        )
    opened, _ = detector.tick(T0 + timedelta(seconds=71), registered)
    assert [(i.group, sorted(i.points)) for i in opened] == [
        ("01", [f"H{n}" for n in range(16, 24)])
    ]


@given(
    starts=st.lists(st.integers(0, 600), min_size=1, max_size=40),
    lasting=st.integers(1, 59),
)
def test_points_never_down_together_enough_and_each_back_within_the_grace_open_nothing(
    starts: list[int], lasting: int
) -> None:
    """However many flaps, at most 5 at once (under 30 % of 20) and each shorter than the grace:
    no incident."""
    detector = IncidentDetector(RULES)
    downs = sorted((start, f"H{n}") for n, start in enumerate(starts))
    ups: list[tuple[int, str]] = []
    opened: list[object] = []
    for second in range(0, 700):
        now = T0 + timedelta(seconds=second)
        for up in [u for u in ups if u[0] == second]:
            detector.back("S1", up[1])
            ups.remove(up)
        for _, point in [d for d in downs if d[0] == second]:
            if len(ups) < 5:
                drop(detector, point, "01", now)
                ups.append((second + lasting, point))
        opened += detector.tick(now, REGISTERED)[0]
    assert opened == []


@given(
    spread=st.lists(st.integers(0, 15), min_size=6, max_size=20),
    first_tick=st.integers(0, 15),
)
def test_enough_points_down_together_open_one_incident_at_the_first_tick_after(
    spread: list[int], first_tick: int
) -> None:
    detector = IncidentDetector(RULES)
    for n, offset in enumerate(spread):
        drop(detector, f"H{n}", "01", T0 + timedelta(seconds=offset))
    last = T0 + timedelta(seconds=max(max(spread), first_tick))
    opened, _ = detector.tick(last, REGISTERED)
    assert [(i.group, len(i.points), i.opened_at) for i in opened] == [
        ("01", len(spread), T0 + timedelta(seconds=min(spread)))
    ]
