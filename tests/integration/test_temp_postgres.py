"""The per-test databases work on both backends, and the PostgreSQL one is a real server."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from devstack.postgres import TempPostgres

pytestmark = pytest.mark.integration

PLACE = "Xã Đông Tiến"


def test_vietnamese_text_round_trips(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        places = sa.Table(
            "places",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(200), nullable=False),
        )
        with engine.begin() as connection:
            places.create(connection)
            connection.execute(places.insert().values(name=PLACE))
        with engine.connect() as connection:
            assert connection.execute(sa.select(places.c.name)).scalar_one() == PLACE
    finally:
        engine.dispose()


def test_the_server_is_postgresql_13_or_newer(postgres: TempPostgres) -> None:
    with postgres.connect() as connection:
        row = connection.execute("SHOW server_version_num").fetchone()
    assert row is not None
    assert int(row[0]) >= 130000
