"""Changes to the registry. Each writes its rows and the events describing them in one
transaction (the outbox), so an event is published exactly for the changes that committed."""

from sqlmodel import Session, select

from contracts.tokens import hash_token, new_token
from registration.events import point_event, session_event
from registration.store import (
    Broadcast,
    BroadcastBase,
    Course,
    CourseBase,
    Enrolment,
    Point,
    PointCreate,
)


class Conflict(Exception):
    """The change clashes with what the registry holds (a duplicate code, an overlap)."""


class Invalid(Exception):
    """The change refers to something that does not exist or breaks a rule."""


def create_course(*, db: Session, course_in: CourseBase) -> Course:
    if db.get(Course, course_in.code) is not None:
        raise Conflict(f"course {course_in.code} already exists")
    if course_in.starts_on and course_in.ends_on and course_in.ends_on < course_in.starts_on:
        raise Invalid("a course cannot end before it starts")
    course = Course.model_validate(course_in)
    db.add(course)
    db.commit()
    db.refresh(course)
    return course


def create_session(*, db: Session, session_in: BroadcastBase) -> Broadcast:
    if db.get(Broadcast, session_in.code) is not None:
        raise Conflict(f"session {session_in.code} already exists")
    if db.get(Course, session_in.course_code) is None:
        raise Invalid(f"unknown course {session_in.course_code}")
    if session_in.ends_at <= session_in.starts_at:
        raise Invalid("a session must end after it starts")
    if session_in.late_after_s >= session_in.disconnected_after_s:
        raise Invalid("late_after_s must be shorter than disconnected_after_s")
    overlapping = db.exec(
        select(Broadcast).where(
            Broadcast.course_code == session_in.course_code,
            Broadcast.starts_at < session_in.ends_at,
            Broadcast.ends_at > session_in.starts_at,
        )
    ).first()
    if overlapping is not None:
        raise Conflict(f"overlaps session {overlapping.code} of the same course")
    broadcast = Broadcast.model_validate(session_in)
    db.add(broadcast)
    db.add(session_event(broadcast))
    db.commit()
    db.refresh(broadcast)
    return broadcast


def create_point(*, db: Session, point_in: PointCreate) -> tuple[Point, str]:
    """Register a point; returns it with its token, which is never stored nor shown again."""
    if db.get(Point, point_in.code) is not None:
        raise Conflict(f"point {point_in.code} already exists")
    courses = sorted(set(point_in.courses))
    for code in courses:
        if db.get(Course, code) is None:
            raise Invalid(f"unknown course {code}")
    token = new_token()
    point = Point.model_validate(point_in, update={"token_hash": hash_token(token)})
    db.add(point)
    db.flush()  # the point row must exist before the enrolments that refer to it
    db.add_all(Enrolment(point_code=point.code, course_code=code) for code in courses)
    db.add(point_event(point, courses))
    db.commit()
    db.refresh(point)
    return point, token
