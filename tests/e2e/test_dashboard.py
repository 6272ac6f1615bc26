"""The operations dashboard in a real browser: headless Chromium from Debian's packages (never a
downloaded one), driven by Selenium through Debian's chromedriver, against the three services.

Saves what the desk would see to test-artifacts/dashboard.png (1920x1080, a wall screen) and
test-artifacts/dashboard-1366.png (a laptop).
"""

import asyncio
import contextlib
import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from devstack.services import ServiceProcess
from devstack.simulate import CoursePlan, SimulatedPoint, send_heartbeat
from tests.e2e.helpers import eventually
from tests.e2e.test_thin_path import fresh_plan, registered_points, totals

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WALL = (1920, 1080)
LAPTOP = (1366, 768)

# The headline figures of the page (element id -> field of the totals).
FIGURES = {
    "points-connected": "connected",
    "points-registered": "registered",
    "learners-present": "learners_present",
    "learners-expected": "learners_expected",
    "count-late": "late",
    "count-disconnected": "disconnected",
    "count-never": "never_connected",
}

T = TypeVar("T")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("needs Debian's chromium and chromium-driver (bin/test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--window-size={WALL[0]},{WALL[1]}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager never looks for (or downloads) one.
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        set_viewport(driver, WALL)
        yield driver
    finally:
        driver.quit()


def set_viewport(driver: WebDriver, size: tuple[int, int]) -> None:
    """The page's viewport exactly, whatever the headless window's decorations."""
    width, height = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


async def in_browser(action: Callable[..., T], *args: Any) -> T:
    """Selenium blocks: drive the browser from a thread so the heartbeats keep flowing."""
    return await asyncio.to_thread(action, *args)


def figures_on_page(driver: WebDriver) -> dict[str, Any]:
    """The headline figures as the page holds them (`data-value`) and shows them (text)."""
    found: dict[str, Any] = driver.execute_script(
        """
        const out = {};
        for (const id of arguments[0]) {
          const node = document.getElementById(id);
          out[id] = {value: node.dataset.value, text: node.textContent};
        }
        return out;
        """,
        list(FIGURES),
    )
    return found


def agree(page: dict[str, Any], api: dict[str, Any]) -> bool:
    return all(page[id_]["value"] == str(api.get(field)) for id_, field in FIGURES.items())


def listed_points(driver: WebDriver) -> dict[str, dict[str, str]]:
    """The late and disconnected points listed on the page, by code."""
    rows: list[dict[str, str]] = driver.execute_script(
        """
        return [...document.querySelectorAll('#problem-list .problem')].map((row) => ({
          code: row.dataset.code,
          state: row.dataset.state,
          name: row.querySelector('.problem__name').textContent,
          meta: row.querySelector('.problem__meta').textContent,
          duration: row.querySelector('.problem__duration').textContent,
        }));
        """
    )
    return {row["code"]: row for row in rows}


def text_of(driver: WebDriver, selector: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, selector).text


def text_of_attribute(driver: WebDriver, selector: str, name: str) -> str | None:
    return driver.find_element(By.CSS_SELECTOR, selector).get_attribute(name)


def seconds_of(duration: str) -> int:
    minutes, seconds = duration.split(":")
    return int(minutes) * 60 + int(seconds)


def save_screenshot(driver: WebDriver, size: tuple[int, int], name: str) -> Path:
    set_viewport(driver, size)
    time.sleep(1.0)  # let the grid reflow and the chart redraw at the new size
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path)), f"no screenshot saved at {path}"
    return path


def script_errors(driver: WebDriver) -> list[str]:
    """Exceptions the page's scripts raised (the console log, through chromedriver)."""
    log: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [
        entry["message"]
        for entry in log
        if entry["level"] == "SEVERE" and "Uncaught" in entry["message"]
    ]


async def keep_beating(
    attendance: httpx.AsyncClient,
    points: list[SimulatedPoint],
    plan: CoursePlan,
    silenced: set[str],
) -> None:
    """Every point but the silenced ones sends a heartbeat each interval, like real points."""
    while True:
        for point in points:
            if point.code not in silenced:
                with contextlib.suppress(httpx.TransportError):
                    await send_heartbeat(attendance, point, plan.session_code)
        await asyncio.sleep(plan.heartbeat_interval_s)


async def test_dashboard_follows_the_live_totals(
    clients: dict[str, httpx.AsyncClient], stack: dict[str, ServiceProcess], browser: WebDriver
) -> None:
    # A little slack over the thin path's timings: the page is compared with the API while
    # heartbeats flow, and a point flapping late would only slow the comparison down.
    plan = dataclasses.replace(fresh_plan(points=12), late_after_s=3.0, disconnected_after_s=6.0)
    points = await registered_points(clients, plan)
    for number, point in enumerate(points):
        point.learners = 10 + number
    silenced: set[str] = set()
    beating = asyncio.create_task(keep_beating(clients["attendance"], points, plan, silenced))
    try:
        await in_browser(browser.get, f"{stack['reporting'].url}/?session={plan.session_code}")

        async def page_and_api() -> tuple[dict[str, Any], dict[str, Any]]:
            return await in_browser(figures_on_page, browser), await totals(clients, plan)

        # The headline figures are the API's totals, once every point is connected.
        page, api = await eventually(
            page_and_api, lambda seen: seen[1].get("connected") == 12 and agree(*seen)
        )
        assert api["learners_present"] == sum(10 + n for n in range(12))
        for id_, field in FIGURES.items():
            shown = re.sub(r"\D", "", page[id_]["text"])  # "1.234" in Vietnamese
            assert shown == str(api[field]), (id_, page[id_]["text"], api[field])
        assert await in_browser(text_of, browser, "#live-badge") == "Trực tiếp"

        # One point falls silent: it goes late, then is listed as disconnected, for how long.
        dropping = points[0]
        silenced.add(dropping.code)
        listed = await eventually(
            lambda: in_browser(listed_points, browser),
            lambda rows: rows.get(dropping.code, {}).get("state") == "disconnected",
        )
        row = listed[dropping.code]
        response = await clients["reporting"].get(
            f"/v1/sessions/{plan.session_code}/points", params={"state": "disconnected"}
        )
        (item,) = [p for p in response.json()["items"] if p["code"] == dropping.code]
        assert row["name"] == item["name"]
        assert dropping.code in row["meta"]
        assert re.fullmatch(r"\d{2}:\d{2}", row["duration"]), row["duration"]
        # The duration counts on the page, between two refreshes of the list.
        later = await eventually(
            lambda: in_browser(listed_points, browser),
            lambda rows: (
                dropping.code in rows
                and seconds_of(rows[dropping.code]["duration"]) > seconds_of(row["duration"])
            ),
            patience=10,
        )
        assert later[dropping.code]["state"] == "disconnected"
        page, api = await eventually(
            page_and_api, lambda seen: seen[1].get("disconnected") == 1 and agree(*seen)
        )
        assert (api["connected"], api["late"]) == (11, 0)

        # The timeline has a line to draw (samples, then the live totals every 10 s).
        await eventually(
            lambda: in_browser(text_of_attribute, browser, "#timeline-chart", "data-samples"),
            lambda samples: int(samples or 0) >= 2,
        )
        wall = await in_browser(save_screenshot, browser, WALL, "dashboard.png")
        laptop = await in_browser(save_screenshot, browser, LAPTOP, "dashboard-1366.png")
        assert wall.stat().st_size > 0 and laptop.stat().st_size > 0
        await in_browser(set_viewport, browser, WALL)

        # Vietnamese first; the switch relabels the page and is remembered.
        label = '[data-i18n="pointsConnected"]'
        assert await in_browser(text_of, browser, label) == "ĐIỂM CẦU ĐANG KẾT NỐI"
        await in_browser(lambda: browser.find_element(By.ID, "lang-toggle").click())
        await eventually(
            lambda: in_browser(text_of, browser, label), lambda text: text == "POINTS CONNECTED"
        )
        assert await in_browser(text_of, browser, "#lang-toggle") == "Tiếng Việt"
        await in_browser(browser.refresh)
        await eventually(
            lambda: in_browser(text_of, browser, label), lambda text: text == "POINTS CONNECTED"
        )
        assert await in_browser(script_errors, browser) == []
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
