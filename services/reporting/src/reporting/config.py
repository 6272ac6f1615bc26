"""Settings of the reporting service, from `REPORTING_*` environment variables."""

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from servicekit.settings import (
    ServiceSettings,
    check_production_database,
    check_production_secret,
)


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REPORTING_", frozen=True, extra="ignore")

    database_url: str = "sqlite:///reporting.db"
    # Set it to require `Authorization: Bearer <token>` (or `?access_token=`) on read-only views.
    viewer_token: str | None = None
    snapshot_seconds: float = 1.0
    timeline_seconds: float = 10.0
    # The states are shown as unknown once the processor's clock lags this far behind (it
    # normally trails by about a second).
    unknown_after_seconds: float = Field(5.0, gt=0)
    # Where incidents are posted as they open and close (a JSON list of URLs), each post signed
    # with the secret (reporting.webhooks).
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str | None = None

    @model_validator(mode="after")
    def _a_real_database_in_production(self) -> "Settings":
        if self.production:
            check_production_database(self.database_url, "REPORTING_DATABASE_URL")
        if self.webhook_urls and not self.webhook_secret:
            raise ValueError("REPORTING_WEBHOOK_SECRET must be set: every webhook post is signed")
        if self.webhook_urls and self.production:
            check_production_secret(self.webhook_secret or "", "", "REPORTING_WEBHOOK_SECRET")
        return self
