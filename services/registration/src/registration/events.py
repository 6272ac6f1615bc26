"""Registry rows -> the outbox events that describe them on the compacted registry topics."""

from contracts.codec import encode
from contracts.events import PointRegistration, SessionSchedule
from contracts.topics import REGISTRY_POINTS, REGISTRY_SESSIONS, point_key, session_key
from registration.store import Broadcast, OutboxEvent, Point


def point_registration(point: Point, courses: list[str]) -> PointRegistration:
    return PointRegistration(
        code=point.code,
        name=point.name,
        level=point.level,
        province_code=point.province_code,
        unit_code=point.unit_code,
        channel=point.channel,
        host=point.host,
        phone=point.phone,
        expected_learners=point.expected_learners,
        courses=tuple(sorted(courses)),
        active=point.active,
        token_hash=point.token_hash,
    )


def point_changed(point: Point, courses: list[str]) -> OutboxEvent:
    payload = encode(point_registration(point, courses))
    return OutboxEvent(topic=REGISTRY_POINTS.name, key=point_key(point.code), payload=payload)


def point_removed(code: str) -> OutboxEvent:
    return OutboxEvent(topic=REGISTRY_POINTS.name, key=point_key(code), payload=None)


def session_changed(broadcast: Broadcast) -> OutboxEvent:
    schedule = SessionSchedule(
        code=broadcast.code,
        course_code=broadcast.course_code,
        title=broadcast.title,
        topic=broadcast.topic,
        starts_at=broadcast.starts_at,
        ends_at=broadcast.ends_at,
        heartbeat_interval_s=broadcast.heartbeat_interval_s,
        late_after_s=broadcast.late_after_s,
        disconnected_after_s=broadcast.disconnected_after_s,
    )
    payload = encode(schedule)
    return OutboxEvent(
        topic=REGISTRY_SESSIONS.name, key=session_key(broadcast.code), payload=payload
    )


def session_removed(code: str) -> OutboxEvent:
    return OutboxEvent(topic=REGISTRY_SESSIONS.name, key=session_key(code), payload=None)
