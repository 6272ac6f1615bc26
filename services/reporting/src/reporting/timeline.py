"""The timeline of each session: connected points and learners sampled every 10 s, kept in the
reporting database (SQLite by default, PostgreSQL in production)."""

from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Field, Session, SQLModel, col, func, select

from contracts.events import PointState
from reporting.live import LiveTotals


# One sample of a session's totals.
class TimelineSample(SQLModel, table=True):
    __tablename__ = "timeline_sample"

    session_code: str = Field(primary_key=True, max_length=64)
    at: datetime = Field(primary_key=True)
    registered: int
    connected: int
    late: int
    disconnected: int
    learners_present: int
    learners_expected: int


def sampled(live: LiveTotals, at: datetime) -> list[TimelineSample]:
    """A sample of every session on air at `at`."""
    return [
        TimelineSample(
            session_code=code,
            at=at,
            registered=view.overall.registered,
            connected=view.overall.connected,
            late=view.overall.states[PointState.LATE],
            disconnected=view.overall.states[PointState.DISCONNECTED],
            learners_present=view.overall.learners_present,
            learners_expected=view.overall.learners_expected,
        )
        for code, view in list(live.sessions.items())
        if live.on_air(code, at)
    ]


def save(engine: Engine, samples: list[TimelineSample]) -> None:
    with Session(engine) as db:
        for sample in samples:
            db.merge(sample)
        db.commit()


def samples_of(engine: Engine, session_code: str) -> list[TimelineSample]:
    with Session(engine) as db:
        query = (
            select(TimelineSample)
            .where(TimelineSample.session_code == session_code)
            .order_by(col(TimelineSample.at))
        )
        return list(db.exec(query).all())


def peaks_of(engine: Engine, session_code: str) -> tuple[int, int]:
    """The highest connected points and learners sampled so far (peaks survive a restart)."""
    with Session(engine) as db:
        query = select(
            func.coalesce(func.max(TimelineSample.connected), 0),
            func.coalesce(func.max(TimelineSample.learners_present), 0),
        ).where(TimelineSample.session_code == session_code)
        connected, learners = db.exec(query).one()
        return int(connected), int(learners)
