"""A room with only a browser: the point's personal link, scanned from the QR code of its token
sheet, opened in headless Chromium sends the heartbeats itself, carries the count typed in it
to the desk's dashboard (a second Chromium), keeps the point connected while its tab is hidden
with Chromium's background throttling on, and tells the desk the point left when the tab is
closed (test-artifacts/point-page.png: the room's page on a phone).

The oracle is what the test did: the count it typed, the tab it hid (the page's own
visibility events say for how long) and the tab it closed.
"""

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from devstack.services import ServiceProcess
from registration.config import POINT_PAGE
from tests.e2e.helpers import eventually
from tests.e2e.test_dashboard import (
    PHONE,
    chromium,
    in_browser,
    listed_points,
    save_screenshot,
    script_errors,
    text_of,
    text_of_attribute,
)
from tests.e2e.test_desk import ADMINISTRATOR
from tests.e2e.test_thin_path import fresh_plan, registered_points
from tests.integration.test_registration_api import qr_links

pytestmark = pytest.mark.e2e

# Chromium throttles a hidden page's chained timers to one wake-up a minute after a grace of
# five minutes; ten seconds here, so that a minute hidden shows what hours would.
THROTTLING = "--enable-features=IntensiveWakeUpThrottling:grace_period_seconds/10"
HIDDEN_S = 70.0


async def state_of(clients: dict[str, httpx.AsyncClient], session: str, code: str) -> Any:
    response = await clients["reporting"].get(f"/v1/sessions/{session}/points", params={"q": code})
    items = response.json()["items"] if response.status_code == 200 else []
    return next(((p["state"], p["learners"]) for p in items if p["code"] == code), None)


def start_a_timer_chain(driver: WebDriver) -> None:
    """A main-thread timer chain beside the page's worker, and the page's visibility changes:
    how much the page itself would have been throttled, and for how long it was hidden."""
    driver.execute_script(
        """
        window.__ticks = 0;
        window.__visibility = [];
        const tick = () => { window.__ticks += 1; setTimeout(tick, 1000); };
        tick();
        document.addEventListener('visibilitychange', () =>
          window.__visibility.push([document.visibilityState, Date.now()]));
        """
    )


def timers_and_visibility(driver: WebDriver) -> dict[str, Any]:
    found: dict[str, Any] = driver.execute_script(
        "return {ticks: window.__ticks, visibility: window.__visibility}"
    )
    return found


async def test_a_room_with_only_a_browser_is_heard_while_hidden_and_leaves_on_close(
    clients: dict[str, httpx.AsyncClient], stack: dict[str, ServiceProcess], tmp_path: Path
) -> None:
    # Late after 3 s of silence: a page throttled to a wake-up a minute would show at once.
    # Disconnected only after 2 min: seen sooner, it is the page's leaving heartbeat.
    plan = dataclasses.replace(fresh_plan(points=1), late_after_s=3.0, disconnected_after_s=120.0)
    (room,) = await registered_points(clients, plan)
    # The desk prints the course's sheets; the room scans its QR code (read here from the
    # PDF drawn as an image, as a phone's camera reads the paper).
    sheets = await clients["registration"].post(
        f"/v1/courses/{plan.course_code}/sheets", headers=ADMINISTRATOR
    )
    assert sheets.status_code == 200, sheets.text
    (scanned,) = qr_links(sheets.content, tmp_path / "sheets")
    token = scanned.split("#token=")[1]
    assert token != room.token  # the sheet's own: the import's token stops working
    # The registration page link goes to attendance's /point; the test's attendance listens
    # on a port of its own.
    link = scanned.replace(POINT_PAGE, f"{stack['attendance'].url}/point")

    async def new_token_known() -> int:
        auth = {"Authorization": f"Bearer {token}"}
        return (await clients["attendance"].get("/v1/points/me", headers=auth)).status_code

    await eventually(new_token_known, lambda status: status == 200)
    with (
        chromium(tmp_path / "room", THROTTLING, throttling=True) as browser,
        chromium(tmp_path / "desk") as desk,
    ):
        await in_browser(browser.get, link)
        await eventually(
            lambda: in_browser(text_of_attribute, browser, "#status", "data-state"),
            lambda status: status == "connected",
        )
        # The token is in no address the server saw, nor left in the page's.
        assert "token" not in await in_browser(lambda: browser.current_url)
        name = await in_browser(text_of, browser, "#point-name")
        assert name not in ("", "…")

        count = 27
        field = await in_browser(browser.find_element, By.ID, "learners")
        await in_browser(field.clear)
        await in_browser(field.send_keys, str(count))
        await in_browser(lambda: browser.find_element(By.ID, "send").click())
        await eventually(
            lambda: state_of(clients, plan.session_code, room.code),
            lambda seen: seen == ("connected", count),
        )
        # The desk's dashboard, searching the point, lists it connected with that count.
        dashboard = f"{stack['reporting'].url}/?session={plan.session_code}&q={room.code}"
        await in_browser(desk.get, dashboard)
        rows = await eventually(
            lambda: in_browser(listed_points, desk),
            lambda rows: rows.get(room.code, {}).get("state") == "connected",
        )
        assert f"{count}/" in rows[room.code]["meta"]
        phone = await in_browser(save_screenshot, browser, PHONE, "point-page.png")
        assert phone.stat().st_size > 0

        # Another tab on top: the room's page is hidden, throttled, and still heard.
        await in_browser(start_a_timer_chain, browser)
        room_tab = await in_browser(lambda: browser.current_window_handle)
        await in_browser(browser.switch_to.new_window, "tab")
        seen: set[Any] = set()
        hidden_until = time.monotonic() + HIDDEN_S
        while time.monotonic() < hidden_until:
            seen.add(await state_of(clients, plan.session_code, room.code))
            await asyncio.sleep(0.5)
        await in_browser(browser.close)  # the other tab
        await in_browser(browser.switch_to.window, room_tab)
        shown = await in_browser(timers_and_visibility, browser)
        assert seen == {("connected", count)}, seen
        hidden = [at for what, at in shown["visibility"] if what == "hidden"]
        visible = [at for what, at in shown["visibility"] if what == "visible"]
        assert hidden and visible, shown["visibility"]
        assert (visible[-1] - hidden[0]) / 1000 >= HIDDEN_S * 0.9, shown["visibility"]
        # The page's own timers were throttled meanwhile (one wake-up a minute at most
        # past the grace): the heartbeats did not depend on them.
        assert shown["ticks"] < HIDDEN_S / 2, shown["ticks"]
        assert await in_browser(script_errors, browser) == []

        # The tab closed: the desk sees the point leave, well before 2 minutes of silence
        # could have disconnected it (the patience is half of that).
        await in_browser(browser.close)
        await eventually(
            lambda: state_of(clients, plan.session_code, room.code),
            lambda seen: seen is not None and seen[0] == "disconnected",
            patience=plan.disconnected_after_s / 2,
        )
    assert token not in stack["attendance"].log_path.read_text()
