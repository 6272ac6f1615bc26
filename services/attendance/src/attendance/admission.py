"""Who may send which heartbeat: a point for itself, a relay gateway for the points of its
provinces, and only into a session of a course the point is enrolled in; and, for a heartbeat
that names no session, which session it is filed under.

Pure: the registry as attendance holds it in, the session filed under (or a refusal) out.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from contracts.events import PointRegistration, SessionSchedule
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
    OFF_AIR = "off_air"


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: Reason
    detail: str


# Rooms connect ahead of the broadcast to check their link: a heartbeat naming no session is
# filed under the next one this long before it starts.
LEAD_IN = timedelta(minutes=30)


def admitted(
    registry: RegistryTable,
    sender: PointRegistration,
    point_code: str,
    session_code: str | None,
    now: datetime,
    relays_for: frozenset[str] = frozenset(),
) -> str | Refusal:
    """The session a heartbeat of `point_code` from `sender` is filed under (`session_code`, or
    when None the point's session on air at `now`), or why it is refused.

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
    if session_code is None:
        return on_air(registry, point, now)
    session = registry.sessions.get(session_code)
    if session is None:
        return Refusal(404, Reason.UNKNOWN_SESSION, "unknown session")
    if not point.active or session.course_code not in point.courses:
        return Refusal(403, Reason.NOT_ENROLLED, "point not enrolled in this session")
    return session_code


def on_air(registry: RegistryTable, point: PointRegistration, now: datetime) -> str | Refusal:
    """The session of `point`'s courses on air at `now`; when none is, the one starting within
    `LEAD_IN`. A 409 when there is none, or more than one (then the heartbeat must name it)."""
    if not point.active:
        return Refusal(403, Reason.NOT_ENROLLED, "point deactivated")
    airing, starting = [], []
    for session in registry.sessions.values():
        if session.course_code not in point.courses:
            continue
        if session.starts_at <= now <= session.ends_at:
            airing.append(session.code)
        elif session.starts_at - LEAD_IN <= now < session.starts_at:
            starting.append(session.code)
    found = airing or starting
    if len(found) == 1:
        return found[0]
    if not found:
        detail = "no session of this point's courses is on air or starts within 30 minutes"
        return Refusal(409, Reason.OFF_AIR, detail)
    named = ", ".join(sorted(found))
    return Refusal(409, Reason.OFF_AIR, f"several sessions on air ({named}): name one")


def session_to_show(
    registry: RegistryTable, point: PointRegistration, now: datetime
) -> SessionSchedule | None:
    """What a point's own page announces: its session on air (the one ending first, if
    several), else its next one; None when none is left."""
    ahead = [
        session
        for session in registry.sessions.values()
        if session.course_code in point.courses and session.ends_at >= now
    ]
    airing = [session for session in ahead if session.starts_at <= now]
    if airing:
        return min(airing, key=lambda session: session.ends_at)
    return min(ahead, key=lambda session: session.starts_at, default=None)
