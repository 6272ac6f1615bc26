"""One real Kafka broker per test run, and the three services as processes on top of it.

Also one real PostgreSQL server per run, started only when a test asks for it, and a fresh
database per test on SQLite and on PostgreSQL.
"""

import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import settings

from devstack.kafka import Broker, default_cache_dir
from devstack.postgres import TempPostgres
from devstack.services import ServiceProcess, running_services
from servicekit.provision import ensure_topics

# No deadline per example: a timed assertion, and these machines are noisy (the contracts'
# mirror test failed on it while a fault test loaded both cores).
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# (test, wall seconds, machine CPU seconds) of each test run so far.
COSTS: list[tuple[str, float, float]] = []


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy: a test's services and brokers are other
    processes, so the test's own CPU time would miss most of what it costs."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    started, busy = time.monotonic(), _busy_seconds()
    try:
        return (yield)
    finally:
        COSTS.append((item.nodeid, time.monotonic() - started, _busy_seconds() - busy))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """What each test cost, setup and teardown included (test-artifacts/test-costs.jsonl): the
    suite's budget on two cores is spent on the CPU of a few tests, and this says which."""
    if not COSTS:
        return
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "test-costs.jsonl").open("w") as out:
        for test, wall, cpu in sorted(COSTS, key=lambda cost: -cost[2]):
            line = {"test": test, "wall_s": round(wall, 2), "machine_cpu_s": round(cpu, 2)}
            out.write(json.dumps(line) + "\n")


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker.start(default_cache_dir(), tmp_path_factory.mktemp("kafka"))
    with broker:
        asyncio.run(ensure_topics(broker.bootstrap))
        yield broker
    assert not broker.is_running(), "the broker must stop when the run ends"


@pytest.fixture(scope="session")
def stack(
    kafka: Broker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    with running_services(
        bootstrap=kafka.bootstrap, data_dir=tmp_path_factory.mktemp("stack")
    ) as services:
        yield services


@pytest.fixture(scope="session")
def postgres() -> Iterator[TempPostgres]:
    # Not under pytest's basetemp: that is private to the invoking user (mode 0700), and as
    # root the server runs as the 'postgres' user. A short path also keeps the Unix socket legal.
    with tempfile.TemporaryDirectory(prefix="pytest-postgres-") as data_dir:
        with TempPostgres.start(Path(data_dir)) as server:
            yield server
        # Checked while the data dir still exists: pg_ctl cannot tell anything without it.
        assert not server.is_running(), "the PostgreSQL server must stop when the run ends"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL of an empty database of its own, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    # Looked up here, not declared, so SQLite-only runs never start PostgreSQL.
    server: TempPostgres = request.getfixturevalue("postgres")
    name = f"test_{uuid.uuid4().hex}"
    server.create_database(name)
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)
