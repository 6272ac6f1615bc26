"""Settings of the attendance service, from `ATTENDANCE_*` environment variables."""

from pydantic_settings import SettingsConfigDict

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ATTENDANCE_", frozen=True, extra="ignore")

    consumer_group: str = "attendance-processor"
    # How often silence is turned into `late` and `disconnected`; bounds detection delay.
    tick_seconds: float = 0.2
    max_batch: int = 5000
    # Longest a heartbeat request waits for Kafka before answering 503.
    publish_timeout_seconds: float = 5.0
