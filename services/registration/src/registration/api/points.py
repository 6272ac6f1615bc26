"""Connection points: register, find, change, remove, and manage their tokens."""

from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from registration import commands
from registration.api.access import Authorised, Db
from registration.store import (
    Point,
    PointCreate,
    PointFilter,
    PointPublic,
    PointUpdate,
    courses_of,
    courses_of_points,
    find_points,
)

router = APIRouter(prefix="/v1/points", tags=["points"])


class IssuedToken(BaseModel):
    """A point's bearer token: shown this once, stored only as a hash."""

    code: str
    name: str = ""
    token: str


class IssuedPoint(BaseModel):
    point: PointPublic
    token: str


class PointPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[PointPublic]


@router.post("", status_code=status.HTTP_201_CREATED)
def post_point(point_in: PointCreate, db: Db) -> IssuedPoint:
    point, token = commands.create_point(db=db, point_in=point_in)
    return IssuedPoint(point=public(point, point_in.courses), token=token)


@router.get("", summary="Points, filtered and paged; `q` ignores case and diacritics")
def list_points(
    db: Db,
    caller: Authorised,
    where: Annotated[PointFilter, Query()],
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> PointPage:
    total, points = find_points(db, where, offset=offset, limit=limit, provinces=caller.scope)
    courses = courses_of_points(db, [p.code for p in points])
    items = [public(p, courses[p.code]) for p in points]
    return PointPage(total=total, offset=offset, limit=limit, items=items)


@router.get("/{code}")
def get_point(code: str, db: Db, caller: Authorised) -> PointPublic:
    point = commands.get_point(db=db, code=code)
    if not caller.sees(point.province_code):
        # Told as a point that does not exist: a coordinator learns nothing of other provinces.
        raise commands.NotFound(f"unknown point {code}")
    return public(point, courses_of(db, code))


@router.patch("/{code}", summary="Change a point; `active: false` deactivates it")
def patch_point(code: str, point_in: PointUpdate, db: Db) -> PointPublic:
    point = commands.update_point(db=db, code=code, point_in=point_in)
    return public(point, courses_of(db, code))


@router.delete("/{code}", status_code=status.HTTP_204_NO_CONTENT)
def delete_point(code: str, db: Db) -> None:
    commands.delete_point(db=db, code=code)


@router.post("/{code}/token", status_code=status.HTTP_201_CREATED, summary="Issue a new token")
def rotate_token(code: str, db: Db) -> IssuedToken:
    token = commands.rotate_token(db=db, code=code)
    return IssuedToken(code=code, name=commands.get_point(db=db, code=code).name, token=token)


@router.delete("/{code}/token", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke the token")
def revoke_token(code: str, db: Db) -> None:
    commands.revoke_token(db=db, code=code)


def public(point: Point, courses: list[str]) -> PointPublic:
    return PointPublic.model_validate(
        point, update={"courses": courses, "has_token": point.token_hash is not None}
    )
