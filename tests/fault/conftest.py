"""Fixtures of the fault suite: clients of the shared stack, and a broker and a fleet of service
instances of a test's own (for tests that break them)."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from devstack.kafka import Broker
from devstack.services import ServiceProcess
from tests.fault.fleet import Fleet, fleet_on, own_broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    yield from own_broker(tmp_path)


@pytest.fixture
def fleet(broker: Broker, tmp_path: Path) -> Iterator[Fleet]:
    """The services on `broker`, each role its own process (a test needing other settings
    overrides this fixture)."""
    yield from fleet_on(broker, tmp_path)


@pytest.fixture
async def clients(stack: dict[str, ServiceProcess]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    clients = {name: httpx.AsyncClient(base_url=s.url, timeout=15) for name, s in stack.items()}
    yield clients
    for client in clients.values():
        await client.aclose()
