"""Registry rows -> the outbox events that describe them on the compacted registry topics."""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from contracts.accounts import Role
from contracts.codec import encode
from contracts.events import AccountGrant, PointRegistration, SessionSchedule
from contracts.topics import (
    REGISTRY_ACCOUNTS,
    REGISTRY_POINTS,
    REGISTRY_SESSIONS,
    account_key,
    point_key,
    session_key,
)
from registration.store import Broadcast, OutboxEvent, Point


def point_changed(point: Point, courses: list[str]) -> OutboxEvent:
    return OutboxEvent(**point_changed_row(point.model_dump(), courses))


def point_changed_row(point: Mapping[str, Any], courses: Iterable[str]) -> dict[str, Any]:
    """The outbox row of a point's new state, from the point's columns (bulk paths skip ORM
    objects: building 100,000 of them costs more than the whole import otherwise)."""
    registration = PointRegistration.model_validate(
        {**point, "courses": tuple(sorted(courses))}, from_attributes=False
    )
    return {
        "topic": REGISTRY_POINTS.name,
        "key": point_key(point["code"]),
        "payload": encode(registration),
        "created_at": datetime.now(UTC),
    }


def point_removed(code: str) -> OutboxEvent:
    return OutboxEvent(topic=REGISTRY_POINTS.name, key=point_key(code), payload=None)


def session_changed(broadcast: Broadcast) -> OutboxEvent:
    # The schedule's fields are the session's own, by name; the rest of the row is ignored.
    schedule = SessionSchedule.model_validate(broadcast.model_dump())
    return OutboxEvent(
        topic=REGISTRY_SESSIONS.name, key=session_key(broadcast.code), payload=encode(schedule)
    )


def session_removed(code: str) -> OutboxEvent:
    return OutboxEvent(topic=REGISTRY_SESSIONS.name, key=session_key(code), payload=None)


def account_changed(
    name: str, role: str, provinces: Iterable[str], token_hash: str | None
) -> OutboxEvent:
    """An account's grant as it now stands; without a token hash once revoked."""
    grant = AccountGrant(
        name=name, role=Role(role), provinces=tuple(sorted(provinces)), token_hash=token_hash
    )
    return OutboxEvent(topic=REGISTRY_ACCOUNTS.name, key=account_key(name), payload=encode(grant))
