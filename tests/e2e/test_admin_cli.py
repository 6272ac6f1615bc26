"""`registration-admin` as installed, against the running services: an administrator issues a
coordinator's account, which registration and, through `registry.accounts`, reporting then
know and keep to its provinces; once revoked, neither takes its token."""

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from devstack.services import ServiceProcess
from devstack.simulate import DEV_OPERATOR_TOKEN
from tests.e2e.helpers import eventually

pytestmark = pytest.mark.e2e


async def admin(registration: ServiceProcess, *args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("registration-admin", path=str(Path(sys.executable).parent))
    assert found, "registration-admin is not installed in this environment"
    env = os.environ | {
        "REGISTRATION_URL": registration.url,
        "REGISTRATION_OPERATOR_TOKEN": DEV_OPERATOR_TOKEN,
    }
    return await asyncio.to_thread(
        subprocess.run,
        [found, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_an_administrator_issues_lists_and_revokes_a_coordinator_from_the_command_line(
    stack: dict[str, ServiceProcess],
) -> None:
    registration, reporting = stack["registration"], stack["reporting"]
    name = f"coord.{uuid.uuid4().hex[:8]}"
    issued = await admin(
        registration, "accounts", "issue", name, "--role", "coordinator",
        "--province", "1", "--province", "79", "--full-name", "Nguyễn Thị Lan",
    )  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.startswith("ac_")
    as_coordinator = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=registration.url, timeout=10) as to_registration,
        httpx.AsyncClient(base_url=reporting.url, timeout=10) as to_reporting,
    ):
        me = await to_registration.get("/v1/me", headers=as_coordinator)
        assert me.json() == {"name": name, "role": "coordinator", "provinces": ["01", "79"]}
        listed = await admin(registration, "accounts", "list")
        assert listed.returncode == 0, listed.stderr
        assert f"{name}\tcoordinator\t01,79\tactive" in listed.stdout.splitlines()

        async def sessions() -> httpx.Response:
            return await to_reporting.get("/v1/sessions", headers=as_coordinator)

        # Reporting hears of the account on registry.accounts.
        await eventually(sessions, lambda response: response.status_code == 200)
        revoked = await admin(registration, "accounts", "revoke", name)
        assert revoked.returncode == 0, revoked.stderr
        assert (await to_registration.get("/v1/me", headers=as_coordinator)).status_code == 403
        await eventually(sessions, lambda response: response.status_code == 401)
    # A refusal is one plain line and a failing exit, not a traceback.
    unknown = await admin(registration, "accounts", "revoke", "nobody-at-all")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("refused (404)"), unknown.stderr
    # The token was printed once, to the one who asked: not into a service's log.
    for service in (registration, reporting):
        assert token not in service.log_path.read_text()
