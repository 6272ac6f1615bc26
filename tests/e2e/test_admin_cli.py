"""`registration-admin` as installed, against the running registration service: an
administrator issues a coordinator's account, the account reads only its provinces, and once
revoked it reads nothing."""

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

pytestmark = pytest.mark.e2e


def admin(registration: ServiceProcess, *args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("registration-admin", path=str(Path(sys.executable).parent))
    assert found, "registration-admin is not installed in this environment"
    env = os.environ | {
        "REGISTRATION_URL": registration.url,
        "REGISTRATION_OPERATOR_TOKEN": DEV_OPERATOR_TOKEN,
    }
    return subprocess.run(
        [found, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_an_administrator_issues_lists_and_revokes_a_coordinator_from_the_command_line(
    stack: dict[str, ServiceProcess],
) -> None:
    registration = stack["registration"]
    name = f"coord.{uuid.uuid4().hex[:8]}"
    issued = admin(
        registration, "accounts", "issue", name, "--role", "coordinator",
        "--province", "1", "--province", "79", "--full-name", "Nguyễn Thị Lan",
    )  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.startswith("ac_")
    with httpx.Client(base_url=registration.url, timeout=10) as client:
        me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json() == {"name": name, "role": "coordinator", "provinces": ["01", "79"]}
        listed = admin(registration, "accounts", "list")
        assert listed.returncode == 0, listed.stderr
        assert f"{name}\tcoordinator\t01,79\tactive" in listed.stdout.splitlines()
        revoked = admin(registration, "accounts", "revoke", name)
        assert revoked.returncode == 0, revoked.stderr
        again = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 403
    # A refusal is one plain line and a failing exit, not a traceback.
    twice = admin(registration, "accounts", "revoke", "nobody-at-all")
    assert twice.returncode == 1
    assert twice.stderr.startswith("refused (404)"), twice.stderr
    # The token was printed once, to the one who asked: not into the service's log.
    assert token not in registration.log_path.read_text()
