"""Alembic environment: the registry's tables as SQLModel declares them."""

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

import registration.accounts
import registration.store  # noqa: F401


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    from servicekit.database import make_engine

    with make_engine(context.config.get_main_option("sqlalchemy.url") or "").connect() as fresh:
        run_migrations(fresh)
else:
    run_migrations(connection)
