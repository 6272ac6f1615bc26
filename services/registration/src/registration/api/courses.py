"""Courses: a national training course, the frame of its sessions and enrolments."""

from fastapi import APIRouter, status
from sqlmodel import col, select

from registration import commands
from registration.api.access import Db
from registration.store import Course, CourseCreate, CourseUpdate

router = APIRouter(prefix="/v1/courses", tags=["courses"])


@router.post("", status_code=status.HTTP_201_CREATED)
def post_course(course_in: CourseCreate, db: Db) -> Course:
    return commands.create_course(db=db, course_in=course_in)


@router.get("")
def list_courses(db: Db) -> list[Course]:
    return list(db.exec(select(Course).order_by(col(Course.code))).all())


@router.get("/{code}")
def get_course(code: str, db: Db) -> Course:
    return commands.get_course(db=db, code=code)


@router.patch("/{code}")
def patch_course(code: str, course_in: CourseUpdate, db: Db) -> Course:
    return commands.update_course(db=db, code=code, course_in=course_in)


@router.delete("/{code}", status_code=status.HTTP_204_NO_CONTENT)
def delete_course(code: str, db: Db) -> None:
    commands.delete_course(db=db, code=code)
