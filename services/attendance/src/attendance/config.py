"""Settings of the attendance service, from `ATTENDANCE_*` environment variables."""

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from servicekit.settings import ServiceSettings, check_production_database


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ATTENDANCE_", frozen=True, extra="ignore")

    # The two halves can run in one process (the default) or apart, each scaled on its own.
    ingest: bool = True
    processor: bool = True
    consumer_group: str = "attendance-processor"
    # How often the ingest proves, in every heartbeat partition, that it is accepting: the
    # processor judges silence only up to there (its detection waits about this much).
    watermark_seconds: float = Field(0.25, gt=0)
    # How often the processor commits a partition's decisions with its offset (one Kafka
    # transaction each): what a reader waits at most, beyond the work itself.
    commit_seconds: float = Field(0.25, gt=0)
    # How often a commit also checkpoints the tracks changed since the last (to the changelog):
    # a partition taken over replays at most this much of heartbeats.
    checkpoint_seconds: float = Field(10.0, ge=0)
    # The ingest accepting nothing for longer than this is the monitor's outage, not the
    # points' silence (a few watermarks missed).
    outage_after_seconds: float = Field(1.0, gt=0)
    # An ingest instance whose watermarks fall this far behind the others' has stopped, and is
    # no longer waited for. Above the publish timeout: a heartbeat delayed that long was refused.
    ingest_gone_after_seconds: float = Field(10.0, gt=0)
    # Heartbeats taken at once. Each batch waits for Kafka twice (its outputs acknowledged, then
    # its offsets committed), so a backlog drains faster in big ones, and a point's beats within
    # one batch write one changelog record. Caught up, batches are as small as what arrived.
    max_batch: int = 20_000
    database_url: str = "sqlite:///attendance.db"
    # How often the attendance records of the tracks changed since are written: each point's
    # row once per flush at most (a point beats twice in 10 s), and always at a stop.
    records_flush_seconds: float = 10.0
    # Longest a heartbeat request waits for Kafka before answering 503.
    publish_timeout_seconds: float = 5.0
    # Heartbeats each point may send: a burst, then a steady rate. A point beats every 5 s by
    # default, so 1/s leaves 5x headroom while a flooding point is held to it (429).
    rate_limit_burst: float = Field(10.0, ge=1)
    rate_limit_per_second: float = Field(1.0, gt=0)
    # Largest bodies accepted (413 beyond): one heartbeat is a few hundred bytes, and a relay
    # gateway's batch holds up to 1,000 of them.
    max_heartbeat_bytes: int = Field(4 * 1024, gt=0)
    max_batch_bytes: int = Field(512 * 1024, gt=0)

    @model_validator(mode="after")
    def _gone_only_after_refused(self) -> "Settings":
        if self.ingest_gone_after_seconds <= self.publish_timeout_seconds:
            raise ValueError(
                "ATTENDANCE_INGEST_GONE_AFTER_SECONDS must exceed"
                " ATTENDANCE_PUBLISH_TIMEOUT_SECONDS: an instance is given up only once its"
                " delayed heartbeats were refused"
            )
        return self

    @model_validator(mode="after")
    def _a_real_database_in_production(self) -> "Settings":
        if self.production:
            check_production_database(self.database_url, "ATTENDANCE_DATABASE_URL")
        return self
