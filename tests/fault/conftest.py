"""Fixtures of the fault suite: clients of the shared stack, a broker and a fleet of service
instances of a test's own (for tests that break them), and a record of what each test saw."""

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from devstack.kafka import Broker
from devstack.services import ServiceProcess
from tests.conftest import ARTIFACTS
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


@pytest.fixture(scope="session")
def figures_file() -> Iterator[Path]:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "fault-figures.jsonl"
    path.write_text("")
    yield path


@pytest.fixture
def figures(request: pytest.FixtureRequest, figures_file: Path) -> Figures:
    """Record what a test sent and saw (test-artifacts/fault-figures.jsonl), for
    docs/reliability.md: the figures come from runs, not from memory."""

    def record(**seen: object) -> None:
        line = json.dumps({"test": request.node.nodeid} | seen, ensure_ascii=False, default=str)
        with figures_file.open("a") as out:
            out.write(line + "\n")
        print(line)

    return record
