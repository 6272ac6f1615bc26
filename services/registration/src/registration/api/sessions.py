"""Sessions: the live broadcasts of a course, with their liveness settings."""

from fastapi import APIRouter, status
from sqlmodel import col, select

from registration import commands
from registration.api.access import Db
from registration.store import Broadcast, BroadcastCreate, BroadcastUpdate

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


@router.post("", status_code=status.HTTP_201_CREATED)
def post_session(session_in: BroadcastCreate, db: Db) -> Broadcast:
    return commands.create_session(db=db, session_in=session_in)


@router.get("")
def list_sessions(db: Db, course: str | None = None) -> list[Broadcast]:
    query = select(Broadcast).order_by(col(Broadcast.starts_at))
    if course is not None:
        query = query.where(Broadcast.course_code == course)
    return list(db.exec(query).all())


@router.get("/{code}")
def get_session(code: str, db: Db) -> Broadcast:
    return commands.get_session(db=db, code=code)


@router.patch("/{code}")
def patch_session(code: str, session_in: BroadcastUpdate, db: Db) -> Broadcast:
    return commands.update_session(db=db, code=code, session_in=session_in)


@router.delete("/{code}", status_code=status.HTTP_204_NO_CONTENT)
def delete_session(code: str, db: Db) -> None:
    commands.delete_session(db=db, code=code)
