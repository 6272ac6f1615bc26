"""Reports extend a present point's attendance to the moment asked for, and export safely."""

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.events import Channel, Level, PointState, SessionSchedule
from contracts.wire import PointRecord, PointStatusRecord
from reporting.reports import as_csv, as_of, by_province, course_lines, point_line

START = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
SESSION = SessionSchedule(
    code="S1", course_code="C1", starts_at=START, ends_at=START + timedelta(hours=1)
)
POINT = PointRecord(
    code="P1",
    name="=cmd|' /C calc'!A0",
    level=Level.WARD,
    channel=Channel.TEAMS,
    province_code="01",
    expected_learners=30,
    courses=("C1",),
)


def test_a_present_point_accrues_until_the_end_of_the_session() -> None:
    status = PointStatusRecord(
        session_code="S1",
        point_code="P1",
        state=PointState.CONNECTED,
        learners=20,
        since=START,
        last_heartbeat_at=START + timedelta(minutes=10),
        first_connected_at=START,
        present_seconds=600,
        learner_seconds=600 * 10,
        min_learners=10,
        max_learners=20,
        reconnects=1,
    )
    line = point_line(POINT, status, SESSION, now=START + timedelta(hours=2))
    # 10 min reported + 50 more until the end at 20 learners
    assert (line.minutes_connected, line.share_of_session) == (60.0, 1.0)
    assert line.avg_learners == round((6000 + 3000 * 20) / 3600, 1)
    assert (line.joined, line.reconnects, line.min_learners, line.max_learners) == (True, 1, 10, 20)


def connected_since_start(**changes: Any) -> PointStatusRecord:
    fields: dict[str, Any] = {
        "session_code": "S1",
        "point_code": "P1",
        "state": PointState.CONNECTED,
        "learners": 20,
        "since": START,
        "last_heartbeat_at": START + timedelta(minutes=10),
        "first_connected_at": START,
        "present_seconds": 600,
        "learner_seconds": 600 * 20,
    }
    return PointStatusRecord(**(fields | changes))


def test_a_report_names_provinces_and_tells_vietnams_time() -> None:
    line = point_line(POINT, connected_since_start(), SESSION, now=START)
    (province,) = by_province([line])
    assert (line.province_name, province.province_name) == ("Thành phố Hà Nội",) * 2
    rows = list(csv.DictReader(io.StringIO(as_csv([line]).lstrip("\ufeff"))))
    assert rows[0]["province_name"] == "Thành phố Hà Nội"
    assert rows[0]["first_connected_at"] == "2026-11-23T08:00:00+07:00"  # 01:00 UTC


def test_the_report_of_an_ended_session_stops_moving() -> None:
    """The point beat on past the end (its status says so, with nothing accrued after it)."""
    end = SESSION.ends_at
    status = connected_since_start(
        last_heartbeat_at=end + timedelta(minutes=5), present_seconds=3600, learner_seconds=72000
    )
    later = [point_line(POINT, status, SESSION, now=end + timedelta(hours=h)) for h in (1, 2)]
    assert later[0] == later[1] and later[0].minutes_connected == 60.0
    assert as_of([SESSION], end + timedelta(hours=2)) == end
    assert as_of([SESSION], START).isoformat() == "2026-11-23T08:00:00+07:00"


def test_never_joined_points_and_provinces() -> None:
    line = point_line(POINT, None, SESSION, now=START + timedelta(minutes=30))
    assert (line.joined, line.minutes_connected, line.state) == (False, 0.0, "never_connected")
    (province,) = by_province([line])
    assert (province.province_code, province.joined, province.registered) == ("01", 0, 1)


def test_csv_cells_cannot_run_as_formulas() -> None:
    line = point_line(POINT, None, SESSION, now=START)
    rows = list(csv.reader(io.StringIO(as_csv([line]).lstrip("\ufeff"))))
    assert rows[1][1] == "'=cmd|' /C calc'!A0"


def test_a_course_adds_up_its_sessions() -> None:
    afternoon = SessionSchedule(
        code="S2",
        course_code="C1",
        starts_at=START + timedelta(hours=4),
        ends_at=START + timedelta(hours=5),
    )
    morning_status = PointStatusRecord(
        session_code="S1",
        point_code="P1",
        state=PointState.DISCONNECTED,
        learners=0,
        since=START,
        last_heartbeat_at=START + timedelta(minutes=30),
        first_connected_at=START,
        present_seconds=1800,
        learner_seconds=1800 * 20,
        min_learners=18,
        max_learners=22,
        reconnects=2,
    )
    lines = course_lines(
        [
            (SESSION, [point_line(POINT, morning_status, SESSION, now=START + timedelta(hours=6))]),
            (afternoon, [point_line(POINT, None, afternoon, now=START + timedelta(hours=6))]),
        ]
    )
    (line,) = lines
    assert (line.minutes_connected, line.share_of_session, line.reconnects) == (30.0, 0.25, 2)
    assert (line.avg_learners, line.min_learners, line.max_learners, line.joined) == (
        20.0,
        18,
        22,
        True,
    )
