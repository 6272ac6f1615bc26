"""Upserting thousands of points in one transaction, with their events, in a few statements."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import insert, update
from sqlmodel import Session, col, select

from contracts.tokens import hash_token, new_token
from registration.events import point_changed
from registration.store import (
    Enrolment,
    OutboxEvent,
    Point,
    PointCreate,
    new_point,
    search_text,
)

T = TypeVar("T")
CHUNK = 500  # stays under every database's limit on bound parameters
DATA_FIELDS = (
    "name",
    "level",
    "province_code",
    "unit_code",
    "channel",
    "host",
    "phone",
    "expected_learners",
)


@dataclass
class Upserted:
    created: list[tuple[Point, str]] = field(default_factory=list)  # with the new token
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0


def upsert_points(db: Session, rows: Sequence[PointCreate]) -> Upserted:
    """Create new points (each with a token), update changed ones, and enrol them additively;
    an event goes to the outbox for every point created or changed, none for the rest."""
    outcome = Upserted()
    existing = _existing(db, [row.code for row in rows])
    enrolled = _enrolments(db, list(existing))
    now = datetime.now(UTC)
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    new_enrolments: list[dict[str, str]] = []
    events: list[OutboxEvent] = []
    for row in rows:
        stored = existing.get(row.code)
        courses = enrolled.get(row.code, set())
        added = set(row.courses) - courses
        new_enrolments += [{"point_code": row.code, "course_code": c} for c in sorted(added)]
        if stored is None:
            token = new_token()
            point = new_point(row, token_hash=hash_token(token), now=now)
            inserts.append(_columns(point))
            outcome.created.append((point, token))
        elif added or any(getattr(stored, f) != getattr(row, f) for f in DATA_FIELDS):
            point = stored.sqlmodel_update(row.model_dump(include=set(DATA_FIELDS)))
            point.search_text, point.updated_at = search_text(point), now
            updates.append(_columns(point))
            outcome.updated.append(row.code)
        else:
            outcome.unchanged += 1
            continue
        events.append(point_changed(point, sorted(courses | added)))
    for chunk in _chunks(inserts):
        db.execute(insert(Point), chunk)
    for chunk in _chunks(updates):
        db.execute(update(Point), chunk)
    for chunk in _chunks(new_enrolments):
        db.execute(insert(Enrolment), chunk)
    for chunk in _chunks([_event_columns(e) for e in events]):
        db.execute(insert(OutboxEvent), chunk)
    return outcome


def _existing(db: Session, codes: list[str]) -> dict[str, Point]:
    found: dict[str, Point] = {}
    for chunk in _chunks(codes):
        for point in db.exec(select(Point).where(col(Point.code).in_(chunk))):
            db.expunge(point)  # changed below as plain data, written back by bulk UPDATE
            found[point.code] = point
    return found


def _enrolments(db: Session, codes: list[str]) -> dict[str, set[str]]:
    courses: dict[str, set[str]] = {}
    for chunk in _chunks(codes):
        query = select(Enrolment.point_code, Enrolment.course_code).where(
            col(Enrolment.point_code).in_(chunk)
        )
        for point_code, course_code in db.exec(query):
            courses.setdefault(point_code, set()).add(course_code)
    return courses


def _columns(point: Point) -> dict[str, Any]:
    return point.model_dump()


def _event_columns(event: OutboxEvent) -> dict[str, Any]:
    return {
        "topic": event.topic,
        "key": event.key,
        "payload": event.payload,
        "created_at": event.created_at,
    }


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
