"""The operations dashboard in a real browser: headless Chromium from Debian's packages (never a
downloaded one), driven by Selenium through Debian's chromedriver, against the three services.

Saves what the desk would see to test-artifacts/dashboard.png (1920x1080, a wall screen) and
test-artifacts/dashboard-1366.png (a laptop); and, for a nationwide course with every room full,
test-artifacts/fit-1920.png, fit-1366.png and fit-390.png (a phone).
"""

import asyncio
import contextlib
import dataclasses
import re
import time
from collections import Counter
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
from registration.official import official_points
from tests.e2e.helpers import eventually
from tests.e2e.test_thin_path import fresh_plan, registered_points, totals

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WALL = (1920, 1080)
LAPTOP = (1366, 768)
PHONE = (390, 844)
PROVINCES = 34

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


@contextlib.contextmanager
def chromium(profile: Path, *flags: str, throttling: bool = False) -> Iterator[WebDriver]:
    """A headless Chromium of its own profile (its own cookies), its viewport a wall screen's,
    with `flags` besides the usual ones; `throttling`: a hidden tab's timers slowed as in a
    person's browser (chromedriver turns that off by default)."""
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
        f"--user-data-dir={profile}",
        f"--window-size={WALL[0]},{WALL[1]}",
        *flags,
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if throttling:
        kept_off = ["disable-background-timer-throttling", "disable-backgrounding-occluded-windows"]
        options.add_experimental_option("excludeSwitches", kept_off)
    # An explicit driver path: Selenium Manager never looks for (or downloads) one.
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        set_viewport(driver, WALL)
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def set_viewport(driver: WebDriver, size: tuple[int, int]) -> None:
    """The page's viewport exactly, whatever the headless window's decorations."""
    width, height = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
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


def picked_tile(driver: WebDriver) -> str | None:
    """The province whose tile is picked, if any."""
    code: str | None = driver.execute_script(
        "return document.querySelector('#province-grid .tile--picked')?.dataset.code ?? null"
    )
    return code


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


# What holds a figure: none may be wider than its box (a name may be cut short with "…": its
# own box clips it on purpose, so names are not measured, their tiles and rows are).
HOLDERS = (
    ".topbar, .card, .kpi__detail, .state, .tile, .tile__figures, .channel__head, "
    ".channel__detail, .problem, .incident"
)


def fit_on_page(driver: WebDriver) -> dict[str, Any]:
    """What spills out of its box, whether the page scrolls sideways, and the province tiles:
    how many, and how many lie wholly inside the viewport."""
    found: dict[str, Any] = driver.execute_script(
        """
        const spilled = [];
        for (const node of document.querySelectorAll(arguments[0])) {
          if (!node.getClientRects().length) continue;  // not shown
          if (node.scrollWidth > node.clientWidth + 1) {
            spilled.push(`${node.className} (${node.scrollWidth} > ${node.clientWidth}): ` +
              node.textContent.trim().replace(/\\s+/g, " ").slice(0, 60));
          }
        }
        const tiles = [...document.querySelectorAll("#province-grid .tile")];
        const inView = tiles.filter((tile) => {
          const r = tile.getBoundingClientRect();
          return r.width > 0 && r.top >= 0 && r.left >= 0 &&
            r.bottom <= innerHeight && r.right <= innerWidth;
        });
        const page = document.documentElement;
        return {
          spilled,
          sideways: page.scrollWidth > innerWidth,
          tiles: tiles.length,
          tiles_in_view: inView.length,
          provinces_top: Math.round(document.getElementById("province-grid")
            .getBoundingClientRect().top + scrollY),
        };
        """,
        HOLDERS,
    )
    return found


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

        # A province's view has its address: picking its tile puts it in the link, and a link
        # opens the page on that province, its list narrowed to it.
        dashboard = f"{stack['reporting'].url}/?session={plan.session_code}"
        province = item["province_code"]
        tile = f'#province-grid .tile[data-code="{province}"]'
        await in_browser(lambda: browser.find_element(By.CSS_SELECTOR, tile).click())
        assert f"province={province}" in await in_browser(lambda: browser.current_url)
        other = next(code for code in ("01", "79") if code != province)
        await in_browser(browser.get, f"{dashboard}&province={other}")
        await eventually(lambda: in_browser(picked_tile, browser), lambda code: code == other)
        await in_browser(browser.get, f"{dashboard}&province={province}")
        await eventually(lambda: in_browser(picked_tile, browser), lambda code: code == province)
        await eventually(
            lambda: in_browser(listed_points, browser), lambda rows: dropping.code in rows
        )
        await in_browser(browser.get, dashboard)

        # The search box finds any point, in whatever state; the address carries the search.
        steady = points[-1]
        typed = steady.code.lower()
        await in_browser(lambda: browser.find_element(By.ID, "point-search").send_keys(typed))
        found = await eventually(
            lambda: in_browser(listed_points, browser), lambda rows: set(rows) == {steady.code}
        )
        assert found[steady.code]["state"] == "connected"
        assert f"q={typed}" in await in_browser(lambda: browser.current_url)
        await in_browser(browser.get, dashboard)
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


async def beat_once(
    attendance: httpx.AsyncClient, points: list[SimulatedPoint], session_code: str
) -> None:
    """One heartbeat from every point, 32 at a time, each answered 202."""
    gate = asyncio.Semaphore(32)

    async def beat(point: SimulatedPoint) -> int:
        async with gate:
            return (await send_heartbeat(attendance, point, session_code)).status_code

    answers = await asyncio.gather(*(beat(point) for point in points))
    assert set(answers) == {202}, Counter(answers)


async def test_every_screen_fits_a_nationwide_course(
    clients: dict[str, httpx.AsyncClient], stack: dict[str, ServiceProcess], browser: WebDriver
) -> None:
    """Every official point (34 provinces and 3,321 communes, up to 169 points a province),
    connected with its room full: the widest figures a course shows. At 1920x1080, 1366x768 and
    on a 390x844 phone no figure spills out of its box and the page never scrolls sideways;
    the wall screen shows every province at once, the phone within its first two screens."""
    everyone = len(official_points(expected_learners=0))
    plan = dataclasses.replace(
        fresh_plan(points=everyone), late_after_s=600.0, disconnected_after_s=900.0
    )
    points = await registered_points(clients, plan)
    for point in points:
        point.learners = point.expected_learners
    await beat_once(clients["attendance"], points, plan.session_code)
    await in_browser(browser.get, f"{stack['reporting'].url}/?session={plan.session_code}")
    await eventually(
        lambda: in_browser(figures_on_page, browser),
        lambda page: page["points-connected"]["value"] == str(everyone),
    )
    fits = {}
    for size, name in ((WALL, "fit-1920.png"), (LAPTOP, "fit-1366.png"), (PHONE, "fit-390.png")):
        await in_browser(save_screenshot, browser, size, name)
        fits[size] = await in_browser(fit_on_page, browser)
    for size, fit in fits.items():
        assert (fit["spilled"], fit["sideways"]) == ([], False), (size, fit)
        assert fit["tiles"] == PROVINCES, (size, fit)
    assert fits[WALL]["tiles_in_view"] == PROVINCES, fits[WALL]
    # On the phone the provinces come right after the headline, not below the list.
    assert fits[PHONE]["provinces_top"] <= 2 * PHONE[1], fits[PHONE]
    assert await in_browser(script_errors, browser) == []
