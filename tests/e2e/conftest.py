"""Fixtures of the end-to-end tests that need more than the shared stack."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from devstack.alert_routes import Coordinator, routed
from devstack.kafka import Broker, default_cache_dir
from devstack.prometheus import ALERTMANAGER_CONFIG, Alertmanager, Prometheus
from devstack.services import ServiceProcess
from registration.divisions import provinces as official_provinces
from servicekit.provision import ensure_topics
from tests.webhooks import Webhooks, receiving


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test's own, for tests that stop it: the shared one stays up."""
    with Broker.start(default_cache_dir(), tmp_path / "kafka") as broker:
        asyncio.run(ensure_topics(broker.bootstrap))
        yield broker


@pytest.fixture
async def clients(stack: dict[str, ServiceProcess]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """An HTTP client for each of the shared stack's services, by service name."""
    async with contextlib.AsyncExitStack() as opened:
        yield {
            name: await opened.enter_async_context(httpx.AsyncClient(base_url=s.url, timeout=30))
            for name, s in stack.items()
        }


@dataclass
class Alerting:
    prometheus: Prometheus
    alertmanager: Alertmanager
    webhooks: Webhooks


DESK_HOOK = "/desk"


def province_hook(code: str) -> str:
    return f"/province/{code}"


@pytest.fixture
def alerting(stack: dict[str, ServiceProcess], tmp_path: Path) -> Iterator[Alerting]:
    """A real Prometheus scraping the shared stack with the production config and rules, its
    alerts sent to a real Alertmanager with the production routing, rendered with a coordinator
    for every province: the desk's webhook and each province's are paths of `webhooks`."""
    with contextlib.ExitStack() as running:
        webhooks = running.enter_context(receiving())
        coordinators = [
            Coordinator(code, webhook=webhooks.url + province_hook(code))
            for code in official_provinces()
        ]
        base = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
        config = routed(base, coordinators, desk_webhook=webhooks.url + DESK_HOOK)
        alertmanager = running.enter_context(Alertmanager.start(tmp_path / "alertmanager", config))
        prometheus = running.enter_context(
            Prometheus.scraping(stack, tmp_path / "prometheus", alertmanager)
        )
        yield Alerting(prometheus, alertmanager, webhooks)
