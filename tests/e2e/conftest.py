"""Fixtures of the end-to-end tests that need more than the shared stack."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.kafka import Broker, default_cache_dir
from servicekit.provision import ensure_topics


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test's own, for tests that stop it: the shared one stays up."""
    with Broker.start(default_cache_dir(), tmp_path / "kafka") as broker:
        asyncio.run(ensure_topics(broker.bootstrap))
        yield broker
