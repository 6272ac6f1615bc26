"""One incident when a province loses many points at once; nothing for short flaps."""

from datetime import UTC, datetime, timedelta

from contracts.events import Channel, Level, PointState
from contracts.wire import PointRecord, PointStatusRecord
from reporting.incidents import IncidentDetector, IncidentRules

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
RULES = IncidentRules(
    grace=timedelta(seconds=60), window=timedelta(minutes=3), min_points=5, min_share=0.3
)
REGISTERED = {("S1", "province", "01"): 20, ("S1", "province", "38"): 20}


def drop(detector: IncidentDetector, point: str, province: str, at: datetime) -> None:
    detector.dropped("S1", point, [("S1", "province", province)], at)


def test_many_drops_in_one_province_make_one_incident() -> None:
    detector = IncidentDetector(RULES)
    for n in range(8):
        drop(detector, f"H{n}", "01", T0 + timedelta(seconds=n))
    drop(detector, "T1", "38", T0)
    assert detector.tick(T0 + timedelta(seconds=30), REGISTERED) == ([], [])  # within the grace
    opened, closed = detector.tick(T0 + timedelta(seconds=70), REGISTERED)
    assert [(i.kind, i.group, len(i.points)) for i in opened] == [("province", "01", 8)]
    assert detector.tick(T0 + timedelta(seconds=71), REGISTERED) == ([], [])  # not raised twice
    for n in range(6):
        detector.back("S1", f"H{n}")
    opened, closed = detector.tick(T0 + timedelta(seconds=90), REGISTERED)
    assert [(i.group, i.closed_at is not None) for i in closed] == [("01", True)]
    assert detector.opened_total["province"] == 1


def test_short_flaps_raise_nothing() -> None:
    detector = IncidentDetector(RULES)
    for n in range(10):
        drop(detector, f"H{n}", "01", T0)
    for n in range(10):
        detector.back("S1", f"H{n}")  # back within the grace
    assert detector.tick(T0 + timedelta(seconds=120), REGISTERED) == ([], [])


def test_scattered_drops_below_the_share_raise_nothing() -> None:
    detector = IncidentDetector(RULES)
    big = {("S1", "province", "01"): 100}
    for n in range(10):  # 10 of 100 is under the 30 % share
        drop(detector, f"H{n}", "01", T0)
    assert detector.tick(T0 + timedelta(seconds=70), big) == ([], [])


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
