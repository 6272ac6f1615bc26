"""The contracts of `contracts.events` that are read or written once per heartbeat or per point,
as msgspec structs: the same JSON on the wire at a fraction of pydantic's cost per record.

Each struct mirrors its model field for field (names, order, defaults, types, time zones and
numeric bounds; `tests/unit/test_contracts_wire.py` holds each to its model), with two
differences. Code patterns and name lengths are not checked here: readers that need them check
the codes themselves (`is_code`), and the producers validated names with the models. And
`PointRecord` keeps only what reporting reads of a registration, which holds one per point
(100,000 and more): fields a struct does not name are skipped unread, as a reader of a newer
schema would. The structs are slotted and untracked by the garbage collector (`gc=False`);
the two reporting keeps are not frozen, so it can share their strings (`sys.intern`).
"""

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal, TypeVar

import msgspec

from contracts.codec import ContractError, check_size
from contracts.events import (
    CODE_PATTERN,
    Channel,
    Heartbeat,
    IngestWatermark,
    Level,
    PointRegistration,
    PointState,
    PointStatus,
)

# The contract's pattern as a whole-string match: msgspec's `pattern` searches, and Python's
# `$` lets a trailing newline through, which pydantic refuses.
is_code = re.compile(CODE_PATTERN).fullmatch
Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Instant = Annotated[datetime, msgspec.Meta(tz=True)]
S = TypeVar("S")


class LinkQualityRecord(msgspec.Struct, frozen=True, gc=False):
    bitrate_kbps: NonNegative | None = None
    packet_loss_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    rtt_ms: NonNegative | None = None


class HeartbeatRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """`contracts.events.Heartbeat`."""

    event_type: Literal["attendance.heartbeat"] = "attendance.heartbeat"
    schema_version: Literal[1] = 1
    point_code: str
    session_code: str
    seq: Annotated[int, msgspec.Meta(ge=0)]
    sent_at: Instant
    received_at: Instant
    learners: Count
    link: LinkQualityRecord | None = None
    leaving: bool = False


class WatermarkRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """`contracts.events.IngestWatermark`."""

    event_type: Literal["attendance.watermark"] = "attendance.watermark"
    schema_version: Literal[1] = 1
    ingest: str
    accepting_at: Instant
    final: bool = False


class MonitorClockRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """`contracts.events.MonitorClock`."""

    event_type: Literal["attendance.monitor_clock"] = "attendance.monitor_clock"
    schema_version: Literal[1] = 1
    partition: Annotated[int, msgspec.Meta(ge=0)]
    judged_until: Instant


class PointStatusRecord(msgspec.Struct, kw_only=True, gc=False):
    """`contracts.events.PointStatus`."""

    event_type: Literal["attendance.point_status"] = "attendance.point_status"
    schema_version: Literal[1] = 1
    session_code: str
    point_code: str
    state: PointState
    learners: Count
    since: Instant
    last_heartbeat_at: Instant | None = None
    reconnects: Count = 0
    flags: tuple[str, ...] = ()
    first_connected_at: Instant | None = None
    present_seconds: NonNegative = 0.0
    learner_seconds: NonNegative = 0.0
    min_learners: Count | None = None
    max_learners: Count | None = None


class PointRecord(msgspec.Struct, kw_only=True, gc=False):
    """What reporting reads of a `contracts.events.PointRegistration`."""

    event_type: Literal["registry.point"] = "registry.point"
    schema_version: Literal[1] = 1
    code: str
    name: str
    level: Level
    channel: Channel
    province_code: str | None = None
    host: str = ""
    phone: str = ""
    expected_learners: Count = 0
    courses: tuple[str, ...] = ()
    active: bool = True


def reader(struct: type[S], name: str) -> Callable[[bytes | None], S]:
    """Reads `struct` records, refusing what the contract `name` refuses in the words of
    `contracts.codec.decode`. Lax like pydantic's JSON mode ("12" for 12, a number for a
    moment)."""
    decoder = msgspec.json.Decoder(struct, strict=False)

    def read(data: bytes | None) -> S:
        if data is None:
            raise ContractError(f"empty record where a {name} was expected")
        check_size(data, name)
        try:
            return decoder.decode(data)
        except msgspec.DecodeError as error:  # invalid JSON, or JSON that breaks the contract
            raise ContractError(f"not a valid {name}: {error}") from None

    return read


read_heartbeat = reader(HeartbeatRecord, Heartbeat.__name__)
read_watermark = reader(WatermarkRecord, IngestWatermark.__name__)
read_status = reader(PointStatusRecord, PointStatus.__name__)
read_point = reader(PointRecord, PointRegistration.__name__)
# Plain values (dicts, lists, numbers, strings, datetimes, the structs above) as JSON.
encode_json = msgspec.json.Encoder().encode
