"""Two desks in two real browsers (Debian's Chromium), each logged in as its own account: a
province coordinator and a desk operator. The coordinator sees only the points of their
province, acknowledges and annotates a dropped one; the operator's page shows who did it and
what was noted and to whom it was given without being reloaded, and the session's report
keeps it all; the point's page tells what it went through and what the desk did, and the
coordinator's province, picked, lists all its points (test-artifacts/desk.png: the operator's
screen; point.png: the point's page).

Which points each desk should list is known from the raw input: the points the test silenced,
and each point's province as registration holds it.
"""

import asyncio
import contextlib
import dataclasses
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from devstack.services import ServiceProcess
from devstack.simulate import DEV_OPERATOR_TOKEN
from tests.e2e.helpers import eventually
from tests.e2e.test_dashboard import (
    WALL,
    chromium,
    in_browser,
    keep_beating,
    save_screenshot,
    script_errors,
    text_of,
    text_of_attribute,
)
from tests.e2e.test_thin_path import fresh_plan, registered_points

pytestmark = pytest.mark.e2e

ADMINISTRATOR = {"Authorization": f"Bearer {DEV_OPERATOR_TOKEN}"}


async def issue_account(
    clients: dict[str, httpx.AsyncClient], role: str, provinces: list[str]
) -> tuple[str, str]:
    """A new account through registration's API, once reporting knows it: (name, token)."""
    name = f"{role[:5]}.{uuid.uuid4().hex[:8]}"
    body = {"name": name, "role": role, "provinces": provinces, "full_name": name}
    response = await clients["registration"].post("/v1/accounts", json=body, headers=ADMINISTRATOR)
    response.raise_for_status()
    token: str = response.json()["token"]

    async def me() -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return (await clients["reporting"].get("/v1/me", headers=headers)).status_code

    await eventually(me, lambda status: status == 200)
    return name, token


async def province_of(clients: dict[str, httpx.AsyncClient], code: str) -> str:
    response = await clients["registration"].get(f"/v1/points/{code}", headers=ADMINISTRATOR)
    response.raise_for_status()
    province: str = response.json()["province_code"]
    return province


def listed(driver: WebDriver) -> dict[str, dict[str, Any]]:
    """The points the page lists, by code: their state, how they are handled, their buttons."""
    rows: list[dict[str, Any]] = driver.execute_script(
        """
        return [...document.querySelectorAll('#problem-list .problem')].map((row) => ({
          code: row.dataset.code,
          state: row.dataset.state,
          name: row.querySelector('.problem__name').textContent,
          handling: row.querySelector('.handling__text')?.textContent ?? '',
          buttons: [...row.querySelectorAll('button[data-response]')]
            .map((button) => button.dataset.response),
        }));
        """
    )
    return {row["code"]: row for row in rows}


def point_page(driver: WebDriver) -> dict[str, Any]:
    """The point's page as shown: its name, its states oldest first, the desk's actions."""
    page: dict[str, Any] = driver.execute_script(
        """
        const dialog = document.getElementById('point-dialog');
        if (!dialog.open) return {name: null, states: [], actions: []};
        const states = [...dialog.querySelectorAll('.point__moments .moment')]
          .map((item) => item.dataset.state).reverse();
        const actions = [...dialog.querySelectorAll('.point__actions li span')]
          .map((item) => item.textContent);
        return {name: document.getElementById('point-name').textContent, states, actions};
        """
    )
    return page


def click(driver: WebDriver, selector: str) -> None:
    # Found and clicked in one script: the list is rebuilt as it refreshes, and an element
    # found by one call may be gone by the next.
    driver.execute_script("document.querySelector(arguments[0]).click()", selector)


def log_in_through_the_dialog(driver: WebDriver, token: str) -> None:
    click(driver, "#account-button")
    driver.find_element(By.ID, "login-token").send_keys(token)
    click(driver, "#login-submit")


def account_shown(driver: WebDriver) -> str:
    text: str = driver.execute_script(
        "const box = document.getElementById('account'); return box.hidden ? '' : box.textContent"
    )
    return text


async def logged_in_as(driver: WebDriver, name: str) -> None:
    await eventually(lambda: in_browser(account_shown, driver), lambda shown: name in shown)


async def test_a_coordinator_and_an_operator_act_on_a_dropped_point_and_see_each_other(
    clients: dict[str, httpx.AsyncClient], stack: dict[str, ServiceProcess], tmp_path: Path
) -> None:
    plan = dataclasses.replace(fresh_plan(points=12), late_after_s=3.0, disconnected_after_s=6.0)
    points = await registered_points(clients, plan)
    provinces = {p.code: await province_of(clients, p.code) for p in points}
    ours = points[0]
    theirs = next(p for p in points if provinces[p.code] != provinces[ours.code])
    coordinator, coordinator_token = await issue_account(
        clients, "coordinator", [provinces[ours.code]]
    )
    operator, operator_token = await issue_account(clients, "operator", [])
    silenced: set[str] = set()
    beating = asyncio.create_task(keep_beating(clients["attendance"], points, plan, silenced))
    dashboard = f"{stack['reporting'].url}/?session={plan.session_code}"
    try:
        with (
            chromium(tmp_path / "coordinator") as province_desk,
            chromium(tmp_path / "operator") as national_desk,
        ):
            # The coordinator logs in through the form; the operator follows a link carrying
            # their token, which the page exchanges for the cookie and takes off the address.
            await in_browser(province_desk.get, dashboard)
            # as a person would: once the page is up (its live badge on), not while it loads
            await eventually(
                lambda: in_browser(text_of_attribute, province_desk, "#live-badge", "data-state"),
                lambda badge: badge == "live",
            )
            await in_browser(log_in_through_the_dialog, province_desk, coordinator_token)
            await in_browser(national_desk.get, f"{dashboard}#token={operator_token}")
            for desk, name in ((province_desk, coordinator), (national_desk, operator)):
                await logged_in_as(desk, name)
            assert operator_token not in await in_browser(lambda: national_desk.current_url)

            silenced.update({ours.code, theirs.code})
            everyone = set(silenced)
            in_province = {code for code in silenced if provinces[code] == provinces[ours.code]}

            def all_dropped(expected: set[str]) -> Any:
                return lambda rows: (
                    set(rows) == expected
                    and all(row["state"] == "disconnected" for row in rows.values())
                )

            national = await eventually(
                lambda: in_browser(listed, national_desk), all_dropped(everyone)
            )
            local = await eventually(
                lambda: in_browser(listed, province_desk), all_dropped(in_province)
            )
            for rows in (national, local):
                assert set(rows[ours.code]["buttons"]) == {
                    "acknowledge", "assign", "annotate", "resolve"
                }  # fmt: skip

            # The coordinator acknowledges the point, then notes what the call found.
            note = "Đã gọi đầu mối: mất điện, 10:30 có lại"
            row = f'#problem-list .problem[data-code="{ours.code}"]'
            await in_browser(click, province_desk, f'{row} button[data-response="acknowledge"]')
            await eventually(
                lambda: in_browser(listed, province_desk),
                lambda rows: (
                    "acknowledge" not in rows[ours.code]["buttons"]
                    and coordinator in rows[ours.code]["handling"]
                ),
            )
            await in_browser(click, province_desk, f'{row} button[data-response="annotate"]')
            await in_browser(lambda: province_desk.find_element(By.ID, "act-note").send_keys(note))
            await in_browser(click, province_desk, "#act-submit")
            await eventually(
                lambda: in_browser(listed, province_desk),
                lambda rows: note in rows[ours.code]["handling"],
            )

            # And gives it to the operator: a name no account holds is refused in the dialog.
            await in_browser(click, province_desk, f'{row} button[data-response="assign"]')
            await in_browser(
                lambda: province_desk.find_element(By.ID, "act-assignee").send_keys("nobody.at.all")
            )
            await in_browser(click, province_desk, "#act-submit")
            refused = await eventually(
                lambda: in_browser(text_of, province_desk, "#act-error"), lambda text: text != ""
            )
            assert refused == "Không có tài khoản nào tên như vậy."
            assignee = province_desk.find_element(By.ID, "act-assignee")
            await in_browser(assignee.clear)
            await in_browser(assignee.send_keys, operator)
            await in_browser(click, province_desk, "#act-submit")

            # The operator's page, never reloaded, shows it all.
            seen = await eventually(
                lambda: in_browser(listed, national_desk),
                lambda rows: (
                    note in rows[ours.code]["handling"]
                    and f"Giao cho {operator}" in rows[ours.code]["handling"]
                ),
            )
            assert f"Đã nhận: {coordinator}" in seen[ours.code]["handling"]
            assert "acknowledge" not in seen[ours.code]["buttons"]
            assert seen[theirs.code]["handling"] == ""

            shot = await in_browser(save_screenshot, national_desk, WALL, "desk.png")
            assert shot.stat().st_size > 0
            # The timeline's axis spans the minutes drawn (a lone sample too), not years.
            span = await in_browser(
                text_of_attribute, national_desk, "#timeline-chart", "data-span"
            )
            assert 0 < int(span or 0) <= 4 * 3600, span

            # The point's page, from its name: what it went through (it beat, then fell
            # silent) and what the desk did; its address opens it again.
            await in_browser(click, national_desk, f"{row} .problem__name")
            page = await eventually(
                lambda: in_browser(point_page, national_desk),
                lambda page: len(page["actions"]) == 3,
            )
            assert page["name"] == seen[ours.code]["name"]
            assert page["states"][0] == "connected" and page["states"][-1] == "disconnected"
            assert all(action.startswith(coordinator) for action in page["actions"])
            assert note in page["actions"][1]
            assert f"point={ours.code}" in await in_browser(lambda: national_desk.current_url)
            point_shot = await in_browser(save_screenshot, national_desk, WALL, "point.png")
            assert point_shot.stat().st_size > 0
            await in_browser(national_desk.refresh)
            again = await eventually(
                lambda: in_browser(point_page, national_desk),
                lambda page: len(page["actions"]) == 3,
            )
            assert again["states"] == page["states"]
            await in_browser(click, national_desk, "#point-close")
            # (the dialog's close event comes after the click, as a task of its own)
            await eventually(
                lambda: in_browser(lambda: national_desk.current_url),
                lambda address: "point=" not in address,
            )

            # The coordinator's province, picked: all its points, the dropped one first.
            ours_tile = f'#province-grid .tile[data-code="{provinces[ours.code]}"]'
            await in_browser(click, province_desk, ours_tile)
            province_points = {p.code for p in points if provinces[p.code] == provinces[ours.code]}
            in_view = await eventually(
                lambda: in_browser(listed, province_desk),
                lambda rows: set(rows) == province_points,
            )
            assert next(iter(in_view)) == ours.code
            assert {row["state"] for code, row in in_view.items() if code != ours.code} <= {
                "connected"
            }
            for desk in (province_desk, national_desk):
                assert await in_browser(script_errors, desk) == []
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating

    # The report keeps what the desk did, by whom.
    response = await clients["reporting"].get(
        f"/v1/sessions/{plan.session_code}/report",
        params={"format": "json"},
        headers={"Authorization": f"Bearer {operator_token}"},
    )
    response.raise_for_status()
    (line,) = [p for p in response.json()["points"] if p["code"] == ours.code]
    assert f"acknowledged by {coordinator}" in line["actions"]
    assert f"note by {coordinator}: {note}" in line["actions"]
    assert f"assigned to {operator} by {coordinator}" in line["actions"]
