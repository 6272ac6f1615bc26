"""The Kafka topics of the system (docs/architecture.md, "Topics") and the key each one uses.

`attendance.point-status` is keyed by session *and* point: a point's state belongs to a session
(docs/architecture.md), and keying by point alone would let compaction erase one session's
final states as soon as the same point joins the next session.
"""

from dataclasses import dataclass, field

DAY_MS = 24 * 60 * 60 * 1000


def dead_letter_name(topic: str) -> str:
    return f"{topic}.dlq"


@dataclass(frozen=True)
class Topic:
    """A topic with the settings it must be created with."""

    name: str
    partitions: int
    key: str
    compacted: bool = False
    retention_ms: int | None = None
    extra_config: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, str]:
        config = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        return config | self.extra_config

    @property
    def dead_letters(self) -> "Topic":
        """Where unreadable records of this topic are parked, with the error in headers."""
        return Topic(dead_letter_name(self.name), 1, key=self.key, retention_ms=14 * DAY_MS)


REGISTRY_POINTS = Topic("registry.points", 6, key="point code", compacted=True)
REGISTRY_SESSIONS = Topic("registry.sessions", 1, key="session code", compacted=True)
REGISTRY_ACCOUNTS = Topic("registry.accounts", 1, key="account name", compacted=True)
# Stamped by the broker when appended: a heartbeat that reached Kafka only after its ingest had
# answered 503 (the publish timed out) is told apart from one that was accepted.
HEARTBEATS = Topic(
    "attendance.heartbeats",
    12,
    key="point code (an ingest's watermarks: ~ingest)",
    retention_ms=DAY_MS,
    extra_config={"message.timestamp.type": "LogAppendTime"},
)
POINT_STATUS = Topic("attendance.point-status", 12, key="session code/point code", compacted=True)
# The processor's state, co-partitioned with the heartbeats it was built from (Kafka Streams'
# changelog pattern): an instance restores exactly the partitions it is given.
STATE_CHANGELOG = Topic(
    "attendance.state-changelog",
    HEARTBEATS.partitions,
    key="session code/point code",
    compacted=True,
)
MONITOR_CLOCK = Topic("attendance.monitor-clock", 1, key="heartbeat partition", compacted=True)
TOTALS = Topic("reporting.totals", 3, key="session code", compacted=True)
# Every action is kept (its own key): compaction removes none, and an instance that starts
# reads them all, so every desk sees the same.
DESK_ACTIONS = Topic("desk.actions", 1, key="action id", compacted=True)

SOURCE_TOPICS = (
    REGISTRY_POINTS,
    REGISTRY_SESSIONS,
    REGISTRY_ACCOUNTS,
    HEARTBEATS,
    POINT_STATUS,
    MONITOR_CLOCK,
    TOTALS,
    DESK_ACTIONS,
)
ALL_TOPICS = (*SOURCE_TOPICS, STATE_CHANGELOG, *(topic.dead_letters for topic in SOURCE_TOPICS))


def point_key(point_code: str) -> bytes:
    return point_code.encode()


WATERMARK_PREFIX = b"~"  # outside the code pattern: no point's key starts with it


def watermark_key(ingest: str) -> bytes:
    return WATERMARK_PREFIX + ingest.encode()


def clock_key(partition: int) -> bytes:
    return str(partition).encode()


def account_key(name: str) -> bytes:
    return name.encode()


def action_key(action_id: str) -> bytes:
    return action_id.encode()


def session_key(session_code: str) -> bytes:
    return session_code.encode()


def status_key(session_code: str, point_code: str) -> bytes:
    return f"{session_code}/{point_code}".encode()
