"""Upserting thousands of points in one transaction, with their events, in a few statements.

Rows stay plain dictionaries on this path: building ORM objects for 100,000 points would cost
more than everything else the import does.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import insert, update
from sqlmodel import Session, col, select

from contracts.text import search_text
from contracts.tokens import hash_token, new_token
from registration.events import point_changed_row
from registration.store import CODES_A_QUERY, Enrolment, OutboxEvent, Point, PointCreate

T = TypeVar("T")
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
# Kept as stored on an import, which never changes them (a sheet has no column for them).
KEPT_FIELDS = ("active", "token_hash", "relays_for")
STORED_FIELDS = ("code", *DATA_FIELDS, *KEPT_FIELDS)


@dataclass
class Upserted:
    created: list[tuple[str, str, str]] = field(default_factory=list)  # code, name, new token
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
    events: list[dict[str, Any]] = []
    for row in rows:
        fields = row.model_dump(include={"code", *DATA_FIELDS})
        fields["search_text"] = search_text(row.code, row.name, row.host)
        stored = existing.get(row.code)
        courses = enrolled.get(row.code, set())
        added = set(row.courses) - courses
        new_enrolments += [{"point_code": row.code, "course_code": c} for c in sorted(added)]
        if stored is None:
            token = new_token()
            fields |= {"active": True, "token_hash": hash_token(token), "relays_for": []}
            inserts.append(fields | {"created_at": now, "updated_at": now})
            outcome.created.append((row.code, row.name, token))
        elif added or any(stored[f] != fields[f] for f in DATA_FIELDS):
            fields |= {name: stored[name] for name in KEPT_FIELDS}
            updates.append(fields | {"updated_at": now})
            outcome.updated.append(row.code)
        else:
            outcome.unchanged += 1
            continue
        events.append(point_changed_row(fields, courses | added))
    for statement, items in (
        (insert(Point), inserts),
        (update(Point), updates),
        (insert(Enrolment), new_enrolments),
        (insert(OutboxEvent), events),
    ):
        for chunk in _chunks(items):
            db.execute(statement, chunk)
    return outcome


def _existing(db: Session, codes: list[str]) -> dict[str, dict[str, Any]]:
    columns = [col(getattr(Point, name)) for name in STORED_FIELDS]
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(codes):
        for stored in db.execute(select(*columns).where(col(Point.code).in_(chunk))):
            found[stored.code] = dict(stored._mapping)
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


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CODES_A_QUERY):
        yield items[start : start + CODES_A_QUERY]
