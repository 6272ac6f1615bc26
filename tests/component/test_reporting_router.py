"""Reporting's routes in process (TestClient over live totals built from records): what the
desk's lists answer."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from contracts.events import Channel, Level, SessionSchedule
from contracts.wire import PointRecord
from reporting.api import reporting_router
from reporting.incidents import IncidentDetector
from reporting.live import LiveTotals
from servicekit.database import make_engine

NOW = datetime.now(UTC)
POINTS = [
    ("X38001", "Xã Đông Tiến", "38", "Lê Thị Hoà"),
    ("X38002", "Phường Hạc Thành", "38", "Nguyễn Văn An"),
    ("X01003", "Phường Đống Đa", "01", "Trần Đức"),
]


@pytest.fixture
def reporting(tmp_path: Path) -> Iterator[TestClient]:
    live = LiveTotals()
    live.put_session(
        SessionSchedule(
            code="S1", course_code="C1", starts_at=NOW, ends_at=NOW + timedelta(hours=4)
        ),
        NOW,
    )
    for code, name, province, host in POINTS:
        record = PointRecord(
            code=code,
            name=name,
            level=Level.COMMUNE,
            channel=Channel.VIDEO_BRIDGE,
            province_code=province,
            courses=("C1",),
            host=host,
        )
        live.put_point(record, NOW)
    app = FastAPI()
    engine = make_engine(f"sqlite:///{tmp_path / 'reporting.db'}")
    app.include_router(reporting_router(live, IncidentDetector(), engine, None))
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("dong tien", ["X38001"]),  # no accents, any case
        ("ĐÔNG", ["X01003", "X38001"]),  # Đống and Đông alike
        ("x38", ["X38001", "X38002"]),  # the code
        ("hoa le", ["X38001"]),  # the host, words in any order
        ("dong phuong", ["X01003"]),  # every word must match
        ("  ", ["X01003", "X38001", "X38002"]),
        ("nowhere", []),
    ],
)
def test_any_point_is_found_by_code_name_or_host_ignoring_case_and_accents(
    reporting: TestClient, q: str, found: list[str]
) -> None:
    answer = reporting.get("/v1/sessions/S1/points", params={"q": q})
    assert answer.status_code == 200
    assert sorted(item["code"] for item in answer.json()["items"]) == found
    assert answer.json()["total"] == len(found)


def test_search_narrows_within_a_province(reporting: TestClient) -> None:
    answer = reporting.get("/v1/sessions/S1/points", params={"q": "phuong", "province": "38"})
    assert [item["code"] for item in answer.json()["items"]] == ["X38002"]
