"""Changes to the registry. Each writes its rows and the events describing them in one
transaction (the outbox), so an event is published exactly for the changes that committed."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete
from sqlmodel import Session, col, select

from contracts.codec import problems
from contracts.text import search_text
from contracts.tokens import hash_token, new_token
from registration.events import point_changed, point_removed, session_changed, session_removed
from registration.store import (
    Broadcast,
    BroadcastCreate,
    BroadcastUpdate,
    Course,
    CourseCreate,
    CourseUpdate,
    Enrolment,
    Point,
    PointCreate,
    PointUpdate,
    courses_of,
    courses_of_points,
    new_point,
)


class NotFound(LookupError):
    """The change names a course, session or point the registry does not hold."""


class Conflict(Exception):
    """The change clashes with what the registry holds (a duplicate code, an overlap)."""


class Invalid(ValueError):
    """The change breaks a rule of the registry."""


# --- courses -------------------------------------------------------------------------------------


def create_course(*, db: Session, course_in: CourseCreate) -> Course:
    if db.get(Course, course_in.code) is not None:
        raise Conflict(f"course {course_in.code} already exists")
    course = Course.model_validate(course_in)
    db.add(course)
    db.commit()
    db.refresh(course)
    return course


def update_course(*, db: Session, code: str, course_in: CourseUpdate) -> Course:
    course = get_course(db=db, code=code)
    merged = _merged(CourseCreate, course, course_in)
    course.sqlmodel_update(merged.model_dump(exclude={"code"}))
    db.add(course)
    db.commit()
    db.refresh(course)
    return course


def delete_course(*, db: Session, code: str) -> None:
    course = get_course(db=db, code=code)
    if db.exec(select(Broadcast.code).where(Broadcast.course_code == code)).first():
        raise Conflict(f"course {code} still has sessions; remove them first")
    if db.exec(select(Enrolment.point_code).where(Enrolment.course_code == code)).first():
        raise Conflict(f"course {code} still has enrolled points; unenrol them first")
    db.delete(course)
    db.commit()


def get_course(*, db: Session, code: str) -> Course:
    course = db.get(Course, code)
    if course is None:
        raise NotFound(f"unknown course {code}")
    return course


# --- sessions ------------------------------------------------------------------------------------


def create_session(*, db: Session, session_in: BroadcastCreate) -> Broadcast:
    if db.get(Broadcast, session_in.code) is not None:
        raise Conflict(f"session {session_in.code} already exists")
    get_course(db=db, code=session_in.course_code)
    _refuse_overlap(db, session_in)
    broadcast = Broadcast.model_validate(session_in)
    db.add(broadcast)
    db.add(session_changed(broadcast))
    db.commit()
    db.refresh(broadcast)
    return broadcast


def update_session(*, db: Session, code: str, session_in: BroadcastUpdate) -> Broadcast:
    broadcast = get_session(db=db, code=code)
    merged = _merged(BroadcastCreate, broadcast, session_in)
    _refuse_overlap(db, merged)
    broadcast.sqlmodel_update(merged.model_dump(exclude={"code", "course_code"}))
    db.add(broadcast)
    db.add(session_changed(broadcast))
    db.commit()
    db.refresh(broadcast)
    return broadcast


def delete_session(*, db: Session, code: str) -> None:
    db.delete(get_session(db=db, code=code))
    db.add(session_removed(code))
    db.commit()


def get_session(*, db: Session, code: str) -> Broadcast:
    broadcast = db.get(Broadcast, code)
    if broadcast is None:
        raise NotFound(f"unknown session {code}")
    return broadcast


def _refuse_overlap(db: Session, session_in: BroadcastCreate) -> None:
    overlapping = db.exec(
        select(Broadcast.code).where(
            Broadcast.course_code == session_in.course_code,
            Broadcast.code != session_in.code,
            col(Broadcast.starts_at) < session_in.ends_at,
            col(Broadcast.ends_at) > session_in.starts_at,
        )
    ).first()
    if overlapping is not None:
        raise Conflict(f"overlaps session {overlapping} of the same course")


# --- points --------------------------------------------------------------------------------------


def create_point(*, db: Session, point_in: PointCreate) -> tuple[Point, str]:
    """Register a point; returns it with its token, which is never stored nor shown again."""
    if db.get(Point, point_in.code) is not None:
        raise Conflict(f"point {point_in.code} already exists")
    _require_courses(db, point_in.courses)
    token = new_token()
    point = new_point(point_in, token_hash=hash_token(token), now=datetime.now(UTC))
    db.add(point)
    db.flush()  # the point row must exist before the enrolments that refer to it
    db.add_all(Enrolment(point_code=point.code, course_code=code) for code in point_in.courses)
    db.add(point_changed(point, point_in.courses))
    db.commit()
    db.refresh(point)
    return point, token


def update_point(*, db: Session, code: str, point_in: PointUpdate) -> Point:
    point = get_point(db=db, code=code)
    changes = point_in.model_dump(exclude_unset=True)
    courses = changes.pop("courses", None)
    merged = _merged(PointCreate, point, PointUpdate.model_validate(changes))
    point.sqlmodel_update(merged.model_dump(exclude={"code", "courses"}))
    if "active" in changes and changes["active"] is not None:
        point.active = changes["active"]
    point.search_text = search_text(point.code, point.name, point.host)
    point.updated_at = datetime.now(UTC)
    if courses is not None:
        wanted = sorted({c.strip() for c in courses if c.strip()})
        _require_courses(db, wanted)
        db.exec(delete(Enrolment).where(col(Enrolment.point_code) == code))
        db.add_all(Enrolment(point_code=code, course_code=c) for c in wanted)
    _save_point(db, point)
    return point


def delete_point(*, db: Session, code: str) -> None:
    point = get_point(db=db, code=code)
    db.exec(delete(Enrolment).where(col(Enrolment.point_code) == code))
    db.delete(point)
    db.add(point_removed(code))
    db.commit()


def rotate_token(*, db: Session, code: str) -> str:
    """A new token for the point; the old one stops working once attendance hears of it."""
    point = get_point(db=db, code=code)
    token = new_token()
    point.token_hash = hash_token(token)
    _save_point(db, point)
    return token


@dataclass(frozen=True)
class Printed:
    """A point whose sheet is printed, with the token on it; `replaces`: when the sheet it
    replaces was printed (whose link stops working)."""

    point: Point
    token: str
    replaces: datetime | None


def print_sheets(
    *, db: Session, course_code: str, province: str | None, again: bool, now: datetime
) -> tuple[list[Printed], int]:
    """New tokens for the sheets of the course's active points (of `province`, when given),
    by province then code: those never printed, or with `again` all of them. A sheet's token
    replaces the point's token, so a sheet is never printed twice without saying so. Also
    how many were left out, printed before. One transaction, tokens and events together."""
    get_course(db=db, code=course_code)
    query = (
        select(Point)
        .join(Enrolment, col(Enrolment.point_code) == col(Point.code))
        .where(Enrolment.course_code == course_code, col(Point.active))
        .order_by(col(Point.province_code), col(Point.code))
    )
    if province is not None:
        query = query.where(Point.province_code == province)
    printed, skipped = [], 0
    for point in db.exec(query).all():
        if point.sheet_printed_at is not None and not again:
            skipped += 1
            continue
        token = new_token()
        printed.append(Printed(point, token, point.sheet_printed_at))
        point.token_hash, point.sheet_printed_at, point.updated_at = hash_token(token), now, now
        db.add(point)
    db.flush()
    courses = courses_of_points(db, [sheet.point.code for sheet in printed])
    for sheet in printed:
        db.add(point_changed(sheet.point, courses[sheet.point.code]))
    db.commit()
    return printed, skipped


def revoke_token(*, db: Session, code: str) -> None:
    point = get_point(db=db, code=code)
    point.token_hash = None
    _save_point(db, point)


def get_point(*, db: Session, code: str) -> Point:
    point = db.get(Point, code)
    if point is None:
        raise NotFound(f"unknown point {code}")
    return point


def _save_point(db: Session, point: Point) -> None:
    point.updated_at = datetime.now(UTC)
    db.add(point)
    db.flush()
    db.add(point_changed(point, courses_of(db, point.code)))
    db.commit()
    db.refresh(point)


def _require_courses(db: Session, codes: list[str]) -> None:
    known = set(db.exec(select(Course.code).where(col(Course.code).in_(codes))).all())
    unknown = sorted(set(codes) - known)
    if unknown:
        raise Invalid(f"unknown course {', '.join(unknown)}")


def _merged(model: Any, stored: Any, changes: Any) -> Any:
    """The stored record with the changes applied, validated again as a whole."""
    fields = stored.model_dump() | changes.model_dump(exclude_unset=True)
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        raise Invalid(problems(error, 1)) from None
