"""Reporting's routes in process (TestClient over live totals built from records): what the
desk's lists answer."""

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import SQLModel

from contracts.accounts import Role
from contracts.events import AccountGrant, Channel, Level, SessionSchedule
from contracts.tokens import hash_token
from contracts.wire import PointRecord
from reporting.access import Accounts
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


@contextlib.contextmanager
def serving(tmp_path: Path, accounts: Accounts) -> Iterator[TestClient]:
    """Reporting's routes over one session of the three points, its accounts as given."""
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
    SQLModel.metadata.create_all(engine)  # the timeline's table, as reporting's start-up does
    app.include_router(reporting_router(live, IncidentDetector(), engine, None, accounts))
    with TestClient(app) as client:
        yield client


@pytest.fixture
def reporting(tmp_path: Path) -> Iterator[TestClient]:
    with serving(tmp_path, Accounts()) as client:
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


TOKENS = {
    Role.ADMINISTRATOR: ("ac_admin", ()),
    Role.OPERATOR: ("ac_desk", ()),
    Role.COORDINATOR: ("ac_coordinator", ("38",)),
    Role.VIEWER: ("ac_viewer", ()),
}


@pytest.fixture
def with_accounts(tmp_path: Path) -> Iterator[TestClient]:
    accounts = Accounts()
    for role, (token, provinces) in TOKENS.items():
        name = role.value
        grant = AccountGrant(
            name=name, role=role, provinces=provinces, token_hash=hash_token(token)
        )
        accounts.put(name, grant)
    accounts.put("gone", AccountGrant(name="gone", role=Role.VIEWER, token_hash=None))
    with serving(tmp_path, accounts) as client:
        yield client


def routes_of(client: TestClient) -> list[str]:
    """Every GET route of the service's OpenAPI document, with this test's names in it."""
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    assert all(set(operations) == {"get"} for operations in paths.values())
    named = {"{session_code}": "S1", "{course_code}": "C1"}
    found = []
    for path in paths:
        for placeholder, value in named.items():
            path = path.replace(placeholder, value)
        if "{kind}" in path:
            found += [path.replace("{kind}", kind) for kind in ("province", "channel", "level")]
        else:
            found.append(path)
    return found


def answer(client: TestClient, path: str, token: str | None) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if path.endswith("/stream"):
        with client.stream("GET", path, headers=headers) as response:
            if response.status_code != 200:
                return response.status_code, None
            for line in response.iter_lines():
                if line.startswith("data:"):
                    return 200, json.loads(line.removeprefix("data:"))
    response = client.get(path, headers=headers)
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.status_code, response.json()
    return response.status_code, response.text


def test_every_route_with_every_role_shows_a_coordinator_only_their_provinces(
    with_accounts: TestClient,
) -> None:
    paths = routes_of(with_accounts)
    assert len(paths) >= 10, paths
    national_only = {p for p in paths if p.endswith(("/timeline", "/channel", "/level"))}
    for path in paths:
        assert answer(with_accounts, path, "ac_guessed")[0] == 401, path
        assert answer(with_accounts, path, "")[0] == 200, path  # no viewer token set
        for role, (token, _) in TOKENS.items():
            status, body = answer(with_accounts, path, token)
            if role is not Role.COORDINATOR:
                assert status == 200, (path, role, status)
                continue
            assert status == (403 if path in national_only else 200), (path, status)
            assert "X01003" not in json.dumps(body, ensure_ascii=False), (path, body)
    coordinator = TOKENS[Role.COORDINATOR][0]
    totals = answer(with_accounts, "/v1/sessions/S1/totals", coordinator)[1]
    assert (totals["registered"], list(totals["by_province"])) == (2, ["38"])
    streamed = answer(with_accounts, "/v1/sessions/S1/stream", coordinator)[1]
    assert (streamed["registered"], list(streamed["by_province"])) == (2, ["38"])
    points = answer(with_accounts, "/v1/sessions/S1/points", coordinator)[1]
    assert sorted(p["code"] for p in points["items"]) == ["X38001", "X38002"]
    report = answer(with_accounts, "/v1/sessions/S1/report?format=csv", coordinator)[1]
    assert "X38001" in report and "X01003" not in report
    assert answer(with_accounts, "/v1/sessions/S1/points", "ac_gone")[0] == 401
