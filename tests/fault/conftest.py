"""Fixtures of the fault suite: clients of the shared stack, a broker and a fleet of service
instances of a test's own (for tests that break them), and a record of what each test saw."""

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from devstack.kafka import Broker
from devstack.services import ServiceProcess
from tests.conftest import FIGURES, append_line
from tests.fault.fleet import Fleet, fleet_on, own_broker

Figures = Callable[..., None]


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


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """Record what a test sent and saw (test-artifacts/fault-figures.jsonl), for
    docs/reliability.md: the figures come from runs, not from memory."""

    def record(**seen: object) -> None:
        line = {"test": request.node.nodeid} | seen
        append_line(FIGURES, line)
        print(json.dumps(line, ensure_ascii=False, default=str))

    return record
