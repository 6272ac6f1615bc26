"""Attendance reports of a session: per point and per province, from the latest statuses.

A status carries attendance accrued up to its last heartbeat, and none after the session's
end; while the point stays present, state and learner count are constant until the next
status, so the report extends it exactly to the moment asked for, or the session's end, after
which it no longer moves. Provinces come with their names, times in Viet Nam's time (as the
dashboard shows them) in every format. Pure.
"""

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from contracts.events import DeskAction, PointState, Response, SessionSchedule
from contracts.wire import PointRecord, PointStatusRecord
from reporting.provinces import province_name
from servicekit.spreadsheets import spreadsheet_safe

PRESENT = (PointState.CONNECTED, PointState.LATE)
# Indochina Time all year: Viet Nam keeps no summer time.
VIETNAM = timezone(timedelta(hours=7), "ICT")


@dataclass(frozen=True)
class PointLine:
    code: str
    name: str
    province_code: str
    province_name: str
    channel: str
    host: str
    phone: str
    state: str
    joined: bool
    first_connected_at: datetime | None
    minutes_connected: float
    share_of_session: float
    reconnects: int
    min_learners: int | None
    max_learners: int | None
    avg_learners: float
    expected_learners: int
    # What the desk did about the point, in the order done (`described`).
    actions: str = ""


@dataclass(frozen=True)
class ProvinceLine:
    province_code: str
    province_name: str
    registered: int
    joined: int
    learners: float
    learners_expected: int


def point_line(
    point: PointRecord,
    status: PointStatusRecord | None,
    session: SessionSchedule,
    now: datetime,
    actions: Sequence[DeskAction] = (),
) -> PointLine:
    end = min(now, session.ends_at)
    present, learner_seconds = 0.0, 0.0
    if status is not None:
        present, learner_seconds = status.present_seconds, status.learner_seconds
        if status.state in PRESENT and status.last_heartbeat_at is not None:
            extra = max(0.0, (end - status.last_heartbeat_at).total_seconds())
            present += extra
            learner_seconds += extra * status.learners
    length = max(1.0, (session.ends_at - session.starts_at).total_seconds())
    return PointLine(
        code=point.code,
        name=point.name,
        province_code=point.province_code or "",
        province_name=province_name(point.province_code or ""),
        channel=point.channel.value,
        host=point.host,
        phone=point.phone,
        state=(status.state if status else PointState.NEVER_CONNECTED).value,
        joined=status is not None and status.first_connected_at is not None,
        first_connected_at=in_vietnam(status.first_connected_at if status else None),
        minutes_connected=round(present / 60, 1),
        share_of_session=round(min(1.0, present / length), 4),
        reconnects=status.reconnects if status else 0,
        min_learners=status.min_learners if status else None,
        max_learners=status.max_learners if status else None,
        avg_learners=round(learner_seconds / present, 1) if present else 0.0,
        expected_learners=point.expected_learners,
        actions=described(actions),
    )


def described(actions: Sequence[DeskAction]) -> str:
    """The actions as the report says them, in Viet Nam's time: "10:13 acknowledged by an;
    10:14 assigned to binh by an; 10:15 note by an: power cut; 10:31 resolved by an"."""
    said = []
    for action in actions:
        at = action.at.astimezone(VIETNAM).strftime("%H:%M")
        if action.response is Response.ASSIGN:
            said.append(f"{at} assigned to {action.assignee} by {action.by}")
        elif action.response is Response.ANNOTATE:
            said.append(f"{at} note by {action.by}: {action.note}")
        else:
            past = {Response.ACKNOWLEDGE: "acknowledged", Response.RESOLVE: "resolved"}
            said.append(f"{at} {past[action.response]} by {action.by}")
    return "; ".join(said)


def in_vietnam(moment: datetime | None) -> datetime | None:
    """The same instant, in Viet Nam's time."""
    return None if moment is None else moment.astimezone(VIETNAM)


def as_of(sessions: list[SessionSchedule], now: datetime) -> datetime:
    """The moment a report's figures stand at: now, or the end once its sessions have ended."""
    return min(now, max(s.ends_at for s in sessions)).astimezone(VIETNAM)


def in_vietnam_session(session: SessionSchedule) -> SessionSchedule:
    """The session with its times in Viet Nam's time (the same instants)."""
    return session.model_copy(
        update={"starts_at": in_vietnam(session.starts_at), "ends_at": in_vietnam(session.ends_at)}
    )


def by_province(lines: list[PointLine]) -> list[ProvinceLine]:
    provinces: dict[str, list[PointLine]] = {}
    for line in lines:
        provinces.setdefault(line.province_code or "--", []).append(line)
    return [
        ProvinceLine(
            province_code=code,
            province_name=members[0].province_name,
            registered=len(members),
            joined=sum(m.joined for m in members),
            learners=round(sum(m.avg_learners for m in members if m.joined), 1),
            learners_expected=sum(m.expected_learners for m in members),
        )
        for code, members in sorted(provinces.items())
    ]


def as_csv(lines: list[PointLine]) -> str:
    out = io.StringIO()
    fields = list(PointLine.__dataclass_fields__)
    writer = csv.writer(out)
    writer.writerow(fields)
    for line in lines:
        writer.writerow([_cell(getattr(line, name)) for name in fields])
    return "\ufeff" + out.getvalue()  # the BOM makes Excel read the file as UTF-8


def _cell(value: object) -> str:
    text = "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
    return spreadsheet_safe(text)


def course_lines(per_session: list[tuple[SessionSchedule, list[PointLine]]]) -> list[PointLine]:
    """Each point over all the sessions of a course: minutes and learner-minutes add up, the
    share is of the course's total broadcast time, min and max over every session."""
    total_minutes = (
        sum((s.ends_at - s.starts_at).total_seconds() / 60 for s, _ in per_session) or 1.0
    )
    merged: dict[str, list[PointLine]] = {}
    for _, lines in per_session:
        for line in lines:
            merged.setdefault(line.code, []).append(line)
    return [_merge(lines, total_minutes) for _, lines in sorted(merged.items())]


def _merge(lines: list[PointLine], total_minutes: float) -> PointLine:
    last = lines[-1]
    minutes = sum(line.minutes_connected for line in lines)
    learner_minutes = sum(line.minutes_connected * line.avg_learners for line in lines)
    lows = [line.min_learners for line in lines if line.min_learners is not None]
    highs = [line.max_learners for line in lines if line.max_learners is not None]
    firsts = [line.first_connected_at for line in lines if line.first_connected_at is not None]
    return PointLine(
        code=last.code,
        name=last.name,
        province_code=last.province_code,
        province_name=last.province_name,
        channel=last.channel,
        host=last.host,
        phone=last.phone,
        state=last.state,
        joined=any(line.joined for line in lines),
        first_connected_at=min(firsts) if firsts else None,
        minutes_connected=round(minutes, 1),
        share_of_session=round(min(1.0, minutes / total_minutes), 4),
        reconnects=sum(line.reconnects for line in lines),
        min_learners=min(lows) if lows else None,
        max_learners=max(highs) if highs else None,
        avg_learners=round(learner_minutes / minutes, 1) if minutes else 0.0,
        expected_learners=last.expected_learners,
        actions=" | ".join(line.actions for line in lines if line.actions),
    )
