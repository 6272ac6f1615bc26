"""One real Kafka broker per test run, and the three services as processes on top of it.

Also one real PostgreSQL server per run, started only when a test asks for it, and a fresh
database per test on SQLite and on PostgreSQL.
"""

import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import settings

from devstack import ports
from devstack.kafka import PERFORMANCE_OPTS, Broker, default_cache_dir
from devstack.postgres import TempPostgres
from devstack.services import ServiceProcess, running_services
from servicekit.provision import ensure_topics
from tests.webhooks import Webhooks, receiving

# The suite starts a score of brokers and none runs long: C1's code is ready in half the CPU,
# and C2's peak speed would never pay off (devstack.kafka.PERFORMANCE_OPTS).
os.environ.setdefault(PERFORMANCE_OPTS, "-XX:+UseG1GC -XX:TieredStopAtLevel=1")
# No deadline per example: a timed assertion, and these machines are noisy (the contracts'
# mirror test failed on it while a fault test loaded both cores).
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
COSTS = ARTIFACTS / "test-costs.jsonl"
FIGURES = ARTIFACTS / "fault-figures.jsonl"
Figures = Callable[..., None]


def pytest_configure(config: pytest.Config) -> None:
    """Each pytest-xdist worker starts its processes on ports of its own slice of the range
    (`devstack.ports`), the brokers and services it runs through its children too; and the
    run's artifacts are emptied once, by the process that started the run."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is not None:
        count = os.environ["PYTEST_XDIST_WORKER_COUNT"]
        os.environ[ports.SLICE_VARIABLE] = f"{worker.removeprefix('gw')}/{count}"
        return
    ARTIFACTS.mkdir(exist_ok=True)
    for path in (COSTS, FIGURES):
        path.write_text("")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On pytest-xdist's workers, the tests that run one after the other on one worker first
    (`tests.fault.fleet`: UNDER_LOAD): together they take longest, so they start at once and
    the rest runs beside them."""
    if os.environ.get("PYTEST_XDIST_WORKER") is not None:
        items.sort(key=lambda item: item.get_closest_marker("xdist_group") is None)


def _cpu_seconds() -> float:
    """CPU seconds of this process and of every process it started, ended or running: a
    test's brokers and services are other processes. An ended one counts once reaped."""
    me = psutil.Process()
    mine = me.cpu_times()
    total = mine.user + mine.system + mine.children_user + mine.children_system
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            theirs = child.cpu_times()
            total += theirs.user + theirs.system
    return float(total)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """What each test costs, setup and teardown included (test-artifacts/test-costs.jsonl):
    the suite's budget on two cores is spent on the CPU of a few tests, and this says which."""
    started, cpu = time.monotonic(), _cpu_seconds()
    try:
        return (yield)
    finally:
        wall, cpu = time.monotonic() - started, _cpu_seconds() - cpu
        append_line(COSTS, {"test": item.nodeid, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)})


def append_line(path: Path, record: dict[str, object]) -> None:
    """One JSON line at the end of `path`, in one write: the workers append side by side."""
    line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker.start(default_cache_dir(), tmp_path_factory.mktemp("kafka"))
    with broker:
        asyncio.run(ensure_topics(broker.bootstrap))
        yield broker
    assert not broker.is_running(), "the broker must stop when the run ends"


INCIDENT_HOOK = "/incidents"
WEBHOOK_SECRET = "webhook-secret-of-the-suite"


@pytest.fixture(scope="session")
def incident_hooks() -> Iterator[Webhooks]:
    """The receiver the shared stack's reporting posts its incidents to (INCIDENT_HOOK)."""
    with receiving() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def stack(
    kafka: Broker, incident_hooks: Webhooks, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    reporting = {
        "REPORTING_WEBHOOK_URLS": json.dumps([incident_hooks.url + INCIDENT_HOOK]),
        "REPORTING_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    with running_services(
        bootstrap=kafka.bootstrap,
        data_dir=tmp_path_factory.mktemp("stack"),
        extra_env={"reporting": reporting},
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


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """Record what a test sent and saw (test-artifacts/fault-figures.jsonl), for
    docs/reliability.md: the figures come from runs, not from memory."""

    def record(**seen: object) -> None:
        line = {"test": request.node.nodeid} | seen
        append_line(FIGURES, line)
        print(json.dumps(line, ensure_ascii=False, default=str))

    return record
