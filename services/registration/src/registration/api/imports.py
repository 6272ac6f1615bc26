"""Bulk import of points from a CSV sheet, all or nothing unless the operator says otherwise."""

import csv
import io
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session, select

from registration.api.access import Refused, engine_of
from registration.api.points import IssuedToken
from registration.bulk import upsert_points
from registration.commands import Invalid
from registration.importing import RowError, parse_points_csv
from registration.store import Course
from servicekit.spreadsheets import spreadsheet_safe

router = APIRouter(prefix="/v1/points", tags=["points"])
CSV_TYPE = "text/csv; charset=utf-8"


class ImportReport(BaseModel):
    """What an import did, or on a dry run what importing its good rows would do, and every
    row it refused."""

    dry_run: bool
    applied: bool
    rows: int
    valid: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError]
    # Tokens of the points created: shown this once, never stored.
    tokens: list[IssuedToken] = []


@router.post(
    "/import",
    summary="Upsert points from a CSV (UTF-8, BOM allowed); any bad row blocks the import "
    "unless `partial=true`. Send `Accept: text/csv` to get the new tokens as a CSV file.",
    responses={
        200: {"content": {"text/csv": {}}, "description": "applied, or a dry run"},
        422: {
            "model": ImportReport | Refused,
            "description": "bad rows, or a file that cannot be read: nothing was changed",
        },
    },
    openapi_extra={
        "requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}
    },
)
async def import_points(
    request: Request,
    engine: Annotated[Engine, Depends(engine_of)],
    dry_run: Annotated[bool, Query(description="only validate; change nothing")] = False,
    partial: Annotated[
        bool, Query(description="import the good rows even if some are bad")
    ] = False,
    course: Annotated[str | None, Query(description="also enrol every row in this course")] = None,
) -> Response:
    data = await request.body()
    report = await run_in_threadpool(_import, engine, data, dry_run, partial, course)
    if report.errors and not report.applied and not dry_run:
        return JSONResponse(
            report.model_dump(mode="json"), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
        )
    if report.applied and "text/csv" in request.headers.get("accept", ""):
        return Response(_tokens_csv(report.tokens), media_type=CSV_TYPE, headers=_summary(report))
    return JSONResponse(report.model_dump(mode="json"))


def _import(
    engine: Engine, data: bytes, dry_run: bool, partial: bool, course: str | None
) -> ImportReport:
    with Session(engine) as db:
        known = set(db.exec(select(Course.code)).all())
        if course is not None and course not in known:
            raise Invalid(f"unknown course {course}")
        parsed = parse_points_csv(data, known_courses=known, extra_course=course)
        report = ImportReport(
            dry_run=dry_run,
            applied=False,
            rows=len(parsed.rows) + len(parsed.errors),
            valid=len(parsed.rows),
            errors=parsed.errors,
        )
        if parsed.errors and not partial and not dry_run:
            return report
        outcome = upsert_points(db, parsed.rows)
        if dry_run:
            # What the import of the good rows would do, then undone: nothing is stored.
            db.rollback()
        else:
            db.commit()
    report.applied = not dry_run
    report.created, report.updated = len(outcome.created), len(outcome.updated)
    report.unchanged = outcome.unchanged
    if not dry_run:
        report.tokens = [IssuedToken(code=c, name=n, token=t) for c, n, t in outcome.created]
    return report


def _tokens_csv(tokens: list[IssuedToken]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["code", "name", "token"])
    for issued in tokens:
        writer.writerow(
            [spreadsheet_safe(issued.code), spreadsheet_safe(issued.name), issued.token]
        )
    return "\ufeff" + out.getvalue()  # the BOM makes Excel read the file as UTF-8


def _summary(report: ImportReport) -> dict[str, str]:
    return {
        "X-Import-Created": str(report.created),
        "X-Import-Updated": str(report.updated),
        "X-Import-Unchanged": str(report.unchanged),
        "X-Import-Errors": str(len(report.errors)),
        "Content-Disposition": 'attachment; filename="point-tokens.csv"',
    }
