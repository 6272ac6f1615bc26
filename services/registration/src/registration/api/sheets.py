"""Token sheets of a course: a PDF, a page a point (registration.sheets), new tokens on them."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlmodel import col, select

from registration import commands
from registration.api.access import Db
from registration.divisions import PlaceError, check_provinces, provinces
from registration.sheets import Broadcast as Scheduled
from registration.sheets import Sheet, sheets_pdf
from registration.store import Broadcast

router = APIRouter(prefix="/v1/courses", tags=["courses"])


@router.post(
    "/{code}/sheets",
    summary="Print the token sheets of the course's points: a PDF, one page a point",
    description=(
        "Each sheet carries a new token (the point's previous one stops working) in its"
        " personal link, as a QR code and as text. Points whose sheet was printed before are"
        " left out, unless `again`: then their new sheet says it replaces the old one. The"
        " counts are in `X-Sheets-Printed`, `X-Sheets-Replaced` and `X-Sheets-Skipped`; 409"
        " when there is nothing to print."
    ),
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "the sheets"}},
)
def post_sheets(
    code: str,
    request: Request,
    db: Db,
    province: Annotated[str | None, Query(description="Only this province's points")] = None,
    again: Annotated[bool, Query(description="Print new sheets for points printed before")] = False,
) -> Response:
    try:
        wanted = check_provinces([province])[0] if province is not None else None
    except PlaceError as error:
        raise commands.Invalid(str(error)) from None
    course = commands.get_course(db=db, code=code)
    printed, skipped = commands.print_sheets(
        db=db, course_code=code, province=wanted, again=again, now=datetime.now(UTC)
    )
    if not printed:
        where = f" in province {wanted}" if wanted else ""
        reason = (
            f"the {skipped} sheets of course {code}{where} were printed before: again=true"
            " prints new ones, and the links of the old ones stop working"
            if skipped
            else f"course {code} has no active point{where}"
        )
        raise commands.Conflict(reason)
    page = request.app.state.point_page
    names = provinces()
    sheets = [
        Sheet(
            code=sheet.point.code,
            name=sheet.point.name,
            province=names[p].name if (p := sheet.point.province_code) in names else "",
            link=f"{page}#token={sheet.token}",
            replaces=sheet.replaces,
        )
        for sheet in printed
    ]
    query = select(Broadcast).where(Broadcast.course_code == code)
    schedule = [
        Scheduled(b.title, b.topic, b.starts_at, b.ends_at)
        for b in db.exec(query.order_by(col(Broadcast.starts_at))).all()
    ]
    name = f"sheets-{code}{f'-{wanted}' if wanted else ''}.pdf"
    return Response(
        sheets_pdf(course.title, schedule, sheets),
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Sheets-Printed": str(len(printed)),
            "X-Sheets-Replaced": str(sum(1 for sheet in printed if sheet.replaces)),
            "X-Sheets-Skipped": str(skipped),
            "Cache-Control": "no-store",
        },
    )
