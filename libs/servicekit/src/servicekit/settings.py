"""Settings every service reads the same way; each service subclasses with its own prefix."""

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
