"""One incident when a province loses many points at once; nothing for short flaps."""

from datetime import UTC, datetime, timedelta

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
