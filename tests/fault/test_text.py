"""Hostile and awkward text, from the operator's API through Kafka to
reporting's reports: stored faithfully, exported safely, never executed.

What each text field does with what (registration's `Line` fields: names, host, titles):
- Vietnamese typed in NFD is stored in NFC (one spelling per word; lengths count the NFC form).
- Zero-width and other format characters (Unicode Cf) are kept as sent: they are text.
- Control characters (Unicode Cc: NUL, tab, newline, ESC, DEL...) are refused, 422.
- Longer than the field's limit (200 for a point's name) is refused, 422, never cut.
- Formula text (= + - @) is stored as sent; every CSV export prefixes it with ' so a
  spreadsheet shows it as text; JSON carries it as sent; HTML escapes it.
- SQL metacharacters are stored as sent: every query is parameterised.
"""

import csv
import io
import unicodedata
import uuid
from typing import Any

import httpx
import pytest

from devstack.services import ServiceProcess
from devstack.simulate import DEV_OPERATOR_TOKEN
from servicekit.spreadsheets import FORMULA_TRIGGERS, spreadsheet_safe
from tests.conftest import Figures
from tests.e2e.helpers import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.fault]
OPERATOR = {"Authorization": f"Bearer {DEV_OPERATOR_TOKEN}"}
NAME_LIMIT = 200

# name -> what registration stores (and every export carries).
ACCEPTED = {
    unicodedata.normalize("NFD", "Phường Đông Tiến"): "Phường Đông Tiến",
    "Xã\u200bĐồng\u200dTiến\ufeff\u202e": "Xã\u200bĐồng\u200dTiến\ufeff\u202e",
    '=HYPERLINK("http://evil.example","Bấm")': '=HYPERLINK("http://evil.example","Bấm")',
    "+84 Điểm cầu": "+84 Điểm cầu",
    "-2+3": "-2+3",
    "@SUM(A1:A9)": "@SUM(A1:A9)",
    "Robert'); DROP TABLE point; -- \"%_\\": "Robert'); DROP TABLE point; -- \"%_\\",
    "<script>alert('điểm')</script>": "<script>alert('điểm')</script>",
    "ễ" * NAME_LIMIT: "ễ" * NAME_LIMIT,
    unicodedata.normalize("NFD", "ễ" * NAME_LIMIT): "ễ" * NAME_LIMIT,
}
REFUSED = {
    "NUL": "Tên\x00ẩn",
    "newline": "Dòng 1\nDòng 2",
    "tab": "=1+1\tẩn",
    "carriage return": "=cmd|' /C calc'!A0\rTên",
    "escape": "\x1b[31mđỏ",
    "delete": "Tên\x7f",
    "one past the limit": "ễ" * (NAME_LIMIT + 1),
}


def point(code: str, name: str, course: str) -> dict[str, Any]:
    return {
        "code": code,
        "name": name,
        "level": "other",
        "channel": "teams",
        "host": name,
        "courses": [course],
    }


async def create_course(registration: httpx.AsyncClient, course: str) -> None:
    title = "<b>Khoá</b> =1+1"
    for path, body in (
        ("/v1/courses", {"code": course, "title": title}),
        (
            "/v1/sessions",
            {
                "code": f"{course}-S1",
                "course_code": course,
                "title": "<script>alert(1)</script> =SUM(1)",
                "starts_at": "2026-11-23T08:00:00+07:00",
                "ends_at": "2026-11-23T11:30:00+07:00",
            },
        ),
    ):
        assert (await registration.post(path, json=body, headers=OPERATOR)).status_code == 201


async def test_text_is_stored_faithfully_exported_safely_and_never_run(
    stack: dict[str, ServiceProcess], figures: Figures
) -> None:
    course = "TX" + uuid.uuid4().hex[:8].upper()
    session = f"{course}-S1"
    async with (
        httpx.AsyncClient(base_url=stack["registration"].url, timeout=15) as registration,
        httpx.AsyncClient(base_url=stack["reporting"].url, timeout=15) as reporting,
    ):
        await create_course(registration, course)
        expected: dict[str, str] = {}
        for n, (sent, stored) in enumerate(ACCEPTED.items()):
            code = f"{course}-P{n}"
            created = await registration.post(
                "/v1/points", json=point(code, sent, course), headers=OPERATOR
            )
            assert created.status_code == 201, created.text
            assert created.json()["point"]["name"] == stored
            expected[code] = stored
        refused = {}
        for n, (why, sent) in enumerate(REFUSED.items()):
            answer = await registration.post(
                "/v1/points", json=point(f"{course}-R{n}", sent, course), headers=OPERATOR
            )
            refused[why] = answer.status_code
        assert set(refused.values()) == {422}, refused
        listed = await registration.get(
            "/v1/points", params={"course": course, "limit": 1000}, headers=OPERATOR
        )
        assert {p["code"]: p["name"] for p in listed.json()["items"]} == expected

        # Reporting hears every point through registry.points, and reports on them.
        async def registered() -> int:
            answer = await reporting.get(f"/v1/sessions/{session}/totals")
            return int(answer.json()["registered"]) if answer.status_code == 200 else -1

        await eventually(registered, lambda count: count == len(expected))
        report = await reporting.get(f"/v1/sessions/{session}/report", params={"format": "json"})
        assert {p["code"]: p["name"] for p in report.json()["points"]} == expected
        assert {p["code"]: p["host"] for p in report.json()["points"]} == expected

        exported = await reporting.get(f"/v1/sessions/{session}/report", params={"format": "csv"})
        cells = csv_cells(exported.text)
        assert not [cell for cell in cells if cell.startswith(FORMULA_TRIGGERS)]
        rows = list(csv.DictReader(io.StringIO(exported.text.removeprefix("\ufeff"))))
        assert {r["code"]: r["name"] for r in rows} == {
            code: spreadsheet_safe(name) for code, name in expected.items()
        }
        course_csv = await reporting.get(f"/v1/courses/{course}/report", params={"format": "csv"})
        assert not [c for c in csv_cells(course_csv.text) if c.startswith(FORMULA_TRIGGERS)]

        page = await reporting.get(f"/v1/sessions/{session}/report", params={"format": "html"})
        assert "<script>" not in page.text and "<b>" not in page.text
        assert "&lt;script&gt;alert(&#39;điểm&#39;)&lt;/script&gt;" in page.text
        points_view = await reporting.get(f"/v1/sessions/{session}/points")
        assert {p["code"]: p["name"] for p in points_view.json()["items"]} == expected

    figures(
        accepted=len(ACCEPTED),
        refused_by_status={"422": len(REFUSED)},
        refused=sorted(REFUSED),
        csv_cells_checked=len(cells),
        formula_cells_unescaped=0,
    )


def csv_cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text.removeprefix("\ufeff"))) for cell in row]


async def test_the_token_export_shows_formula_names_as_text(
    stack: dict[str, ServiceProcess],
) -> None:
    course = "TK" + uuid.uuid4().hex[:8].upper()
    names = ["=1+1", "+1", "-1", "@A1", unicodedata.normalize("NFD", "=Hà Nội")]
    sheet = "code,name,level,channel\n" + "".join(
        f'{course}-{n},"{name}",other,teams\n' for n, name in enumerate(names)
    )
    async with httpx.AsyncClient(base_url=stack["registration"].url, timeout=15) as registration:
        assert (
            await registration.post(
                "/v1/courses", json={"code": course, "title": "x"}, headers=OPERATOR
            )
        ).status_code == 201
        answer = await registration.post(
            "/v1/points/import",
            params={"course": course},
            content=sheet.encode(),
            headers=OPERATOR | {"Content-Type": "text/csv", "Accept": "text/csv"},
        )
    assert answer.status_code == 200, answer.text
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert [row[1] for row in rows[1:]] == [
        "'" + unicodedata.normalize("NFC", name) for name in names
    ]
