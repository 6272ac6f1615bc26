"""Bringing a database to the current schema with Alembic, from code or `registration-migrate`."""

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from registration.config import Settings
from servicekit.database import make_engine


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "registration:migrations")
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(engine: Engine) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def main() -> None:
    upgrade(make_engine(Settings().database_url))
