"""Fixtures of the end-to-end tests that need more than the shared stack."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from devstack.kafka import Broker, default_cache_dir
from devstack.prometheus import Prometheus
from devstack.services import ServiceProcess
from servicekit.provision import ensure_topics


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


@pytest.fixture
def prometheus(stack: dict[str, ServiceProcess], tmp_path: Path) -> Iterator[Prometheus]:
    """A real Prometheus scraping the shared stack with the production config and rules."""
    with Prometheus.scraping(stack, tmp_path / "prometheus") as server:
        yield server
