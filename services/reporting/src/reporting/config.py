"""Settings of the reporting service, from `REPORTING_*` environment variables."""

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from servicekit.settings import ServiceSettings, check_production_database


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

    @model_validator(mode="after")
    def _a_real_database_in_production(self) -> "Settings":
        if self.production:
            check_production_database(self.database_url, "REPORTING_DATABASE_URL")
        return self
