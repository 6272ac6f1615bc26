"""Each msgspec mirror of `contracts.wire` against the pydantic model it mirrors: what one
writes the other reads back the same, in the same field order, and a record with any one field
changed to any value is refused by the mirror exactly when the model refuses it (but for the
code patterns and name lengths, which the mirrors leave unchecked: see `contracts.wire`)."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.codec import ContractError, encode
from contracts.events import (
    Channel,
    Event,
    Heartbeat,
    IngestWatermark,
    Level,
    LinkQuality,
    MonitorClock,
    PointRegistration,
    PointState,
    PointStatus,
)
from contracts.wire import (
    HeartbeatRecord,
    MonitorClockRecord,
    PointRecord,
    PointStatusRecord,
    WatermarkRecord,
    encode_json,
    reader,
)

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
codes = st.from_regex(r"[A-Z][0-9]{1,6}", fullmatch=True)
counts = st.integers(0, 1_000_000)
instants = st.integers(0, 10**6).map(lambda s: NOW + timedelta(seconds=s))
non_negative = st.floats(0, 1e9)

MODELS: dict[type[Event], tuple[type[msgspec.Struct], Any]] = {
    Heartbeat: (
        HeartbeatRecord,
        st.builds(
            Heartbeat,
            point_code=codes,
            session_code=codes,
            seq=st.integers(0, 2**40),
            sent_at=instants,
            received_at=instants,
            learners=counts,
            link=st.none()
            | st.builds(
                LinkQuality,
                bitrate_kbps=st.none() | non_negative,
                packet_loss_pct=st.none() | st.floats(0, 100),
                rtt_ms=st.none() | non_negative,
            ),
            leaving=st.booleans(),
        ),
    ),
    IngestWatermark: (
        WatermarkRecord,
        st.builds(IngestWatermark, ingest=codes, accepting_at=instants, final=st.booleans()),
    ),
    MonitorClock: (
        MonitorClockRecord,
        st.builds(MonitorClock, partition=st.integers(0, 63), judged_until=instants),
    ),
    PointStatus: (
        PointStatusRecord,
        st.builds(
            PointStatus,
            session_code=codes,
            point_code=codes,
            state=st.sampled_from(PointState),
            learners=counts,
            since=instants,
            last_heartbeat_at=st.none() | instants,
            reconnects=st.integers(0, 100),
            flags=st.lists(st.sampled_from(["jump", "frozen"]), max_size=2).map(tuple),
            first_connected_at=st.none() | instants,
            present_seconds=non_negative,
            learner_seconds=non_negative,
            min_learners=st.none() | counts,
            max_learners=st.none() | counts,
        ),
    ),
    PointRegistration: (
        PointRecord,
        st.builds(
            PointRegistration,
            code=codes,
            name=st.text(min_size=1, max_size=40),
            level=st.sampled_from(Level),
            channel=st.sampled_from(Channel),
            province_code=st.none() | st.sampled_from(["01", "79"]),
            host=st.text(max_size=20),
            phone=st.text(max_size=12),
            expected_learners=counts,
            courses=st.lists(codes, max_size=2).map(tuple),
            active=st.booleans(),
            token_hash=st.none() | st.just("ab" * 32),
        ),
    ),
}
# Whole mirrors, written by this system's producers; `PointRecord` only reads.
WRITTEN = [Heartbeat, IngestWatermark, MonitorClock, PointStatus]
REMOVED = object()
# Anything JSON may hold where a field is.
VALUES: list[Any] = [
    -1,
    0,
    3,
    1_000_001,
    1e20,
    2.5,
    -0.5,
    101.0,
    "",
    "P1",
    "12",
    "1.5",
    "true",
    "connected",
    "commune",
    "2026-11-23T01:00:00Z",
    "2026-11-23T01:00:00",
    "2026-11-23T08:00:00+07:00",
    True,
    False,
    None,
    [],
    ["C1"],
    {},
    {"rtt_ms": 20},
    {"rtt_ms": -1},
]


# What the mirrors leave unchecked (see `contracts.wire`).
UNCHECKED = {"string_pattern_mismatch", "string_too_short", "string_too_long"}


def model_refusals(model: type[Event], data: bytes) -> set[str]:
    """The kinds of error the model finds in `data` (none if it reads it)."""
    try:
        model.model_validate_json(data)
    except ValidationError as error:
        return {problem["type"] for problem in error.errors()}
    return set()


def mirror_of(model: type[Event]) -> Any:
    return reader(MODELS[model][0], model.__name__)


@pytest.mark.parametrize("model", list(MODELS), ids=lambda m: m.__name__)
@given(data=st.data())
def test_what_the_model_writes_the_mirror_reads_the_same(model: type[Event], data: Any) -> None:
    event = data.draw(MODELS[model][1])
    record = mirror_of(model)(encode(event))
    for name in type(record).__struct_fields__:
        mirrored = getattr(record, name)
        if isinstance(mirrored, msgspec.Struct):
            mirrored = msgspec.structs.asdict(mirrored)
        original = getattr(event, name)
        assert mirrored == (original.model_dump() if isinstance(original, Event) else original)


@pytest.mark.parametrize("model", WRITTEN, ids=lambda m: m.__name__)
@given(data=st.data())
def test_what_the_mirror_writes_the_model_reads_the_same(model: type[Event], data: Any) -> None:
    event = data.draw(MODELS[model][1])
    record = mirror_of(model)(encode(event))
    written = encode_json(record)
    assert model.model_validate_json(written) == event
    assert list(json.loads(written)) == list(event.model_dump())  # the contract's field order


@pytest.mark.parametrize("model", list(MODELS), ids=lambda m: m.__name__)
@settings(max_examples=10)
@given(data=st.data())
def test_a_field_changed_is_refused_exactly_when_the_model_refuses_it(
    model: type[Event], data: Any
) -> None:
    struct, events = MODELS[model]
    fields = json.loads(encode(data.draw(events)))
    read = mirror_of(model)
    for name in set(fields) & set(struct.__struct_fields__):
        for value in [REMOVED, *VALUES]:
            changed = {k: v for k, v in fields.items() if k != name}
            if value is not REMOVED:
                changed[name] = value
            record = json.dumps(changed).encode()
            refusals = model_refusals(model, record)
            if refusals and not refusals <= UNCHECKED:
                with pytest.raises(ContractError, match=f"not a valid {model.__name__}"):
                    read(record)
            elif not refusals and not (isinstance(value, bool) and _numeric(model, name)):
                read(record)


def _numeric(model: type[Event], name: str) -> bool:
    """Whether `name` holds a number: a bool there is the one thing a mirror refuses that its
    model reads (as 1 or 0), and no writer of the contracts writes one."""
    schema = model.model_json_schema()["properties"][name]
    kinds = {schema.get("type")} | {option.get("type") for option in schema.get("anyOf", [])}
    return bool(kinds & {"integer", "number"})


@pytest.mark.parametrize("model", list(MODELS), ids=lambda m: m.__name__)
@pytest.mark.parametrize("data", [None, b"", b"{not json", b"[1, 2]", b'{"x": 1}'], ids=repr)
def test_what_is_no_record_is_refused_like_the_contract_does(
    model: type[Event], data: bytes | None
) -> None:
    with pytest.raises(ContractError, match=model.__name__):
        mirror_of(model)(data)
