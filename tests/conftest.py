"""One real Kafka broker per test run, and the three services as processes on top of it."""

import asyncio
from collections.abc import Iterator

import pytest

from devstack.kafka import Broker, default_cache_dir
from devstack.services import ServiceProcess, running_services
from servicekit.provision import ensure_topics


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
