"""The registry API on real databases (SQLite and PostgreSQL): rules, outbox, import, search.

Kafka is not needed here: what must reach Kafka is the outbox, checked row by row. The relay
from the outbox to the real broker is tested end to end in tests/e2e.
"""

import csv
import io
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from alembic import command
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from contracts.codec import decode
from contracts.events import PointRegistration, SessionSchedule
from contracts.tokens import hash_token
from contracts.topics import REGISTRY_POINTS, REGISTRY_SESSIONS
from registration.api import install
from registration.migrate import alembic_config, upgrade
from registration.official import as_csv, official_points
from registration.store import OutboxEvent, Point
from servicekit.database import make_engine

pytestmark = pytest.mark.integration
OPERATOR = "test-operator-token"
AUTH = {"Authorization": f"Bearer {OPERATOR}"}
SESSION = {
    "code": "K1-S1",
    "course_code": "K1",
    "title": "Chuyên đề 1",
    "topic": "Chuyển đổi số",
    "starts_at": "2026-11-23T08:00:00+07:00",
    "ends_at": "2026-11-23T11:30:00+07:00",
}
COMMUNE = {
    "code": "X15853",
    "name": "Phường Đông Tiến",
    "level": "ward",
    "unit_code": "15853",
    "channel": "video_bridge",
    "host": "Nguyễn Văn A",
    "phone": "0912 345 678",
    "expected_learners": 40,
    "courses": ["K1"],
}


@pytest.fixture
def api(engine: Engine) -> TestClient:
    app = FastAPI()
    install(app, engine=engine, operator_token=SecretStr(OPERATOR))
    client = TestClient(app, headers=AUTH)
    assert (
        client.post("/v1/courses", json={"code": "K1", "title": "Bồi dưỡng 2026"}).status_code
        == 201
    )
    return client


def outbox(engine: Engine) -> list[OutboxEvent]:
    with Session(engine) as db:
        return list(db.exec(select(OutboxEvent).order_by(col(OutboxEvent.id))).all())


def published_points(engine: Engine) -> list[PointRegistration | None]:
    return [
        None if e.payload is None else decode(PointRegistration, e.payload)
        for e in outbox(engine)
        if e.topic == REGISTRY_POINTS.name
    ]


def test_sessions_must_end_after_start_and_not_overlap(api: TestClient, engine: Engine) -> None:
    assert api.post("/v1/sessions", json=SESSION).status_code == 201
    backwards = SESSION | {"code": "K1-S2", "ends_at": "2026-11-23T07:00:00+07:00"}
    assert api.post("/v1/sessions", json=backwards).status_code == 422
    overlapping = SESSION | {
        "code": "K1-S2",
        "starts_at": "2026-11-23T11:00:00+07:00",
        "ends_at": "2026-11-23T12:00:00+07:00",
    }
    assert api.post("/v1/sessions", json=overlapping).status_code == 409
    assert api.post("/v1/sessions", json=SESSION).status_code == 409  # same code
    naive = SESSION | {"code": "K1-S3", "starts_at": "2026-11-24T08:00:00"}
    assert api.post("/v1/sessions", json=naive).status_code == 422
    unknown_course = SESSION | {"code": "K9-S1", "course_code": "K9"}
    assert api.post("/v1/sessions", json=unknown_course).status_code == 404
    afternoon = SESSION | {
        "code": "K1-S2",
        "starts_at": "2026-11-23T13:30:00+07:00",
        "ends_at": "2026-11-23T17:00:00+07:00",
    }
    assert api.post("/v1/sessions", json=afternoon).status_code == 201
    moved = api.patch("/v1/sessions/K1-S2", json={"late_after_s": 15})
    assert moved.status_code == 200
    assert (
        api.patch("/v1/sessions/K1-S2", json={"starts_at": "2026-11-23T09:00:00+07:00"}).status_code
        == 409
    )
    assert api.delete("/v1/sessions/K1-S2").status_code == 204

    events = [e for e in outbox(engine) if e.topic == REGISTRY_SESSIONS.name]
    assert [(e.key, e.payload is None) for e in events] == [
        (b"K1-S1", False),
        (b"K1-S2", False),
        (b"K1-S2", False),
        (b"K1-S2", True),
    ]
    first = decode(SessionSchedule, events[0].payload)
    assert first.starts_at.isoformat() == "2026-11-23T01:00:00+00:00"
    assert (first.topic, first.late_after_s) == ("Chuyển đổi số", 12.0)
    assert decode(SessionSchedule, events[2].payload).late_after_s == 15.0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"unit_code": "99999"}, "unknown commune-level unit"),
        ({"level": "commune"}, "is a ward, not a commune"),
        ({"province_code": "01"}, "belongs to province"),
        ({"level": "province", "unit_code": None, "province_code": "99"}, "unknown province"),
        ({"unit_code": None}, "needs the code of its unit"),
        ({"channel": "fax"}, "channel"),
        ({"expected_learners": -1}, "expected_learners"),
        ({"code": "bad code!"}, "code"),
        ({"name": "Tên\x00ẩn"}, "control characters"),
        ({"courses": ["K404"]}, "unknown course K404"),
    ],
)
def test_points_are_checked_against_the_official_list(
    api: TestClient, engine: Engine, change: dict[str, Any], reason: str
) -> None:
    response = api.post("/v1/points", json=COMMUNE | change)
    assert response.status_code == 422
    assert reason in response.text
    assert outbox(engine) == [] and api.get("/v1/points").json()["total"] == 0


def test_every_change_reaches_the_outbox_in_the_same_transaction(
    api: TestClient, engine: Engine
) -> None:
    created = api.post("/v1/points", json=COMMUNE | {"province_code": None})
    assert created.status_code == 201
    token = created.json()["token"]
    assert created.json()["point"]["province_code"] == "38"  # the unit's own province
    assert api.post("/v1/points", json=COMMUNE).status_code == 409
    assert api.patch("/v1/points/X15853", json={"expected_learners": 55}).status_code == 200
    assert api.patch("/v1/points/X15853", json={"level": "commune"}).status_code == 422
    assert api.patch("/v1/points/X15853", json={"active": False}).status_code == 200
    assert api.delete("/v1/points/X15853").status_code == 204
    assert api.get("/v1/points/X15853").status_code == 404

    events = published_points(engine)
    assert len(events) == 4 and events[-1] is None  # three states, then the tombstone
    first, second, third = events[:3]
    assert first is not None and second is not None and third is not None
    assert first.token_hash == hash_token(token) and first.courses == ("K1",)
    assert (first.expected_learners, second.expected_learners) == (40, 55)
    assert (second.active, third.active) == (True, False)


def test_tokens_are_shown_once_rotated_and_revoked(api: TestClient, engine: Engine) -> None:
    first = api.post("/v1/points", json=COMMUNE).json()["token"]
    assert "token" not in api.get("/v1/points/X15853").text.replace('"has_token"', "")
    second = api.post("/v1/points/X15853/token")
    assert second.status_code == 201 and second.json()["token"] != first
    assert api.delete("/v1/points/X15853/token").status_code == 204
    assert api.get("/v1/points/X15853").json()["has_token"] is False
    hashes = [e.token_hash for e in published_points(engine) if e is not None]
    assert hashes == [hash_token(first), hash_token(second.json()["token"]), None]
    with Session(engine) as db:
        stored = [str(row) for row in db.connection().exec_driver_sql("SELECT * FROM point")]
    assert first not in "".join(stored) and second.json()["token"] not in "".join(stored)


def test_operator_routes_refuse_without_the_operator_token(api: TestClient, engine: Engine) -> None:
    anonymous = TestClient(api.app)
    assert anonymous.post("/v1/points", json=COMMUNE).status_code == 401
    assert anonymous.get("/v1/points").status_code == 401
    point_token = api.post("/v1/points", json=COMMUNE).json()["token"]
    as_point = {"Authorization": f"Bearer {point_token}"}
    assert anonymous.delete("/v1/points/X15853", headers=as_point).status_code == 403
    assert (
        anonymous.post(
            "/v1/courses", json={"code": "K2", "title": "x"}, headers=as_point
        ).status_code
        == 403
    )
    assert api.get("/v1/points/X15853").status_code == 200
    assert len(outbox(engine)) == 1


def test_search_ignores_case_and_diacritics_and_filters_combine(api: TestClient) -> None:
    rows = [r for r in official_points(30) if r["province_code"] in ("01", "38")]
    assert (
        api.post("/v1/points/import", content=as_csv(rows), params={"course": "K1"}).status_code
        == 200
    )
    found = api.get("/v1/points", params={"q": "dong tien"}).json()
    # Diacritics are ignored both ways: "Đồng Tiến" and "Đông Tiến" both answer "dong tien".
    assert sorted(p["name"] for p in found["items"]) == ["Phường Đông Tiến", "Xã Đồng Tiến"]
    nfd = unicodedata.normalize("NFD", "ĐÔNG TIẾN")
    assert api.get("/v1/points", params={"q": nfd}).json()["total"] == 2
    assert api.get("/v1/points", params={"q": "PHUONG dong tien"}).json()["total"] == 1
    hanoi_wards = api.get(
        "/v1/points", params={"province": "1", "level": "ward", "limit": 5}
    ).json()
    assert hanoi_wards["total"] == sum(
        1 for r in rows if r["province_code"] == "01" and r["level"] == "ward"
    )
    assert len(hanoi_wards["items"]) == 5
    assert all(p["province_code"] == "01" and p["level"] == "ward" for p in hanoi_wards["items"])
    second_page = api.get(
        "/v1/points", params={"province": "01", "level": "ward", "limit": 5, "offset": 5}
    ).json()
    assert {p["code"] for p in second_page["items"]}.isdisjoint(
        p["code"] for p in hanoi_wards["items"]
    )
    assert api.get("/v1/points", params={"course": "K1", "enrolled": "false"}).json()["total"] == 0
    assert api.get("/v1/points", params={"q": "%' OR 1=1 --"}).json()["total"] == 0


def test_a_bad_row_blocks_the_whole_import_unless_partial(api: TestClient, engine: Engine) -> None:
    good = official_points(25)[34:37]
    bad = dict(good[0], code="BAD-1", unit_code="99999")
    sheet = as_csv([*good, bad])

    dry = api.post("/v1/points/import", content=sheet, params={"dry_run": True})
    assert dry.status_code == 200
    assert (dry.json()["applied"], dry.json()["valid"], len(dry.json()["errors"])) == (False, 3, 1)
    # What the good rows would do, before anything is stored.
    assert (dry.json()["created"], dry.json()["updated"], dry.json()["tokens"]) == (3, 0, [])
    refused = api.post("/v1/points/import", content=sheet)
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {"line": 5, "code": "BAD-1", "reason": "unknown commune-level unit code 99999"}
    ]
    assert outbox(engine) == [] and api.get("/v1/points").json()["total"] == 0

    partial = api.post("/v1/points/import", content=sheet, params={"partial": True})
    assert partial.status_code == 200
    assert (partial.json()["created"], len(partial.json()["tokens"])) == (3, 3)
    assert len(outbox(engine)) == 3


def test_import_reads_bom_nfd_and_answers_tokens_as_safe_csv(api: TestClient) -> None:
    sheet = (
        "\ufeffcode,name,level,channel,province_code\n"
        + unicodedata.normalize("NFD", 'T01,"=HYPERLINK(""http://x"")  Hà Nội",tỉnh,Teams,1\n')
    ).encode()
    response = api.post("/v1/points/import", content=sheet, headers={"Accept": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.headers["x-import-created"] == "1"
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["code", "name", "token"]
    assert rows[1][1].startswith("'=HYPERLINK")  # shown as text, never run as a formula
    stored = api.get("/v1/points/T01").json()
    assert stored["name"] == unicodedata.normalize("NFC", '=HYPERLINK("http://x")  Hà Nội')
    assert (stored["level"], stored["channel"], stored["province_code"]) == (
        "province",
        "teams",
        "01",
    )


@pytest.mark.parametrize(
    ("sheet", "reason"),
    [
        (b"", "empty"),
        (b"code,name\nP1,x\n", "missing column(s) level, channel"),
        (b"code,name,level,channel,colour\n", "unknown column(s) colour"),
        ("code,name,level,channel\nP1,Hà Noi,other,teams\n".encode("latin-1"), "not UTF-8"),
    ],
)
def test_unreadable_files_are_refused_whole(api: TestClient, sheet: bytes, reason: str) -> None:
    response = api.post("/v1/points/import", content=sheet)
    assert response.status_code == 422 and reason in response.text


def test_the_official_course_imports_once_and_reimports_as_no_change(
    api: TestClient, engine: Engine
) -> None:
    teams = [
        {
            "code": f"TEAMS-{n:03d}",
            "name": f"Điểm Teams {n}",
            "level": "other",
            "channel": "teams",
            "province_code": "",
            "unit_code": "",
            "host": "",
            "phone": "",
            "expected_learners": "20",
            "courses": "",
        }
        for n in range(200)
    ]
    sheet = as_csv(official_points(28) + teams)
    first = api.post("/v1/points/import", content=sheet, params={"course": "K1"}).json()
    assert (first["created"], first["updated"], first["unchanged"], first["errors"]) == (
        3555,
        0,
        0,
        [],
    )
    assert len(outbox(engine)) == 3555
    again = api.post("/v1/points/import", content=sheet, params={"course": "K1"}).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3555)
    assert len(outbox(engine)) == 3555
    # A dry run of a sheet with one point renamed and one new: what the import would do.
    changed = [dict(official_points(28)[0], name="Tên mới"), *official_points(28)[1:10]]
    extra = dict(teams[0], code="TEAMS-NEW", name="Điểm Teams mới")
    preview = api.post(
        "/v1/points/import", content=as_csv([*changed, extra]), params={"dry_run": True}
    ).json()
    assert (preview["created"], preview["updated"], preview["unchanged"]) == (1, 1, 9)
    assert len(outbox(engine)) == 3555
    assert api.get("/v1/points", params={"q": "Tên mới"}).json()["total"] == 0
    counts = {
        level: api.get("/v1/points", params={"level": level, "limit": 1}).json()["total"]
        for level in ("province", "commune", "ward", "special_zone", "other")
    }
    assert counts == {
        "province": 34,
        "commune": 2621,
        "ward": 687,
        "special_zone": 13,
        "other": 200,
    }


def test_malformed_requests_get_a_clear_4xx_and_change_nothing(
    api: TestClient, engine: Engine
) -> None:
    malformed = api.post(
        "/v1/points",
        content=b'{"code": "P1", "name": ',
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 422 and "JSON" in malformed.text
    assert api.post("/v1/points", json=COMMUNE | {"expected_learners": "forty"}).status_code == 422
    assert api.post("/v1/points", json=[COMMUNE]).status_code == 422
    assert api.patch("/v1/points/NOPE", json={"name": "x"}).status_code == 404
    assert outbox(engine) == [] and api.get("/v1/points").json()["total"] == 0


def test_sql_metacharacters_are_stored_faithfully_and_never_run(api: TestClient) -> None:
    name = 'Robert\'); DROP TABLE point; -- "Đông" %_\\'
    assert (
        api.post("/v1/points", json=COMMUNE | {"name": name, "host": "O'Brien"}).status_code == 201
    )
    assert api.get("/v1/points/X15853").json()["name"] == name
    assert api.get("/v1/points", params={"q": "o'brien"}).json()["total"] == 1
    assert api.get("/v1/points", params={"q": "%_"}).json()["total"] == 1
    assert api.get("/v1/points", params={"q": "_"}).json()["total"] == 1
    assert api.get("/v1/points", params={"q": "x_"}).json()["total"] == 0


def test_a_gateway_relays_for_official_provinces_kept_across_imports(
    api: TestClient, engine: Engine
) -> None:
    assert api.post("/v1/points", json=COMMUNE | {"relays_for": ["99"]}).status_code == 422
    assert (
        "unknown province code '99'"
        in api.post("/v1/points", json=COMMUNE | {"relays_for": ["38", "99"]}).text
    )
    created = api.post("/v1/points", json=COMMUNE | {"relays_for": ["38", "1", "01"]})
    assert created.status_code == 201
    assert created.json()["point"]["relays_for"] == ["01", "38"]  # normalised, each once
    patched = api.patch("/v1/points/X15853", json={"relays_for": ["8"]})
    assert (patched.status_code, patched.json()["relays_for"]) == (200, ["08"])
    assert api.patch("/v1/points/X15853", json={"relays_for": ["x"]}).status_code == 422
    assert api.patch("/v1/points/X15853", json={"name": "Cổng Đông Tiến"}).status_code == 200
    assert api.get("/v1/points/X15853").json()["relays_for"] == ["08"]

    # An import has no column for it: a changed row keeps what the operator set.
    row = {
        "code": "X15853",
        "name": "Phường Đông Tiến mới",
        "level": "ward",
        "channel": "video_bridge",
        "province_code": "38",
        "unit_code": "15853",
        "host": "",
        "phone": "",
        "expected_learners": "41",
        "courses": "K1",
    }
    imported = api.post("/v1/points/import", content=as_csv([row])).json()
    assert imported["updated"] == 1
    assert api.get("/v1/points/X15853").json()["relays_for"] == ["08"]
    assert api.patch("/v1/points/X15853", json={"relays_for": []}).status_code == 200

    events = [e for e in published_points(engine) if e is not None]
    assert [e.relays_for for e in events] == [
        ("01", "38"),
        ("08",),
        ("08",),
        ("08",),  # the import's update
        (),
    ]


def test_points_registered_before_gateways_existed_relay_for_nobody(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
            connection.exec_driver_sql(
                "INSERT INTO point (code, name, level, channel, host, phone, expected_learners,"
                " active, search_text, created_at, updated_at) VALUES ('T01', 'Hà Nội',"
                " 'PROVINCE', 'VIDEO_BRIDGE', '', '', 0, true, 't01', '2026-11-22 00:00:00',"
                " '2026-11-22 00:00:00')"
            )
        upgrade(engine)
        with Session(engine) as db:
            point = db.get(Point, "T01")
            assert point is not None and point.relays_for == []
    finally:
        engine.dispose()


def qr_links(pdf: bytes, tmp_path: Path) -> list[str]:
    """The links of the QR codes of each page, as a phone's camera would read them: the PDF
    drawn by poppler's pdftoppm, the codes read by zxing-cpp."""
    tmp_path.mkdir()
    (tmp_path / "sheets.pdf").write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "100", "-png", str(tmp_path / "sheets.pdf"), str(tmp_path / "page")],
        check=True,
        timeout=120,
    )
    links = []
    for page in sorted(tmp_path.glob("page-*.png")):
        (found,) = zxingcpp.read_barcodes(Image.open(page))
        links.append(found.text)
    return links


def test_token_sheets_carry_new_tokens_as_qr_codes_and_never_twice_without_saying_so(
    api: TestClient, engine: Engine, tmp_path: Path
) -> None:
    assert api.post("/v1/sessions", json=SESSION).status_code == 201
    rows = official_points(expected_learners=20)
    hanoi = [r for r in rows if r["province_code"] == "01"][:2]
    thanh_hoa = [r for r in rows if r["province_code"] == "38"][:1]
    imported = api.post(
        "/v1/points/import", params={"course": "K1"}, content=as_csv(hanoi + thanh_hoa),
        headers={"Content-Type": "text/csv"},
    )  # fmt: skip
    assert imported.status_code == 200, imported.text
    first_tokens = {t["code"]: t["token"] for t in imported.json()["tokens"]}

    sheets = api.post("/v1/courses/K1/sheets", params={"province": "1"})
    assert sheets.status_code == 200, sheets.text
    assert sheets.headers["content-type"] == "application/pdf"
    assert [sheets.headers[f"X-Sheets-{h}"] for h in ("Printed", "Replaced", "Skipped")] == [
        "2", "0", "0"
    ]  # fmt: skip
    links = qr_links(sheets.content, tmp_path / "first")
    assert all(link.startswith("http://127.0.0.1:8002/point#token=pt_") for link in links)
    on_sheets = [link.split("#token=")[1] for link in links]
    # Each page's token is its point's (by the hash registration keeps), and new.
    with Session(engine) as db:
        hashes = {p.code: p.token_hash for p in db.exec(select(Point)).all()}
    codes = sorted(row["code"] for row in hanoi)
    assert [hash_token(token) for token in on_sheets] == [hashes[code] for code in codes]
    assert not set(on_sheets) & set(first_tokens.values())
    assert hashes[thanh_hoa[0]["code"]] == hash_token(first_tokens[thanh_hoa[0]["code"]])
    # The new tokens reach attendance through the outbox.
    published = {p.code: p.token_hash for p in published_points(engine) if p is not None}
    assert [published[code] for code in codes] == [hashes[code] for code in codes]

    # Printed before: not again unless asked, and then each new sheet says what it replaces.
    assert api.post("/v1/courses/K1/sheets", params={"province": "01"}).status_code == 409
    rest = api.post("/v1/courses/K1/sheets")
    assert [rest.headers[f"X-Sheets-{h}"] for h in ("Printed", "Skipped")] == ["1", "2"]
    again = api.post("/v1/courses/K1/sheets", params={"province": "01", "again": "true"})
    assert again.headers["X-Sheets-Replaced"] == "2"
    renewed = [link.split("#token=")[1] for link in qr_links(again.content, tmp_path / "again")]
    assert not set(renewed) & set(on_sheets)
    assert api.post("/v1/courses/K1/sheets", params={"province": "99"}).status_code == 422
    assert api.post("/v1/courses/NOPE/sheets").status_code == 404
