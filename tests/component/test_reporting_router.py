"""Reporting's routes in process (TestClient over live totals built from records): what the
desk's lists answer, who may see and do what, and what the desk's actions become."""

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient
from sqlmodel import SQLModel

from contracts.accounts import Role
from contracts.events import (
    AccountGrant,
    Channel,
    Counts,
    DeskAction,
    Level,
    PointState,
    SessionSchedule,
    Totals,
)
from contracts.tokens import hash_token
from contracts.wire import PointRecord, PointStatusRecord
from reporting.access import Accounts
from reporting.actions import DeskLog
from reporting.api import STATIC, reporting_router
from reporting.desk import TOKEN_COOKIE, desk_router, identifying
from reporting.history import PointHistory
from reporting.incidents import IncidentDetector
from reporting.live import LiveTotals
from servicekit.database import make_engine
from servicekit.logins import Logins

NOW = datetime.now(UTC)
POINTS = [
    ("X38001", "Xã Đông Tiến", "38", "Lê Thị Hoà"),
    ("X38002", "Phường Hạc Thành", "38", "Nguyễn Văn An"),
    ("X01003", "Phường Đống Đa", "01", "Trần Đức"),
]


class Recorder:
    """Stands in for the publish on desk.actions: keeps what it was given, or fails as Kafka
    away does."""

    def __init__(self) -> None:
        self.recorded: list[DeskAction] = []
        self.down = False

    async def __call__(self, action: DeskAction) -> None:
        if self.down:
            raise KafkaConnectionError("the broker is away")
        self.recorded.append(action)


@contextlib.contextmanager
def serving(
    tmp_path: Path,
    accounts: Accounts,
    recorder: Recorder | None = None,
    statuses: tuple[PointStatusRecord, ...] = (),
    stale: dict[str, Totals] | None = None,
) -> Iterator[TestClient]:
    """Reporting's routes over one session of the three points, its accounts as given, the
    status records given read; with `stale` totals, as an instance still reading its tables."""
    live, history = LiveTotals(), PointHistory()
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
    for status in statuses:
        live.put_status(status, status.since)
        history.put(status)
    app = FastAPI()
    engine = make_engine(f"sqlite:///{tmp_path / 'reporting.db'}")
    SQLModel.metadata.create_all(engine)  # the timeline's table, as reporting's start-up does
    desk, identify = DeskLog(), identifying(accounts, None)
    recording = recorder or Recorder()
    app.include_router(desk_router(live, accounts, desk, recording, identify, Logins(TOKEN_COOKIE)))
    loaded = stale is None
    routes = reporting_router(
        live, IncidentDetector(), engine, desk, history, identify, lambda: loaded, stale or {}
    )
    app.include_router(routes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
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
    posts = {path for path, operations in paths.items() if "post" in operations}
    assert posts == {"/v1/login", "/v1/logout", "/v1/sessions/{session_code}/actions"}
    assert all(set(operations) <= {"get", "post"} for operations in paths.values())
    named = {"{session_code}": "S1", "{course_code}": "C1", "{point_code}": "X38001"}
    found = []
    for path in paths:
        if "get" not in paths[path]:
            continue
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
    for role, (token, _) in TOKENS.items():
        elsewhere = answer(with_accounts, "/v1/sessions/S1/points/X01003", token)[0]
        assert elsewhere == (404 if role is Role.COORDINATOR else 200), (role, elsewhere)


def act(client: TestClient, token: str, **body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    return client.post("/v1/sessions/S1/actions", json=body, headers=headers)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def desk(tmp_path: Path, recorder: Recorder) -> Iterator[TestClient]:
    accounts = Accounts()
    for role, (token, provinces) in TOKENS.items():
        grant = AccountGrant(
            name=role.value, role=role, provinces=provinces, token_hash=hash_token(token)
        )
        accounts.put(role.value, grant)
    with serving(tmp_path, accounts, recorder) as client:
        yield client


def test_who_may_act_on_what(desk: TestClient, recorder: Recorder) -> None:
    admin, operator, coordinator, viewer = (TOKENS[role][0] for role in Role)
    point_38, point_01 = "point:X38001", "point:X01003"
    for subject in (point_38, point_01, "province:01", "channel:teams"):
        assert act(desk, operator, subject=subject, response="acknowledge").status_code == 202
        assert act(desk, admin, subject=subject, response="acknowledge").status_code == 202
        assert act(desk, viewer, subject=subject, response="acknowledge").status_code == 403
    assert act(desk, coordinator, subject=point_38, response="acknowledge").status_code == 202
    assert act(desk, coordinator, subject="province:38", response="resolve").status_code == 202
    for hidden in (point_01, "province:01", "channel:teams", "point:NOWHERE"):
        assert act(desk, coordinator, subject=hidden, response="acknowledge").status_code == 404
    assert len(recorder.recorded) == 10
    assert {a.by for a in recorder.recorded} == {"administrator", "operator", "coordinator"}
    # Nothing half-said: an assignment names a live account, a note says something.
    refused = [
        act(desk, operator, subject=point_38, response="assign"),
        act(desk, operator, subject=point_38, response="assign", assignee="nobody"),
        act(desk, operator, subject=point_38, response="annotate", note="   "),
        act(desk, operator, subject="point:", response="acknowledge"),
        act(desk, operator, subject=point_38, response="applaud"),
        act(desk, operator, subject=point_38, response="annotate", note="x" * 501),
    ]
    assert [answer.status_code for answer in refused] == [422] * 6
    assert desk.post("/v1/sessions/S9/actions", json={}, headers={}).status_code == 422
    assert act(desk, operator, subject=point_38, response="resolve").status_code == 202
    missing = desk.post(
        "/v1/sessions/S9/actions",
        json={"subject": point_38, "response": "resolve"},
        headers={"Authorization": f"Bearer {operator}"},
    )
    assert missing.status_code == 404
    # A coordinator lists only the actions of their provinces.
    listed = desk.get("/v1/sessions/S1/actions", headers={"Authorization": f"Bearer {coordinator}"})
    assert {a["subject"] for a in listed.json()} == {point_38, "province:38"}
    everything = desk.get("/v1/sessions/S1/actions", headers={"Authorization": f"Bearer {viewer}"})
    assert len(everything.json()) == 11


def test_an_action_shows_on_its_point_and_in_the_reports(
    desk: TestClient, recorder: Recorder
) -> None:
    coordinator = TOKENS[Role.COORDINATOR][0]
    headers = {"Authorization": f"Bearer {coordinator}"}
    assert act(desk, coordinator, subject="point:X38001", response="acknowledge").status_code == 202
    assert (
        act(
            desk,
            coordinator,
            subject="point:X38001",
            response="annotate",
            note="called the focal person, power cut",
        ).status_code
        == 202
    )
    answer = act(desk, coordinator, subject="point:X38001", response="assign", assignee="operator")
    assert answer.status_code == 202
    assert answer.json()["by"] == "coordinator"
    points = desk.get("/v1/sessions/S1/points", headers=headers).json()["items"]
    handling = {p["code"]: p["handling"] for p in points}
    assert handling["X38001"]["acknowledged_by"] == "coordinator"
    assert handling["X38001"]["assignee"] == "operator"
    assert [n["note"] for n in handling["X38001"]["notes"]] == [
        "called the focal person, power cut"
    ]
    assert handling["X38002"] == {
        "acknowledged_by": None,
        "acknowledged_at": None,
        "assignee": None,
        "notes": [],
        "resolved_by": None,
        "resolved_at": None,
    }
    report = desk.get("/v1/sessions/S1/report", headers=headers).json()
    (line,) = [p for p in report["points"] if p["code"] == "X38001"]
    assert "acknowledged by coordinator" in line["actions"]
    assert "note by coordinator: called the focal person, power cut" in line["actions"]
    assert "assigned to operator by coordinator" in line["actions"]
    csv = desk.get("/v1/sessions/S1/report?format=csv", headers=headers).text
    assert "note by coordinator: called the focal person, power cut" in csv
    html = desk.get("/v1/sessions/S1/report?format=html", headers=headers).text
    assert "note by coordinator: called the focal person, power cut" in html
    course = desk.get("/v1/courses/C1/report", headers=headers).json()
    assert "acknowledged by coordinator" in course["points"][0]["actions"]
    # Kafka away: the action is not taken, and says so.
    recorder.down = True
    answer = act(desk, coordinator, subject="point:X38002", response="acknowledge")
    assert answer.status_code == 503
    points = desk.get("/v1/sessions/S1/points", headers=headers).json()["items"]
    assert {p["code"]: p["handling"]["acknowledged_by"] for p in points}["X38002"] is None


def test_a_login_leaves_a_cookie_that_stands_for_the_token(desk: TestClient) -> None:
    coordinator = TOKENS[Role.COORDINATOR][0]
    answer = desk.post("/v1/login", json={"token": coordinator})
    assert answer.status_code == 200
    assert answer.json() == {
        "name": "coordinator",
        "role": "coordinator",
        "provinces": ["38"],
        "may_respond": True,
        "account": True,
    }
    cookie = answer.headers["set-cookie"]
    assert f"{TOKEN_COOKIE}=" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert desk.get("/v1/me").json()["name"] == "coordinator"

    points = desk.get("/v1/sessions/S1/points").json()["items"]
    assert sorted(p["code"] for p in points) == ["X38001", "X38002"]
    assert desk.post("/v1/logout").status_code == 204
    me = desk.get("/v1/me").json()
    assert (me["name"], me["account"]) == ("operations network", False)  # no viewer token set


def test_a_token_cannot_be_guessed_by_trying_many(desk: TestClient) -> None:
    answers = [desk.post("/v1/login", json={"token": f"ac_guess{n}"}) for n in range(5)]
    assert [a.status_code for a in answers] == [401] * 5
    # Past five failures in a minute the address waits, even with the right token.
    right = desk.post("/v1/login", json={"token": TOKENS[Role.OPERATOR][0]})
    assert right.status_code == 429


def test_a_points_page_tells_its_moments_and_what_the_desk_did(tmp_path: Path) -> None:
    def status(state: PointState, since_s: int, learners: int) -> PointStatusRecord:
        at = NOW + timedelta(seconds=since_s)
        return PointStatusRecord(
            session_code="S1",
            point_code="X38001",
            state=state,
            learners=learners,
            since=at,
            last_heartbeat_at=at if state is PointState.CONNECTED else NOW,
            reconnects=1 if since_s else 0,
            first_connected_at=NOW,
            min_learners=17,
            max_learners=23,
        )

    statuses = (
        status(PointState.CONNECTED, 0, 17),
        status(PointState.LATE, 30, 17),
        status(PointState.DISCONNECTED, 60, 17),
        status(PointState.CONNECTED, 120, 23),
    )
    accounts = Accounts()
    accounts.put(
        "lan", AccountGrant(name="lan", role=Role.OPERATOR, token_hash=hash_token("ac_lan"))
    )
    with serving(tmp_path, accounts, statuses=statuses) as client:
        noted = act(client, "ac_lan", subject="point:X38001", response="annotate", note="mất điện")
        assert noted.status_code == 202
        page = client.get("/v1/sessions/S1/points/X38001")
        missing = client.get("/v1/sessions/S1/points/NOWHERE")
    assert missing.status_code == 404
    assert page.status_code == 200
    body = page.json()
    assert (body["state"], body["learners"], body["reconnects"]) == ("connected", 23, 1)
    assert (body["min_learners"], body["max_learners"]) == (17, 23)
    assert [(m["state"], m["learners"]) for m in body["moments"]] == [
        ("connected", 17),
        ("late", 17),
        ("disconnected", 0),
        ("connected", 23),
    ]
    assert [datetime.fromisoformat(m["at"]) for m in body["moments"]] == [s.since for s in statuses]
    assert [(a["by"], a["note"]) for a in body["actions"]] == [("lan", "mất điện")]


def counts(**given: int) -> dict[str, int]:
    zero = dict.fromkeys(Counts.model_fields, 0)
    return zero | given


def test_while_its_tables_are_read_a_session_shows_its_last_totals_marked_stale(
    tmp_path: Path,
) -> None:
    last = Totals(
        session_code="S1",
        as_of=NOW - timedelta(seconds=30),
        **counts(registered=3, connected=2, disconnected=1, learners_present=57),
        by_province={"38": Counts(**counts(registered=2, connected=1, disconnected=1))},
        stale=True,
    )
    with serving(tmp_path, Accounts(), stale={"S1": last, "S9": last}) as client:
        assert Totals.model_validate(client.get("/v1/sessions/S1/totals").json()) == last
        # Read before its registration was: known by its last totals, not a 404.
        assert client.get("/v1/sessions/S9/totals").json()["stale"] is True
        with client.stream("GET", "/v1/sessions/S1/stream") as events:
            data = next(line for line in events.iter_lines() if line.startswith("data:"))
        assert Totals.model_validate_json(data.removeprefix("data:")) == last
    with serving(tmp_path, Accounts()) as client:  # loaded: the current ones
        current = client.get("/v1/sessions/S1/totals").json()
        assert current["stale"] is False
        assert current["registered"] == len(POINTS)
