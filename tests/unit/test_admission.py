"""Who may send which heartbeat: a point for itself, a gateway for the points of its provinces."""

from datetime import UTC, datetime

import pytest

from attendance.admission import Reason, refusal_of
from contracts.events import Channel, Level, PointRegistration, SessionSchedule
from contracts.registry import RegistryTable


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
            starts_at=datetime(2026, 11, 23, 1, tzinfo=UTC),
            ends_at=datetime(2026, 11, 23, 4, tzinfo=UTC),
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
