"""Operator routes of the registry."""

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, SecretStr
from sqlalchemy import Engine
from sqlmodel import Session

from registration import commands
from registration.store import (
    Broadcast,
    BroadcastBase,
    Course,
    CourseBase,
    Point,
    PointCreate,
    PointPublic,
    courses_of,
)


class IssuedPoint(BaseModel):
    """A newly registered point and its token: shown this once, stored only as a hash."""

    point: PointPublic
    token: str


def registry_router(engine: Engine, operator_token: SecretStr) -> APIRouter:
    bearer = HTTPBearer(auto_error=False)

    def operator(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if credentials is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "operator token required")
        expected = operator_token.get_secret_value().encode()
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "not an operator token")

    def database() -> Iterator[Session]:
        with Session(engine) as db:
            yield db

    Db = Annotated[Session, Depends(database)]
    router = APIRouter(dependencies=[Depends(operator)], responses={401: {}, 403: {}, 409: {}})

    @router.post("/v1/courses", status_code=status.HTTP_201_CREATED, tags=["courses"])
    def post_course(course_in: CourseBase, db: Db) -> Course:
        with _as_http():
            return commands.create_course(db=db, course_in=course_in)

    @router.post("/v1/sessions", status_code=status.HTTP_201_CREATED, tags=["sessions"])
    def post_session(session_in: BroadcastBase, db: Db) -> Broadcast:
        with _as_http():
            return commands.create_session(db=db, session_in=session_in)

    @router.post("/v1/points", status_code=status.HTTP_201_CREATED, tags=["points"])
    def post_point(point_in: PointCreate, db: Db) -> IssuedPoint:
        with _as_http():
            point, token = commands.create_point(db=db, point_in=point_in)
        return IssuedPoint(point=_public(db, point), token=token)

    @router.get("/v1/points/{code}", tags=["points"])
    def get_point(code: str, db: Db) -> PointPublic:
        point = db.get(Point, code)
        if point is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown point")
        return _public(db, point)

    return router


def _public(db: Session, point: Point) -> PointPublic:
    return PointPublic.model_validate(point, update={"courses": courses_of(db, point.code)})


class _as_http:
    """Domain refusals become 409 (conflict) or 422 (invalid), with the reason."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        if isinstance(error, commands.Conflict):
            raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
        if isinstance(error, commands.Invalid):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
