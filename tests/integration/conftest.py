"""Fixtures of the integration tests: the registry's database, migrated, on SQLite and on
PostgreSQL (`database_url`)."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from registration.migrate import upgrade
from servicekit.database import make_engine


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()
