"""Settings of the registration service, from `REGISTRATION_*` environment variables."""

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from servicekit.settings import (
    ServiceSettings,
    check_production_database,
    check_production_secret,
)

DEVELOPMENT_OPERATOR_TOKEN = "dev-operator-token"


# A point's own page (attendance's /point), as the rooms reach it: the link on its token sheet.
POINT_PAGE = "http://127.0.0.1:8002/point"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRATION_", frozen=True, extra="ignore")

    database_url: str = "sqlite:///registration.db"
    operator_token: SecretStr = SecretStr(DEVELOPMENT_OPERATOR_TOKEN)
    # How often the outbox relay looks for committed changes not yet on Kafka.
    relay_poll_seconds: float = 0.1
    relay_batch: int = 500
    # A CSV of 100,000 points is about 10 MB.
    max_import_bytes: int = 32 * 1024 * 1024
    point_page_url: str = POINT_PAGE

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> "Settings":
        if self.production:
            check_production_secret(
                self.operator_token.get_secret_value(),
                DEVELOPMENT_OPERATOR_TOKEN,
                "REGISTRATION_OPERATOR_TOKEN",
            )
            check_production_database(self.database_url, "REGISTRATION_DATABASE_URL")
        return self
