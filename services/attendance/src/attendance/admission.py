"""Who may send which heartbeat: a point for itself, a relay gateway for the points of its
provinces, and only into a session of a course the point is enrolled in.

Pure: the registry as attendance holds it in, a refusal (or none) out.
"""

from dataclasses import dataclass
from enum import StrEnum

from contracts.events import PointRegistration
from contracts.registry import RegistryTable


class Reason(StrEnum):
    """Why a heartbeat (or a whole request) was refused; also the label of the metric."""

    UNAUTHENTICATED = "unauthenticated"
    NOT_GATEWAY = "not_gateway"
    WRONG_POINT = "wrong_point"
    NOT_ENROLLED = "not_enrolled"
    UNKNOWN_SESSION = "unknown_session"
    INVALID = "invalid"
    RATE_LIMITED = "rate_limited"
    KAFKA_UNAVAILABLE = "kafka_unavailable"
    REGISTRY_LOADING = "registry_loading"
    TOO_LARGE = "too_large"


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: Reason
    detail: str


def refusal_of(
    registry: RegistryTable,
    sender: PointRegistration,
    point_code: str,
    session_code: str,
    relays_for: frozenset[str] = frozenset(),
) -> Refusal | None:
    """Why `sender` may not send a heartbeat of `point_code` in `session_code`, or None.

    `relays_for` are the provinces whose points `sender` forwards for; empty for a plain point.
    """
    if point_code == sender.code:
        point = sender
    else:
        relayed = registry.points.get(point_code)
        if relayed is None or relayed.province_code not in relays_for:
            detail = (
                "not a point of a province this gateway relays for"
                if relays_for
                else "a point may only speak for itself"
            )
            return Refusal(403, Reason.WRONG_POINT, detail)
        point = relayed
    session = registry.sessions.get(session_code)
    if session is None:
        return Refusal(404, Reason.UNKNOWN_SESSION, "unknown session")
    if not point.active or session.course_code not in point.courses:
        return Refusal(403, Reason.NOT_ENROLLED, "point not enrolled in this session")
    return None
