"""Every service answers the operations routes: health, metrics, OpenAPI and AsyncAPI."""

import asyncio
import os
import shutil
import subprocess

import httpx
import pytest

from devstack.services import KEEP_ALIVE_S, ServiceProcess
from point_agent.decisions import DEFAULT_INTERVAL_S

pytestmark = pytest.mark.e2e

PUBLISHED = {
    "registration": {"registry.points", "registry.sessions"},
    "attendance": {"attendance.heartbeats", "attendance.point-status"},
    "reporting": {"attendance.point-status", "registry.points"},
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
async def test_health_metrics_and_documents(stack: dict[str, ServiceProcess], name: str) -> None:
    async with httpx.AsyncClient(base_url=stack[name].url) as client:
        health = await client.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        metrics = (await client.get("/metrics")).text
        assert "faststream_" in metrics or name == "registration"
        assert "python_gc_objects_collected_total" not in metrics  # only our own registry
        openapi = (await client.get("/openapi.json")).json()
        assert "/healthz" in openapi["paths"]
        asyncapi = (await client.get("/asyncapi.json")).json()
        channels = {channel["address"] for channel in asyncapi["channels"].values()}
        assert PUBLISHED[name] <= channels


@pytest.mark.parametrize(
    ("name", "path"), [("attendance", "/v1/heartbeats"), ("registration", "/v1/points")]
)
async def test_oversized_bodies_are_refused(
    stack: dict[str, ServiceProcess], name: str, path: str
) -> None:
    async with httpx.AsyncClient(base_url=stack[name].url) as client:
        response = await client.post(
            path, content=b"{" + b" " * 200_000 + b"}", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_metrics_pass_promtool(stack: dict[str, ServiceProcess], name: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool missing: bin/_prepare.sh installs Debian's prometheus package")
        pytest.skip("promtool not installed")
    exposition = httpx.get(f"{stack[name].url}/metrics").content
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


async def test_a_connection_idle_for_a_heartbeat_interval_stays_open(
    stack: dict[str, ServiceProcess],
) -> None:
    """A room beating every interval finds its connection still open; a server closing it at the
    very moment a client reuses it was a lost heartbeat (ReadError) in the simulated course."""
    limits = httpx.Limits(keepalive_expiry=KEEP_ALIVE_S)
    async with httpx.AsyncClient(base_url=stack["attendance"].url, limits=limits) as room:
        before = await _room_address(room)
        await asyncio.sleep(DEFAULT_INTERVAL_S + 1)
        assert await _room_address(room) == before


async def _room_address(room: httpx.AsyncClient) -> tuple[str, int]:
    """The client end of the connection the request went over."""
    response = await room.get("/healthz")
    address: tuple[str, int] = response.extensions["network_stream"].get_extra_info("client_addr")
    return address
