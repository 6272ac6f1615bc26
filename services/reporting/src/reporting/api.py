"""REST and server-sent-events views of the live totals, timelines, incidents and reports."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from pydantic import AwareDatetime, BaseModel
from sqlalchemy import Engine
from sse_starlette.sse import EventSourceResponse

from contracts.accounts import Caller
from contracts.events import Counts, DeskAction, PointState, SessionSchedule, Totals
from contracts.text import search_text, search_words
from contracts.wire import PointRecord, PointStatusRecord
from reporting.access import scoped
from reporting.actions import DeskLog, Handling, handling_of, incident_subject, point_subject
from reporting.desk import Identify
from reporting.history import PointHistory
from reporting.incidents import IncidentDetector
from reporting.live import LiveTotals, SessionView, totals_of
from reporting.lookup import session_view
from reporting.reports import (
    PointLine,
    as_csv,
    as_of,
    by_province,
    course_lines,
    in_vietnam_session,
    point_line,
)
from reporting.timeline import TimelineSample, samples_of

HERE = Path(__file__).parent
STATIC = HERE / "static"
SILENT = (PointState.DISCONNECTED, PointState.LATE)
# SSE messages are coalesced to at most two a second. Totals change all the time during a
# session, so a change waits for the next free slot: with one a second that wait alone is up
# to 1 s, and freshness (p99 under 1 s, B3 in docs/benchmarks.md) could not be met on the stream.
STREAM_EVERY_SECONDS = 0.5
STREAM_POLL_SECONDS = 0.05
# What a stream has sent when it sent the stale totals: no view's version.
STALE_VERSION = -2


class Breakdown(StrEnum):
    province = "province"
    channel = "channel"
    level = "level"


class ReportFormat(StrEnum):
    json = "json"
    csv = "csv"
    html = "html"


class PointView(BaseModel):
    """A point as the desk sees it: where it is, whom to call, and how it stands."""

    code: str
    name: str
    province_code: str | None
    channel: str
    level: str
    host: str
    phone: str
    state: PointState
    since: AwareDatetime | None
    learners: int
    expected_learners: int
    last_heartbeat_at: AwareDatetime | None
    reconnects: int
    flags: tuple[str, ...]
    # What the desk did about its trouble at hand (since its last heartbeat).
    handling: Handling


class MomentView(BaseModel):
    at: AwareDatetime
    state: PointState
    learners: int


class PointDetail(PointView):
    """One point in one session, for its page: how it stands, what it went through (each
    change of state, and its learners minutes apart), and everything the desk did about it."""

    first_connected_at: AwareDatetime | None
    min_learners: int | None
    max_learners: int | None
    moments: list[MomentView]
    actions: list[DeskAction]


class PointPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[PointView]


class IncidentView(BaseModel):
    kind: str
    group: str
    subject: str
    opened_at: AwareDatetime
    points: int
    handling: Handling


class SessionReport(BaseModel):
    session: SessionSchedule
    as_of: AwareDatetime
    points: list[dict[str, Any]]
    provinces: list[dict[str, Any]]
    never_joined: list[str]


def reporting_router(
    live: LiveTotals,
    detector: IncidentDetector,
    engine: Engine,
    desk: DeskLog,
    history: PointHistory,
    identify: Identify,
    loaded: Callable[[], bool],
    stale: Mapping[str, Totals],
) -> APIRouter:
    """The routes; until the tables are `loaded` after a start, a session's totals are its
    last published ones in `stale` (marked so) where there are any."""
    # The in-memory reads answer on the event loop (async): a worker thread would cost more
    # than the read itself, and would read the tables while a consumer changes them.
    Asking = Annotated[Caller, Depends(identify)]

    def national_only(asking: Caller, what: str) -> None:
        if asking.scope is not None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"{what} is national: a coordinator sees provinces"
            )

    router = APIRouter(
        prefix="/v1",
        tags=["reporting"],
        dependencies=[Depends(identify)],
        responses={
            401: {"description": "no token where one is required, or not a live account's"},
            403: {"description": "national figures, which a coordinator does not see"},
            404: {"description": "unknown session or course"},
        },
    )
    templates = Jinja2Templates(directory=HERE / "templates")

    # The JSON of each session's latest totals, by version: every stream of a session sends it.
    rendered: dict[str, tuple[int, str]] = {}

    def rendered_totals(session_code: str, view: SessionView) -> str:
        cached = rendered.get(session_code)
        if cached is None or cached[0] != view.version:
            data = totals_of(session_code, view, datetime.now(UTC), live.judged).model_dump_json()
            cached = rendered[session_code] = (view.version, data)
        return cached[1]

    @router.get("/sessions", summary="Sessions known to reporting, newest first")
    async def list_sessions() -> list[SessionSchedule]:
        return sorted(live.registry.sessions.values(), key=lambda s: s.starts_at, reverse=True)

    @router.get("/sessions/{session_code}/totals", summary="Live totals of one session")
    async def get_totals(session_code: str, asking: Asking) -> Totals:
        last = stale_totals(session_code)
        if last is not None:
            return scoped(last, asking.scope)
        _, view = session_view(live, session_code)
        return scoped(totals_of(session_code, view, datetime.now(UTC), live.judged), asking.scope)

    def stale_totals(session_code: str) -> Totals | None:
        """The session's last published totals while the tables are still being read: the
        counts folded so far are a part of them, which the desk must not take for the whole."""
        return None if loaded() else stale.get(session_code)

    @router.get(
        "/sessions/{session_code}/breakdown/{kind}", summary="Totals by province, channel or level"
    )
    async def get_breakdown(
        session_code: str, kind: Breakdown, asking: Asking
    ) -> dict[str, Counts]:
        _, view = session_view(live, session_code)
        if kind is not Breakdown.province:
            national_only(asking, f"the breakdown by {kind.value}")
        groups = {"province": view.provinces, "channel": view.channels, "level": view.levels}[kind]
        return {
            label: tally.counts()
            for label, tally in sorted(groups.items())
            if tally.registered and (kind is not Breakdown.province or asking.sees(label))
        }

    @router.get(
        "/sessions/{session_code}/points",
        summary="Points by state; late and disconnected ones first, longest silent first",
    )
    def list_points(
        session_code: str,
        asking: Asking,
        state: PointState | None = None,
        province: str | None = None,
        channel: str | None = None,
        q: Annotated[
            str | None,
            Query(
                max_length=200, description="Words of the code, name or host, any case or accents"
            ),
        ] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> PointPage:
        session_view(live, session_code)
        words = search_words(q)
        items = [
            _point_view(point, status, desk, session_code)
            for point, status in live.enrolled(session_code)
            if asking.sees(point.province_code)
            and (province is None or point.province_code == province.zfill(2))
            and (channel is None or point.channel.value == channel)
            and all(word in search_text(point.code, point.name, point.host) for word in words)
        ]
        if state is not None:
            items = [item for item in items if item.state is state]
        items.sort(key=_silent_longest_first)
        return PointPage(
            total=len(items), offset=offset, limit=limit, items=items[offset : offset + limit]
        )

    @router.get(
        "/sessions/{session_code}/points/{point_code}",
        summary="One point: how it stands, its moments in the session, what the desk did",
        responses={404: {"description": "unknown session, or no point of the caller's in it"}},
    )
    async def get_point(session_code: str, point_code: str, asking: Asking) -> PointDetail:
        session_view(live, session_code)
        point = live.registry.points.get(point_code)
        if point is None or not (
            live.counts(session_code, point_code) and asking.sees(point.province_code)
        ):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such point in the session")
        found = live.status(session_code, point_code)
        return PointDetail(
            **dict(_point_view(point, found, desk, session_code)),
            first_connected_at=found.first_connected_at if found else None,
            min_learners=found.min_learners if found else None,
            max_learners=found.max_learners if found else None,
            moments=[
                MomentView(at=m.when, state=m.state, learners=m.learners)
                for m in history.of(session_code, point_code)
            ],
            actions=desk.of(session_code, point_subject(point_code)),
        )

    @router.get("/sessions/{session_code}/timeline", summary="Samples every 10 s of the session")
    async def get_timeline(session_code: str, asking: Asking) -> list[TimelineSample]:
        session_view(live, session_code)
        national_only(asking, "the timeline")
        return await run_in_threadpool(samples_of, engine, session_code)

    @router.get("/sessions/{session_code}/incidents", summary="Open incidents of the session")
    async def get_incidents(session_code: str, asking: Asking) -> list[IncidentView]:
        session_view(live, session_code)
        return [
            IncidentView(
                kind=i.kind,
                group=i.group,
                subject=incident_subject(i.kind, i.group),
                opened_at=i.opened_at,
                points=len(i.points),
                handling=handling_of(
                    desk.of(session_code, incident_subject(i.kind, i.group), i.opened_at)
                ),
            )
            for key, i in sorted(detector.open.items())
            if key[0] == session_code
            # A channel's incident spans provinces: a coordinator sees only their provinces'.
            and (asking.scope is None or (i.kind == "province" and asking.sees(i.group)))
        ]

    @router.get(
        "/sessions/{session_code}/stream",
        summary="Server-sent events: the session's totals whenever they change, at most 2/s",
        response_class=EventSourceResponse,
    )
    async def stream(session_code: str, request: Request, asking: Asking) -> EventSourceResponse:
        if stale_totals(session_code) is None:
            session_view(live, session_code)

        def data(view: SessionView) -> str:
            if asking.scope is None:
                return rendered_totals(session_code, view)
            national = totals_of(session_code, view, datetime.now(UTC), live.judged)
            return scoped(national, asking.scope).model_dump_json()

        async def changes() -> AsyncIterator[dict[str, str]]:
            sent, sent_at = -1, 0.0
            while not await request.is_disconnected():
                last = stale_totals(session_code)
                if last is not None:
                    if sent != STALE_VERSION:
                        sent, sent_at = STALE_VERSION, time.monotonic()
                        data_of_last = scoped(last, asking.scope).model_dump_json()
                        yield {"event": "totals", "data": data_of_last}
                    await asyncio.sleep(STREAM_POLL_SECONDS)
                    continue
                view = live.view(session_code)
                if view is None:
                    return
                # A change after a quiet half second goes out at once; a burst waits it out.
                if view.version != sent and time.monotonic() - sent_at >= STREAM_EVERY_SECONDS:
                    sent, sent_at = view.version, time.monotonic()
                    yield {"event": "totals", "data": data(view)}
                await asyncio.sleep(STREAM_POLL_SECONDS)

        return EventSourceResponse(changes(), ping=15)

    @router.get(
        "/sessions/{session_code}/report",
        summary="Attendance report (JSON, CSV or HTML)",
        response_class=Response,
        responses={200: _formats("application/json", "text/csv", "text/html")},
    )
    def get_report(
        session_code: str,
        request: Request,
        asking: Asking,
        format: ReportFormat = ReportFormat.json,
    ) -> Response:
        session, _ = session_view(live, session_code)
        now = datetime.now(UTC)
        lines = [
            point_line(p, s, session, now, desk.of(session_code, point_subject(p.code)))
            for p, s in live.enrolled(session_code)
            if asking.sees(p.province_code)
        ]
        lines.sort(key=lambda line: (line.province_code, line.code))
        provinces = by_province(lines)
        if format is ReportFormat.csv:
            return _csv_download(lines, f"attendance-{session_code}.csv")
        shown, moment = in_vietnam_session(session), as_of([session], now)
        if format is ReportFormat.html:
            return templates.TemplateResponse(
                request,
                "report.html",
                {"session": shown, "lines": lines, "provinces": provinces, "as_of": moment},
            )
        report = SessionReport(
            session=shown,
            as_of=moment,
            points=[line.__dict__ for line in lines],
            provinces=[province.__dict__ for province in provinces],
            never_joined=[line.code for line in lines if not line.joined],
        )
        return Response(report.model_dump_json(), media_type="application/json")

    @router.get(
        "/courses/{course_code}/report",
        summary="Attendance over all sessions of a course (JSON or CSV)",
        response_class=Response,
        responses={200: _formats("application/json", "text/csv")},
    )
    def get_course_report(
        course_code: str, asking: Asking, format: ReportFormat = ReportFormat.json
    ) -> Response:
        sessions = sorted(
            (s for s in live.registry.sessions.values() if s.course_code == course_code),
            key=lambda s: s.starts_at,
        )
        if not sessions:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown course or no sessions")
        now = datetime.now(UTC)
        per_session = [
            (
                s,
                [
                    point_line(p, st, s, now, desk.of(s.code, point_subject(p.code)))
                    for p, st in live.enrolled(s.code)
                    if asking.sees(p.province_code)
                ],
            )
            for s in sessions
        ]
        lines = course_lines(per_session)
        if format is ReportFormat.csv:
            return _csv_download(lines, f"attendance-{course_code}.csv")
        report = {
            "course_code": course_code,
            "as_of": as_of(sessions, now).isoformat(),
            "sessions": [s.code for s in sessions],
            "points": [line.__dict__ for line in lines],
            "provinces": [province.__dict__ for province in by_province(lines)],
            "never_joined": [line.code for line in lines if not line.joined],
        }
        return Response(json.dumps(report, default=str), media_type="application/json")

    return router


def _formats(*media_types: str) -> dict[str, Any]:
    """An answer documented in each of `media_types`, as `format=` chooses."""
    return {"content": {media_type: {} for media_type in media_types}}


def _point_view(
    point: PointRecord, status: PointStatusRecord | None, desk: DeskLog, session_code: str
) -> PointView:
    trouble_since = status.last_heartbeat_at or status.since if status else None
    return PointView(
        code=point.code,
        name=point.name,
        province_code=point.province_code,
        channel=point.channel.value,
        level=point.level.value,
        host=point.host,
        phone=point.phone,
        state=status.state if status else PointState.NEVER_CONNECTED,
        since=status.since if status else None,
        learners=status.learners if status else 0,
        expected_learners=point.expected_learners,
        last_heartbeat_at=status.last_heartbeat_at if status else None,
        reconnects=status.reconnects if status else 0,
        flags=status.flags if status else (),
        handling=handling_of(desk.of(session_code, point_subject(point.code), trouble_since)),
    )


def _silent_longest_first(item: PointView) -> tuple[int, float, str]:
    rank = 0 if item.state is PointState.DISCONNECTED else 1 if item.state is PointState.LATE else 2
    since = item.since.timestamp() if item.since else float("inf")
    return rank, since if rank < 2 else 0.0, item.code


def _csv_download(lines: list[PointLine], filename: str) -> Response:
    return Response(
        as_csv(lines),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
