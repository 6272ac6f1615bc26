"""Payloads of every topic. Each carries its event type and schema version; readers ignore
fields they do not know, so a newer writer may add fields without breaking older readers."""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field

from contracts.accounts import Role

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
Code = Annotated[str, Field(pattern=CODE_PATTERN)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]
Total = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(gt=0, le=24 * 3600)]


class Channel(StrEnum):
    VIDEO_BRIDGE = "video_bridge"
    TEAMS = "teams"
    OTHER = "other"


class Level(StrEnum):
    CENTRAL = "central"
    PROVINCE = "province"
    COMMUNE = "commune"
    WARD = "ward"
    SPECIAL_ZONE = "special_zone"
    OTHER = "other"


class PointState(StrEnum):
    NEVER_CONNECTED = "never_connected"
    CONNECTED = "connected"
    LATE = "late"
    DISCONNECTED = "disconnected"


class Event(BaseModel):
    """Base of every payload: immutable, and tolerant of fields added by newer writers."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class PointRegistration(Event):
    """Latest registration of a connection point (registry.points; a tombstone removes it)."""

    event_type: Literal["registry.point"] = "registry.point"
    schema_version: Literal[1] = 1
    code: Code
    name: str = Field(min_length=1, max_length=200)
    level: Level
    province_code: str | None = None
    unit_code: str | None = None
    channel: Channel
    host: str = ""
    phone: str = ""
    expected_learners: Count = 0
    courses: tuple[Code, ...] = ()
    active: bool = True
    # sha256 of the point's bearer token: lets attendance authenticate without calling registration.
    token_hash: str | None = None
    # Provinces whose points' heartbeats this point may forward (a relay gateway); usually none.
    relays_for: tuple[str, ...] = ()


class AccountGrant(Event):
    """A named account of the desk and what it may do (registry.accounts; a tombstone, or no
    token hash, when revoked), so every service checks a token without calling registration."""

    event_type: Literal["registry.account"] = "registry.account"
    schema_version: Literal[1] = 1
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")
    role: Role
    # A coordinator's provinces; none for the other roles, who see every province.
    provinces: tuple[str, ...] = ()
    # sha256 of the account's bearer token; None once revoked.
    token_hash: str | None = None


class Response(StrEnum):
    """What a person of the desk does about a point or an incident that went wrong."""

    ACKNOWLEDGE = "acknowledge"  # seen: someone is on it
    ASSIGN = "assign"  # given to a named account to follow up
    ANNOTATE = "annotate"  # a note: "called the focal person, power cut, back at 10:30"
    RESOLVE = "resolve"  # dealt with: the next drop starts afresh


# A point by its code, or an incident by its group.
SUBJECT_PATTERN = (
    r"^(point:[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}|(province|channel):[A-Za-z0-9_-]{1,32})$"
)


class DeskAction(Event):
    """One action of the desk on what went wrong in a session (desk.actions, keyed by its id):
    on a point (`subject` its code) or an incident (`subject` "province:PP" or "channel:C")."""

    event_type: Literal["desk.action"] = "desk.action"
    schema_version: Literal[1] = 1
    id: str = Field(pattern=r"^[0-9a-f]{32}$")
    session_code: Code
    subject: str = Field(pattern=SUBJECT_PATTERN)
    response: Response
    by: str = Field(min_length=1, max_length=64)  # the account that acted
    at: AwareDatetime
    assignee: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=500)


class SessionSchedule(Event):
    """A live broadcast of a course and its liveness settings (registry.sessions)."""

    event_type: Literal["registry.session"] = "registry.session"
    schema_version: Literal[1] = 1
    code: Code
    course_code: Code
    title: str = ""
    topic: str = ""
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    heartbeat_interval_s: Seconds = 5.0
    late_after_s: Seconds = 12.0
    disconnected_after_s: Seconds = 30.0


class LinkQuality(Event):
    bitrate_kbps: Annotated[float, Field(ge=0)] | None = None
    packet_loss_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    rtt_ms: Annotated[float, Field(ge=0)] | None = None


class Heartbeat(Event):
    """One heartbeat of a point, as accepted by the ingest (attendance.heartbeats)."""

    event_type: Literal["attendance.heartbeat"] = "attendance.heartbeat"
    schema_version: Literal[1] = 1
    point_code: Code
    session_code: Code
    seq: Annotated[int, Field(ge=0)]
    sent_at: AwareDatetime
    received_at: AwareDatetime
    learners: Count
    link: LinkQuality | None = None
    leaving: bool = False


class IngestWatermark(Event):
    """An ingest instance's proof that it was accepting heartbeats (attendance.heartbeats, sent
    to every partition a few times a second, keyed `~<ingest>`).

    Every heartbeat that instance received before `accepting_at` and wrote to this partition
    comes before the watermark in it: a processor that has read it knows all of them. `final`
    says the instance stops (it will write nothing more)."""

    event_type: Literal["attendance.watermark"] = "attendance.watermark"
    schema_version: Literal[1] = 1
    ingest: Code
    accepting_at: AwareDatetime
    final: bool = False


class MonitorClock(Event):
    """How far the processor has judged one heartbeat partition (attendance.monitor-clock,
    compacted, keyed by partition): its statuses are true as of `judged_until`. While the
    monitor cannot accept heartbeats it stops, and the desk sees "unknown" rather than drops."""

    event_type: Literal["attendance.monitor_clock"] = "attendance.monitor_clock"
    schema_version: Literal[1] = 1
    partition: Annotated[int, Field(ge=0)]
    judged_until: AwareDatetime


class PointStatus(Event):
    """Latest connection state of a point in a session (attendance.point-status)."""

    event_type: Literal["attendance.point_status"] = "attendance.point_status"
    schema_version: Literal[1] = 1
    session_code: Code
    point_code: Code
    state: PointState
    learners: Count
    since: AwareDatetime
    last_heartbeat_at: AwareDatetime | None = None
    reconnects: Count = 0
    # Implausible learner counts, flagged rather than rejected (see attendance.quality).
    flags: tuple[str, ...] = ()
    # Attendance so far, accrued up to `last_heartbeat_at`: while the point stays present,
    # a reader extends it to any later moment (state and learners are constant in between).
    first_connected_at: AwareDatetime | None = None
    present_seconds: Annotated[float, Field(ge=0)] = 0.0
    learner_seconds: Annotated[float, Field(ge=0)] = 0.0
    min_learners: Count | None = None
    max_learners: Count | None = None


class Counts(Event):
    """Points by state and learners, for a session or one slice of it."""

    # Sums over up to 100,000 points and 3,000,000 learners: no per-point cap here.
    registered: Total
    connected: Total
    late: Total
    disconnected: Total
    never_connected: Total
    learners_present: Total
    learners_expected: Total

    @computed_field  # type: ignore[prop-decorator]
    @property
    def connected_share(self) -> float:
        """Points connected of registered, 0..1."""
        return round(self.connected / self.registered, 4) if self.registered else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def attendance_rate(self) -> float:
        """Learners present of expected, 0..1 (above 1 when rooms are fuller than planned)."""
        if not self.learners_expected:
            return 0.0
        return round(self.learners_present / self.learners_expected, 4)


class Totals(Counts):
    """Live totals of one session (reporting.totals, the REST API and the SSE stream)."""

    event_type: Literal["reporting.totals"] = "reporting.totals"
    schema_version: Literal[1] = 1
    session_code: Code
    as_of: AwareDatetime
    # The states are true as of this moment: the processor judges silence only as far as the
    # ingest proves it was accepting. `unknown` while that lags behind (Kafka, the ingest or
    # the processor away): the desk then knows it does not know, and no point is dropped.
    judged_until: AwareDatetime | None = None
    unknown: bool = False
    # The last totals published before this reporting instance started, served (as of
    # `as_of`) while it reads the tables again: figures the desk saw, not yet current ones.
    stale: bool = False
    peak_connected: Total = 0
    peak_connected_at: AwareDatetime | None = None
    peak_learners: Total = 0
    peak_learners_at: AwareDatetime | None = None
    by_province: dict[str, Counts] = Field(default_factory=dict)
    by_channel: dict[str, Counts] = Field(default_factory=dict)
    by_level: dict[str, Counts] = Field(default_factory=dict)
