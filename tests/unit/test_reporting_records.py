"""Reporting's slim records read what the contract's models write, and refuse what is not one."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.codec import ContractError, encode
from contracts.events import Channel, Level, PointRegistration, PointState, PointStatus
from reporting.records import decode_point, decode_status

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)

registrations = st.builds(
    PointRegistration,
    code=st.from_regex(r"[A-Z][0-9]{1,6}", fullmatch=True),
    name=st.text(min_size=1, max_size=40),
    level=st.sampled_from(Level),
    channel=st.sampled_from(Channel),
    province_code=st.none() | st.sampled_from(["01", "79"]),
    host=st.text(max_size=20),
    phone=st.text(max_size=12),
    expected_learners=st.integers(0, 1_000_000),
    courses=st.lists(st.sampled_from(["C1", "C2"]), max_size=2).map(tuple),
    active=st.booleans(),
    token_hash=st.none() | st.just("ab" * 32),
)
instants = st.none() | st.integers(0, 10**6).map(lambda s: NOW + timedelta(seconds=s))
statuses = st.builds(
    PointStatus,
    session_code=st.just("S1"),
    point_code=st.from_regex(r"[A-Z][0-9]{1,6}", fullmatch=True),
    state=st.sampled_from(PointState),
    learners=st.integers(0, 1_000_000),
    since=st.just(NOW),
    last_heartbeat_at=instants,
    reconnects=st.integers(0, 100),
    flags=st.lists(st.sampled_from(["jump", "frozen"]), max_size=2).map(tuple),
    first_connected_at=instants,
    present_seconds=st.floats(0, 1e6),
    learner_seconds=st.floats(0, 1e9),
    min_learners=st.none() | st.integers(0, 100),
    max_learners=st.none() | st.integers(0, 100),
)


@given(registrations)
def test_a_registration_reads_back_with_every_field_reporting_uses(
    point: PointRegistration,
) -> None:
    record = decode_point(encode(point))
    for name in type(record).__struct_fields__:
        assert getattr(record, name) == getattr(point, name), name


@given(statuses)
def test_a_status_reads_back_whole(status: PointStatus) -> None:
    record = decode_status(encode(status))
    for name in type(record).__struct_fields__:
        assert getattr(record, name) == getattr(status, name), name


@pytest.mark.parametrize(
    "data",
    [
        b"{not json",
        b'{"event_type":"wrong","code":"P1"}',
        b'{"event_type":"attendance.point_status","session_code":"S1","point_code":"P1",'
        b'"state":"connected","learners":2000000,"since":"2026-11-23T01:00:00Z"}',
        b'{"event_type":"attendance.point_status","session_code":"S1","point_code":"P1",'
        b'"state":"connected","learners":2,"since":"2026-11-23T01:00:00"}',
        b'{"event_type":"attendance.point_status","schema_version":2,"session_code":"S1",'
        b'"point_code":"P1","state":"connected","learners":2,"since":"2026-11-23T01:00:00Z"}',
        None,
    ],
    ids=["not json", "another event", "over the count", "naive time", "newer schema", "empty"],
)
def test_what_is_not_a_status_is_refused_like_the_contract_does(data: bytes | None) -> None:
    with pytest.raises(ContractError, match="PointStatus"):
        decode_status(data)
