"""Who may send which heartbeat: a point for itself, a gateway for the points of its provinces."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attendance.admission import LEAD_IN, Reason, Refusal, admitted, session_to_show
from contracts.events import Channel, Level, PointRegistration, SessionSchedule
from contracts.registry import RegistryTable

STARTS = datetime(2026, 11, 23, 1, tzinfo=UTC)
ENDS = datetime(2026, 11, 23, 4, tzinfo=UTC)
DURING = STARTS + timedelta(hours=1)


def refusal_of(
    registry: RegistryTable,
    sender: PointRegistration,
    point_code: str,
    session_code: str | None,
    relays_for: frozenset[str] = frozenset(),
    now: datetime = DURING,
) -> Refusal | None:
    filed = admitted(registry, sender, point_code, session_code, now, relays_for)
    if isinstance(filed, str):
        assert filed == (session_code or filed)
        return None
    return filed


def a_point(code: str, province: str, **changes: object) -> PointRegistration:
    fields: dict[str, object] = {
        "code": code,
        "name": code,
        "level": Level.COMMUNE,
        "province_code": province,
        "channel": Channel.VIDEO_BRIDGE,
        "courses": ("K1",),
        "token_hash": f"hash-{code}",
    }
    return PointRegistration.model_validate(fields | changes)


@pytest.fixture
def registry() -> RegistryTable:
    table = RegistryTable()
    for point in (
        a_point("GW", "01", relays_for=("01", "08")),
        a_point("HN", "01"),
        a_point("TQ", "08"),
        a_point("HP", "31"),
        a_point("OFF", "01", active=False),
        a_point("K2", "01", courses=("K2",)),
        a_point("NOWHERE", "01", province_code=None),
    ):
        table.put_point(point)
    table.put_session(
        SessionSchedule(
            code="K1-S1",
            course_code="K1",
            starts_at=STARTS,
            ends_at=ENDS,
        )
    )
    return table


@pytest.mark.parametrize(
    ("point_code", "session_code", "reason"),
    [
        ("GW", "K1-S1", None),  # itself
        ("HN", "K1-S1", None),  # a point of a province it relays for
        ("TQ", "K1-S1", None),
        ("HP", "K1-S1", Reason.WRONG_POINT),  # another province
        ("NOWHERE", "K1-S1", Reason.WRONG_POINT),  # no province at all
        ("GHOST", "K1-S1", Reason.WRONG_POINT),  # not registered
        ("HN", "K9-S1", Reason.UNKNOWN_SESSION),
        ("OFF", "K1-S1", Reason.NOT_ENROLLED),  # deactivated
        ("K2", "K1-S1", Reason.NOT_ENROLLED),  # another course
    ],
)
def test_a_gateway_speaks_for_the_enrolled_points_of_its_provinces(
    registry: RegistryTable, point_code: str, session_code: str, reason: Reason | None
) -> None:
    gateway = registry.points["GW"]
    refusal = refusal_of(registry, gateway, point_code, session_code, frozenset(gateway.relays_for))
    assert (refusal and refusal.reason) == reason


def test_a_plain_point_speaks_only_for_itself(registry: RegistryTable) -> None:
    hanoi = registry.points["HN"]
    assert refusal_of(registry, hanoi, "HN", "K1-S1") is None
    refusal = refusal_of(registry, hanoi, "GW", "K1-S1")
    assert refusal is not None
    assert (refusal.status, refusal.reason) == (403, Reason.WRONG_POINT)
    unknown = refusal_of(registry, hanoi, "HN", "K9-S1")
    assert unknown is not None and unknown.status == 404


def a_session(code: str, course: str, starts: datetime, hours: float = 3) -> SessionSchedule:
    return SessionSchedule(
        code=code, course_code=course, starts_at=starts, ends_at=starts + timedelta(hours=hours)
    )


def test_a_heartbeat_naming_no_session_is_filed_under_the_one_on_air(
    registry: RegistryTable,
) -> None:
    hanoi = registry.points["HN"]
    afternoon = STARTS + timedelta(hours=5)
    registry.put_session(a_session("K1-S2", "K1", afternoon))
    registry.put_session(a_session("K2-S1", "K2", DURING))  # another course, on air too
    assert admitted(registry, hanoi, "HN", None, DURING) == "K1-S1"
    assert admitted(registry, hanoi, "HN", None, afternoon + timedelta(hours=1)) == "K1-S2"
    # Ahead of its start, within the lead-in: the room is checking its link.
    assert admitted(registry, hanoi, "HN", None, afternoon - LEAD_IN) == "K1-S2"
    # Between the two, beyond the lead-in: nothing to file it under, and it is said plainly.
    between = admitted(registry, hanoi, "HN", None, ENDS + timedelta(minutes=30))
    assert isinstance(between, Refusal)
    assert (between.status, between.reason) == (409, Reason.OFF_AIR)
    # A gateway's relayed point: its own courses decide, not the gateway's.
    gateway = registry.points["GW"]
    relays = frozenset(gateway.relays_for)
    assert admitted(registry, gateway, "K2", None, DURING, relays) == "K2-S1"
    assert refusal_of(registry, gateway, "HP", None, relays) is not None  # not its province
    off = refusal_of(registry, registry.points["OFF"], "OFF", None)
    assert off is not None and off.reason is Reason.NOT_ENROLLED


def test_two_sessions_on_air_at_once_must_be_named(registry: RegistryTable) -> None:
    registry.put_session(a_session("K1-S9", "K1", STARTS + timedelta(minutes=30)))
    hanoi = registry.points["HN"]
    both = admitted(registry, hanoi, "HN", None, DURING)
    assert isinstance(both, Refusal)
    assert (both.status, both.reason) == (409, Reason.OFF_AIR)
    assert "K1-S1" in both.detail and "K1-S9" in both.detail
    assert admitted(registry, hanoi, "HN", "K1-S9", DURING) == "K1-S9"
    # One on air and one only about to start: the one on air.
    registry.sessions.pop("K1-S9")
    registry.put_session(a_session("K1-S3", "K1", ENDS - timedelta(minutes=10)))
    assert admitted(registry, hanoi, "HN", None, ENDS - timedelta(minutes=20)) == "K1-S1"


@given(st.integers(-24 * 60, 24 * 60))
def test_filed_only_under_a_session_of_its_course_on_air_or_about_to_start(minute: int) -> None:
    registry = RegistryTable()
    point = a_point("HN", "01")
    registry.put_point(point)
    registry.put_session(a_session("K1-S1", "K1", STARTS))
    registry.put_session(a_session("K2-S1", "K2", STARTS))
    now = STARTS + timedelta(minutes=minute)
    filed = admitted(registry, point, "HN", None, now)
    expected = "K1-S1" if STARTS - LEAD_IN <= now <= STARTS + timedelta(hours=3) else None
    assert (filed if isinstance(filed, str) else None) == expected


def test_a_points_page_announces_its_session_on_air_else_its_next(registry: RegistryTable) -> None:
    hanoi = registry.points["HN"]
    afternoon = a_session("K1-S2", "K1", STARTS + timedelta(hours=5))
    registry.put_session(afternoon)
    registry.put_session(a_session("K2-S1", "K2", STARTS - timedelta(hours=1)))  # not its course

    def shown(at: datetime) -> str | None:
        session = session_to_show(registry, hanoi, at)
        return None if session is None else session.code

    assert shown(STARTS - timedelta(days=1)) == "K1-S1"
    assert shown(DURING) == "K1-S1"
    assert shown(ENDS + timedelta(minutes=1)) == "K1-S2"
    assert shown(afternoon.ends_at + timedelta(seconds=1)) is None
