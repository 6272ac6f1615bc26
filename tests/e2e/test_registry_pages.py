"""A course prepared without a terminal: the registry's pages in headless Chromium, against the
real services. An operator logs in, creates the course and its session, drops a CSV with a bad
row, sees that row reported with its line and reason before anything is stored, fixes it,
imports, edits a point into a relay gateway, and prints the sheets, whose QR codes (read from
the PDF drawn as images) are the points' working links.

The oracle is the file the test wrote: its rows, the one it broke and how.
"""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from devstack.services import ServiceProcess
from devstack.simulate import DEV_OPERATOR_TOKEN
from registration.config import POINT_PAGE
from registration.official import as_csv, official_points
from tests.e2e.helpers import eventually
from tests.e2e.test_dashboard import (
    WALL,
    chromium,
    in_browser,
    save_screenshot,
    script_errors,
    text_of,
)
from tests.integration.test_registration_api import qr_links

pytestmark = pytest.mark.e2e

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


def visible_text(driver: WebDriver, element_id: str) -> str:
    text: str = driver.execute_script(
        "const node = document.getElementById(arguments[0]);"
        "return node.checkVisibility() ? node.textContent : ''",
        element_id,
    )
    return text


def fill(driver: WebDriver, form: str, values: dict[str, str]) -> None:
    """Set the form's fields (datetime-local too, whose typing depends on the locale) and
    submit it as its button would."""
    driver.execute_script(
        """
        const form = document.getElementById(arguments[0]);
        for (const [name, value] of Object.entries(arguments[1])) form.elements[name].value = value;
        form.requestSubmit();
        """,
        form,
        values,
    )


def error_rows(driver: WebDriver) -> list[list[str]]:
    rows: list[list[str]] = driver.execute_script(
        "return [...document.querySelectorAll('#preview-errors tr')]"
        ".map((row) => [...row.cells].map((cell) => cell.textContent))"
    )
    return rows


def download_into(driver: WebDriver, folder: Path) -> None:
    """Files the page offers are saved into `folder`, as a person's browser saves them."""
    folder.mkdir()
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)}
    )


def pdfs_in(folder: Path) -> list[bytes]:
    # (Chromium writes a .crdownload first, and renames it once it is whole.)
    return [p.read_bytes() for p in folder.glob("*.pdf")]


async def saved(folder: Path) -> bytes:
    (pdf,) = await eventually(lambda: asyncio.to_thread(pdfs_in, folder), lambda f: len(f) == 1)
    return pdf


def drop_file(driver: WebDriver, name: str, text: str) -> None:
    """A file dragged onto the drop zone and let go, the events a browser sends for it."""
    driver.execute_script(
        """
        const zone = document.getElementById('drop');
        const files = new DataTransfer();
        files.items.add(new File([arguments[1]], arguments[0], {type: 'text/csv'}));
        zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: files, bubbles: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: files, bubbles: true}));
        """,
        name,
        text,
    )


def set_filter(driver: WebDriver, name: str, value: str) -> None:
    driver.execute_script(
        """
        const field = document.getElementById('filters').elements[arguments[0]];
        field.value = arguments[1];
        field.dispatchEvent(new Event('input', {bubbles: true}));
        """,
        name,
        value,
    )


def click_in_row(driver: WebDriver, code: str, action: str) -> None:
    driver.execute_script(
        'document.querySelector(`#point-rows tr[data-code="${arguments[0]}"] '
        'button[data-action="${arguments[1]}"]`).click()',
        code,
        action,
    )


def typed(moment: datetime) -> str:
    """As a datetime-local field holds it."""
    return moment.strftime("%Y-%m-%dT%H:%M")


def listed_codes(driver: WebDriver) -> list[str]:
    codes: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('#point-rows tr')].map((row) => row.dataset.code)"
    )
    return codes


async def test_a_course_is_prepared_and_printed_in_the_browser(
    clients: dict[str, httpx.AsyncClient],
    stack: dict[str, ServiceProcess],
    tmp_path: Path,
) -> None:
    with chromium(tmp_path / "chromium-profile") as browser:
        await prepared_and_printed(clients, stack, browser, tmp_path)


async def prepared_and_printed(
    clients: dict[str, httpx.AsyncClient],
    stack: dict[str, ServiceProcess],
    browser: WebDriver,
    tmp_path: Path,
) -> None:
    course = "R" + uuid.uuid4().hex[:8].upper()
    await in_browser(browser.get, stack["registration"].url + "/")
    await eventually(lambda: in_browser(visible_text, browser, "login"), lambda text: text != "")
    token_field = await in_browser(browser.find_element, By.ID, "login-token")
    await in_browser(token_field.send_keys, DEV_OPERATOR_TOKEN)
    await in_browser(fill, browser, "login", {})
    await eventually(
        lambda: in_browser(visible_text, browser, "account"), lambda t: "operator" in t
    )
    assert await in_browser(visible_text, browser, "login") == ""  # the form gone once in

    await in_browser(fill, browser, "course-form", {"code": course, "title": "Bồi dưỡng 2026"})
    await eventually(
        lambda: in_browser(
            lambda: browser.find_element(By.ID, "course-select").get_attribute("value")
        ),
        lambda picked: picked == course,
    )
    now = datetime.now(UTC).astimezone(VIETNAM)
    session = {
        "code": f"{course}-S1",
        "title": "Buổi sáng",
        "topic": "Chuyển đổi số",
        "starts_at": typed(now - timedelta(minutes=5)),
        "ends_at": typed(now + timedelta(hours=3)),
    }
    await in_browser(fill, browser, "session-form", session)
    await eventually(
        lambda: in_browser(visible_text, browser, "session-rows"),
        lambda text: f"{course}-S1" in text,
    )
    # The registry holds the session at the time typed, in Viet Nam's time.
    stored = (await clients["registration"].get(
        "/v1/sessions", params={"course": course},
        headers={"Authorization": f"Bearer {DEV_OPERATOR_TOKEN}"},
    )).json()  # fmt: skip
    starts = datetime.fromisoformat(stored[0]["starts_at"])
    assert typed(starts.astimezone(VIETNAM)) == session["starts_at"]

    # A sheet of three good rows and one whose commune does not exist.
    rows = official_points(expected_learners=25)[100:103]
    for row in rows:
        row["code"] = f"{course}-{row['code']}"
    broken = dict(rows[0], code=f"{course}-BAD", unit_code="99999")
    sheet = tmp_path / "points.csv"
    sheet.write_bytes(as_csv([*rows, broken]))
    file_input = await in_browser(browser.find_element, By.ID, "file")
    await in_browser(file_input.send_keys, str(sheet))
    reported = await eventually(lambda: in_browser(error_rows, browser), lambda found: found != [])
    assert reported == [["5", f"{course}-BAD", "unknown commune-level unit code 99999"]]
    counts = await in_browser(visible_text, browser, "preview-counts")
    assert "4 dòng, 3 hợp lệ" in counts and "sẽ tạo 3" in counts
    assert await in_browser(listed_codes, browser) == []  # nothing stored yet

    # Fixed (the bad row taken out), and dropped on the page this time, as from a file manager.
    await in_browser(drop_file, browser, "points.csv", as_csv(rows).decode())
    await eventually(
        lambda: in_browser(visible_text, browser, "import-button"),
        lambda label: label == "Nhập 3 điểm cầu",
    )
    assert await in_browser(error_rows, browser) == []
    await in_browser(lambda: browser.find_element(By.ID, "import-button").click())
    await eventually(
        lambda: in_browser(visible_text, browser, "import-result"),
        lambda text: "tạo 3" in text,
    )
    listed = await eventually(lambda: in_browser(listed_codes, browser), lambda c: len(c) == 3)
    assert sorted(listed) == sorted(row["code"] for row in rows)

    # Narrowed by the filters, then one point edited: its host, and made a relay gateway.
    first = sorted(rows, key=lambda row: row["code"])[0]
    await in_browser(set_filter, browser, "q", first["name"])
    await eventually(lambda: in_browser(listed_codes, browser), lambda c: c == [first["code"]])
    await in_browser(click_in_row, browser, first["code"], "edit")
    await in_browser(
        fill, browser, "edit-form", {"host": "Lê Thị Hoà", "relays_for": "1, 38", "courses": course}
    )
    await eventually(
        lambda: in_browser(visible_text, browser, "point-rows"),
        lambda text: "chuyển tiếp cho 01, 38" in text,
    )
    edited = (await clients["registration"].get(
        f"/v1/points/{first['code']}", headers={"Authorization": f"Bearer {DEV_OPERATOR_TOKEN}"}
    )).json()  # fmt: skip
    assert (edited["host"], edited["relays_for"], edited["courses"]) == (
        "Lê Thị Hoà", ["01", "38"], [course]
    )  # fmt: skip
    await in_browser(set_filter, browser, "q", "")
    await eventually(lambda: in_browser(listed_codes, browser), lambda c: len(c) == 3)

    await in_browser(fill, browser, "sheets-form", {})
    await eventually(
        lambda: in_browser(visible_text, browser, "sheets-result"),
        lambda text: text.startswith("Đã in 3 phiếu"),
    )
    await in_browser(download_into, browser, tmp_path / "downloads")
    await in_browser(lambda: browser.find_element(By.ID, "sheets-link").click())
    links = qr_links(await saved(tmp_path / "downloads"), tmp_path / "sheets")
    assert len(links) == 3 and all(link.startswith(f"{POINT_PAGE}#token=pt_") for link in links)
    # Each is a working link: attendance knows its token as its point's.
    for link in links:
        auth = {"Authorization": f"Bearer {link.split('#token=')[1]}"}

        async def me(auth: dict[str, str] = auth) -> Any:
            answer = await clients["attendance"].get("/v1/points/me", headers=auth)
            return answer.json() if answer.status_code == 200 else None

        known = await eventually(me, lambda found: found is not None)
        assert known["code"] in listed and known["session"]["code"] == f"{course}-S1"
    shot = await in_browser(save_screenshot, browser, WALL, "registry.png")
    assert shot.stat().st_size > 0
    assert await in_browser(script_errors, browser) == []
    assert await in_browser(text_of, browser, "#message") == ""
