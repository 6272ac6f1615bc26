"""Settings every service reads the same way; each service subclasses with its own prefix."""

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# `openssl rand -hex 32` gives 64; 12 characters is the least a production secret may have.
MIN_SECRET_LENGTH = 12


class ServiceSettings(BaseSettings):
    """Shared settings. `KAFKA_BOOTSTRAP_SERVERS` and `ENVIRONMENT` are not prefixed: one
    deployment shares them between all services."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    environment: Literal["development", "production"] = Field(
        "development", validation_alias="ENVIRONMENT"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias="LOG_LEVEL"
    )
    log_format: Literal["plain", "json"] = Field("plain", validation_alias="LOG_FORMAT")

    @property
    def production(self) -> bool:
        return self.environment == "production"


def check_production_database(url: str, variable: str) -> None:
    """A production database is a server behind a password: SQLite (the development default)
    keeps the data on one machine's disk, and a server without a password takes anyone."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise ValueError(f"{variable} is not a database URL: {error}") from error
    if parsed.get_backend_name() == "sqlite":
        raise ValueError(f"{variable} must name a database server in production, not SQLite")
    if not parsed.password:
        raise ValueError(f"{variable} must carry the database password in production")


def check_production_secret(secret: str, development_default: str, variable: str) -> None:
    """A secret set for this deployment: not the development default, and long enough that
    guessing it is out of reach."""
    if secret == development_default or len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"{variable} must be set in production, at least {MIN_SECRET_LENGTH} characters"
            " and not the development default"
        )
