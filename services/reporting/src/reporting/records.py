"""Slim records of the compacted topics, decoded straight from the wire with msgspec.

Reporting holds the latest registration and status of every point (100,000 and more), so it
keeps only the fields it reads, in slotted structs the garbage collector does not track,
instead of full `contracts.events` models: a fifth of the memory and of the decoding time.
Fields reporting does not read are skipped unread, as a reader of a newer schema would.

The event type, schema version, types, time zones and numeric bounds are checked as the
contract states them, so a record that is not a registration or a status is refused (and
parked on the dead-letter topic). The code patterns and name lengths are not: the producers
validated them with the contract's own models, and these checks were half of the decoding
time of a rebuild.
"""

from datetime import datetime
from typing import Annotated, Literal, TypeVar

import msgspec

from contracts.codec import ContractError, check_size
from contracts.events import Channel, Level, PointState

Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
Instant = Annotated[datetime, msgspec.Meta(tz=True)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
R = TypeVar("R")


class PointRecord(msgspec.Struct, gc=False, tag_field="event_type", tag="registry.point"):
    """What reporting reads of a `contracts.events.PointRegistration`."""

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
    schema_version: Literal[1] = 1


class StatusRecord(msgspec.Struct, gc=False, tag_field="event_type", tag="attendance.point_status"):
    """What reporting reads of a `contracts.events.PointStatus` (all of it but the envelope)."""

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
    schema_version: Literal[1] = 1


_POINTS = msgspec.json.Decoder(PointRecord)
_STATUSES = msgspec.json.Decoder(StatusRecord)


def decode_point(data: bytes | None) -> PointRecord:
    """The record in `data`, or a `ContractError` worded like `contracts.codec.decode`'s."""
    return _decoded(_POINTS, "PointRegistration", data)


def decode_status(data: bytes | None) -> StatusRecord:
    return _decoded(_STATUSES, "PointStatus", data)


def _decoded(decoder: msgspec.json.Decoder[R], contract: str, data: bytes | None) -> R:
    if data is None:
        raise ContractError(f"empty record where a {contract} was expected")
    check_size(data, contract)
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise ContractError(f"not a valid {contract}: {error}") from None
