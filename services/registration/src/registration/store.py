"""Tables of the registry and the outbox, and the queries on them."""

from datetime import UTC, date, datetime

from sqlalchemy import Engine, LargeBinary, event
from sqlmodel import Column, Field, Session, SQLModel, col, create_engine, select

from contracts.events import Channel, Level


def _now() -> datetime:
    return datetime.now(UTC)


# Shared fields of a course, as given by an operator.
class CourseBase(SQLModel):
    code: str = Field(primary_key=True, regex=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    title: str = Field(min_length=1, max_length=300)
    organiser: str = Field(default="", max_length=300)
    starts_on: date | None = None
    ends_on: date | None = None


# A national training course.
class Course(CourseBase, table=True):
    pass


# Shared fields of a session (a live broadcast of a course), as given by an operator.
class BroadcastBase(SQLModel):
    code: str = Field(primary_key=True, regex=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    course_code: str = Field(foreign_key="course.code", index=True)
    title: str = Field(default="", max_length=300)
    starts_at: datetime
    ends_at: datetime
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=3600)
    late_after_s: float = Field(default=12.0, gt=0, le=3600)
    disconnected_after_s: float = Field(default=30.0, gt=0, le=3600)


# A session stored in the registry ("session" is taken by the database's own vocabulary).
class Broadcast(BroadcastBase, table=True):
    pass


# Shared fields of a connection point.
class PointBase(SQLModel):
    code: str = Field(primary_key=True, regex=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    level: Level
    province_code: str | None = Field(default=None, max_length=16)
    unit_code: str | None = Field(default=None, max_length=16)
    channel: Channel
    host: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=40)
    expected_learners: int = Field(default=0, ge=0, le=1_000_000)


# What an operator sends to register a point, with the courses it takes part in.
class PointCreate(PointBase):
    courses: list[str] = []


# A connection point as stored: only the hash of its token is kept.
class Point(PointBase, table=True):
    active: bool = True
    token_hash: str | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)


# What the API shows of a point.
class PointPublic(PointBase):
    active: bool
    courses: list[str]


# A point taking part in a course.
class Enrolment(SQLModel, table=True):
    point_code: str = Field(foreign_key="point.code", primary_key=True)
    course_code: str = Field(foreign_key="course.code", primary_key=True)


# An event committed with the change it describes, waiting for the relay to put it on Kafka.
class OutboxEvent(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    topic: str
    key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # None is a tombstone: the key is removed from the compacted topic.
    payload: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(default_factory=_now)


def make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(connection, _):  # type: ignore[no-untyped-def]
        cursor = connection.cursor()
        # WAL lets the relay read while a request writes; foreign keys are off by default.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def create_tables(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)


def courses_of(session: Session, point_code: str) -> list[str]:
    return list(
        session.exec(select(Enrolment.course_code).where(Enrolment.point_code == point_code)).all()
    )


def pending_events(session: Session, limit: int) -> list[OutboxEvent]:
    return list(session.exec(select(OutboxEvent).order_by(col(OutboxEvent.id)).limit(limit)).all())
