"""Tables of the registry and the outbox, the shapes the API takes and gives, and the queries.

One SQLModel chain per entity: `XBase` (shared fields) -> `XCreate` / `XUpdate` (input) ->
`X(table=True)` (storage) -> `XPublic` (output).
"""

from datetime import UTC, date, datetime
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    StringConstraints,
    field_validator,
    model_validator,
)
from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    LargeBinary,
    TypeDecorator,
    func,
)
from sqlmodel import Column, Field, Session, SQLModel, col, select

from contracts.events import CODE_PATTERN, Channel, Level
from contracts.text import has_control_characters, nfc, search_text, search_words
from registration.divisions import PlaceError, check_place, check_provinces


def utc_now() -> datetime:
    return datetime.now(UTC)


def _normalised(value: object) -> object:
    # Before the length limits: a name typed in NFD is two or three times longer until it is
    # composed, and it is the composed name that is stored.
    return nfc(value).strip() if isinstance(value, str) else value


def _clean_line(value: str) -> str:
    if has_control_characters(value):
        raise ValueError("control characters are not allowed")
    return value


def _in_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


Line = Annotated[str, BeforeValidator(_normalised), AfterValidator(_clean_line)]
CodeText = Annotated[str, StringConstraints(pattern=CODE_PATTERN)]
Moment = Annotated[AwareDatetime, AfterValidator(_in_utc)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9+() .\-]{0,20}$")]


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps in UTC on every database: SQLite keeps no zone, so one is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


def timestamp_column() -> Column:  # type: ignore[type-arg]
    return Column(UtcDateTime(), nullable=False)


# --- courses -------------------------------------------------------------------------------------


# Shared fields of a national training course.
class CourseBase(SQLModel):
    title: Line = Field(min_length=1, max_length=300)
    organiser: Line = Field(default="", max_length=300)
    starts_on: date | None = None
    ends_on: date | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            raise ValueError("a course cannot end before it starts")
        return self


# What an operator sends to create a course.
class CourseCreate(CourseBase):
    code: CodeText


# What an operator may change in a course.
class CourseUpdate(SQLModel):
    title: Line | None = Field(default=None, min_length=1, max_length=300)
    organiser: Line | None = Field(default=None, max_length=300)
    starts_on: date | None = None
    ends_on: date | None = None


# A course as stored.
class Course(CourseBase, table=True):
    code: str = Field(primary_key=True, max_length=64)


# --- sessions ------------------------------------------------------------------------------------

LivenessSeconds = Annotated[float, Field(gt=0, le=3600)]


# Shared fields of a session: one live broadcast of a course and its liveness settings.
class BroadcastBase(SQLModel):
    title: Line = Field(default="", max_length=300)
    topic: Line = Field(default="", max_length=300)
    starts_at: Moment = Field(sa_column=timestamp_column())
    ends_at: Moment = Field(sa_column=timestamp_column())
    heartbeat_interval_s: LivenessSeconds = 5.0
    late_after_s: LivenessSeconds = 12.0
    disconnected_after_s: LivenessSeconds = 30.0

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise ValueError("a session must end after it starts")
        if not self.heartbeat_interval_s < self.late_after_s < self.disconnected_after_s:
            raise ValueError(
                "liveness needs heartbeat_interval_s < late_after_s < disconnected_after_s"
            )
        return self


# What an operator sends to schedule a session.
class BroadcastCreate(BroadcastBase):
    code: CodeText
    course_code: CodeText


# What an operator may change in a session (validated again as a whole once merged).
class BroadcastUpdate(SQLModel):
    title: str | None = None
    topic: str | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    heartbeat_interval_s: float | None = None
    late_after_s: float | None = None
    disconnected_after_s: float | None = None


# A session as stored ("session" is taken by the database's own vocabulary).
class Broadcast(BroadcastBase, table=True):
    code: str = Field(primary_key=True, max_length=64)
    course_code: str = Field(foreign_key="course.code", index=True, max_length=64)


def official_provinces(codes: list[str]) -> list[str]:
    """A field validator: official province codes, normalised, each once."""
    try:
        return check_provinces(codes)
    except PlaceError as error:
        raise ValueError(str(error)) from None


# --- connection points ---------------------------------------------------------------------------


# Shared fields of a connection point, validated against the official divisions.
class PointBase(SQLModel):
    name: Line = Field(min_length=1, max_length=200)
    level: Level
    province_code: str | None = Field(default=None, max_length=8, index=True)
    unit_code: str | None = Field(default=None, max_length=8)
    channel: Channel = Field(index=True)
    host: Line = Field(default="", max_length=200)
    phone: Phone = Field(default="", max_length=20)
    expected_learners: int = Field(default=0, ge=0, le=100_000)
    # Provinces whose points' heartbeats this point may forward: a relay gateway. Usually none.
    relays_for: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False, server_default="[]"),
    )

    _official_provinces = field_validator("relays_for")(official_provinces)

    @model_validator(mode="after")
    def _official_place(self) -> Self:
        try:
            place = check_place(self.level, self.province_code, self.unit_code)
        except PlaceError as error:
            raise ValueError(str(error)) from None
        self.province_code, self.unit_code = place.province_code, place.unit_code
        return self


# What an operator sends to register a point, with the courses it takes part in.
class PointCreate(PointBase):
    code: CodeText
    courses: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("courses")
    @classmethod
    def _course_codes(cls, courses: list[str]) -> list[str]:
        return sorted({code.strip() for code in courses if code.strip()})


# What an operator may change in a point (validated again as a whole once merged).
class PointUpdate(SQLModel):
    name: str | None = None
    level: Level | None = None
    province_code: str | None = None
    unit_code: str | None = None
    channel: Channel | None = None
    host: str | None = None
    phone: str | None = None
    expected_learners: int | None = None
    active: bool | None = None
    courses: list[str] | None = None
    relays_for: list[str] | None = None


# A connection point as stored: only the hash of its token is kept.
class Point(PointBase, table=True):
    code: str = Field(primary_key=True, max_length=64)
    active: bool = True
    token_hash: str | None = Field(default=None, max_length=64)
    # When its token sheet was last printed (registration.sheets): a new sheet replaces it.
    sheet_printed_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )
    # Code, name and host folded for search that ignores case and diacritics.
    search_text: str = ""
    created_at: datetime = Field(default_factory=utc_now, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utc_now, sa_column=timestamp_column())


# What the API shows of a point (never its token or token hash).
class PointPublic(PointBase):
    code: str
    active: bool
    has_token: bool
    courses: list[str]


def new_point(point_in: PointCreate, *, token_hash: str | None, now: datetime) -> Point:
    """The row for a validated point. (A table model does not validate: `point_in` did.)"""
    point = Point(
        **point_in.model_dump(exclude={"courses"}),
        token_hash=token_hash,
        created_at=now,
        updated_at=now,
    )
    point.search_text = search_text(point.code, point.name, point.host)
    return point


# A point taking part in a course.
class Enrolment(SQLModel, table=True):
    point_code: str = Field(foreign_key="point.code", primary_key=True, ondelete="CASCADE")
    course_code: str = Field(foreign_key="course.code", primary_key=True, index=True)


# --- outbox --------------------------------------------------------------------------------------


# An event committed with the change it describes, waiting for the relay to put it on Kafka.
class OutboxEvent(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    topic: str = Field(max_length=100)
    key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # None is a tombstone: the key is removed from the compacted topic.
    payload: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(default_factory=utc_now, sa_column=timestamp_column())


# --- engine and queries --------------------------------------------------------------------------


def courses_of(db: Session, point_code: str) -> list[str]:
    query = select(Enrolment.course_code).where(Enrolment.point_code == point_code)
    return sorted(db.exec(query).all())


def pending_events(db: Session, limit: int) -> list[OutboxEvent]:
    return list(db.exec(select(OutboxEvent).order_by(col(OutboxEvent.id)).limit(limit)).all())


def outbox_size(db: Session) -> int:
    return db.exec(select(func.count()).select_from(OutboxEvent)).one()


class PointFilter(SQLModel):
    """What an operator narrows the list of points by; every field is optional."""

    province: str | None = None
    channel: Channel | None = None
    level: Level | None = None
    active: bool | None = None
    course: str | None = None
    # With `course`: True lists the points enrolled in it, False those that are not.
    enrolled: bool = True
    q: str | None = Field(default=None, max_length=200)


def find_points(
    db: Session,
    where: PointFilter,
    *,
    offset: int,
    limit: int,
    provinces: frozenset[str] | None = None,
) -> tuple[int, list[Point]]:
    """One page of the points matching `where`, ordered by code, and how many match in all;
    only the points of `provinces` when given."""
    query = select(Point)
    if provinces is not None:
        query = query.where(col(Point.province_code).in_(sorted(provinces)))
    if where.province is not None:
        query = query.where(Point.province_code == where.province.zfill(2))
    if where.channel is not None:
        query = query.where(Point.channel == where.channel)
    if where.level is not None:
        query = query.where(Point.level == where.level)
    if where.active is not None:
        query = query.where(Point.active == where.active)
    if where.course is not None:
        enrolled = select(Enrolment.point_code).where(Enrolment.course_code == where.course)
        membership = col(Point.code).in_(enrolled)
        query = query.where(membership if where.enrolled else ~membership)
    for word in search_words(where.q):
        # Bound as a parameter, LIKE's wildcards in the word itself escaped.
        query = query.where(col(Point.search_text).contains(word, autoescape=True))
    total = db.exec(select(func.count()).select_from(query.subquery())).one()
    page = db.exec(query.order_by(col(Point.code)).offset(offset).limit(limit)).all()
    return total, list(page)


def courses_of_points(db: Session, codes: list[str]) -> dict[str, list[str]]:
    """The courses of each point, in as few queries as the databases' limit on bound
    parameters allows (a page of the list, or a whole course's sheets)."""
    enrolled: dict[str, list[str]] = {code: [] for code in codes}
    for start in range(0, len(codes), CODES_A_QUERY):
        query = select(Enrolment.point_code, Enrolment.course_code).where(
            col(Enrolment.point_code).in_(codes[start : start + CODES_A_QUERY])
        )
        for point_code, course_code in db.exec(query):
            enrolled[point_code].append(course_code)
    return {code: sorted(courses) for code, courses in enrolled.items()}


CODES_A_QUERY = 500  # under every database's limit on bound parameters
