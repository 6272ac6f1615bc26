"""The processor's msgspec records read and write exactly what the pydantic contracts do."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attendance.domain import Track
from attendance.encoding import heartbeat_of, heartbeat_record, restored, snapshot, status
from contracts.codec import ContractError, decode, encode
from contracts.events import Heartbeat, LinkQuality, PointState, PointStatus

NOW = datetime(2026, 11, 23, 8, 0, 0, 250_000, tzinfo=UTC)
BEAT = Heartbeat(
    point_code="P1", session_code="S1", seq=3, sent_at=NOW, received_at=NOW, learners=12
)
GOOD = encode(BEAT)


def mutated(old: bytes, new: bytes) -> bytes:
    assert old in GOOD
    return GOOD.replace(old, new)


@pytest.mark.parametrize(
    "data",
    [
        GOOD,
        GOOD[:-1] + b',"from_the_future":{"x":1}}',
        mutated(b'"seq":3', b'"seq":"3"'),
        mutated(b'"leaving":false', b'"leaving":true'),
        mutated(b'"link":null', b'"link":{"rtt_ms":20.5,"packet_loss_pct":1}'),
        mutated(b'"event_type":"attendance.heartbeat",', b""),
        None,
        b"",
        b"not json",
        b"[1, 2]",
        GOOD[:20],
        mutated(b'"schema_version":1', b'"schema_version":2'),
        mutated(b"attendance.heartbeat", b"registry.point"),
        mutated(b'"learners":12', b'"learners":-1'),
        mutated(b'"learners":12', b'"learners":1000001'),
        mutated(b'"seq":3', b'"seq":-1'),
        mutated(b'"point_code":"P1"', b'"point_code":"P 1"'),
        mutated(b'"session_code":"S1"', b'"session_code":""'),
        mutated(b'"point_code":"P1"', b'"point_code":"P1\\n"'),
        mutated(b'"point_code":"P1"', b'"point_code":"' + b"P" * 65 + b'"'),
        GOOD.replace(b"250000Z", b"250000"),  # a moment without its zone
        GOOD.replace(b"250000Z", b"250000+07:00"),
        mutated(b'"learners":12,', b""),
        mutated(b'"link":null', b'"link":{"packet_loss_pct":101}'),
    ],
)
def test_heartbeats_are_accepted_and_refused_as_the_contract_does(data: bytes | None) -> None:
    try:
        expected = decode(Heartbeat, data)
    except ContractError:
        with pytest.raises(ContractError):
            heartbeat_of(data)
        return
    key, beat = heartbeat_of(data)
    assert key == (expected.session_code, expected.point_code)
    assert beat.seq == expected.seq and beat.learners == expected.learners
    assert beat.received_at == expected.received_at.timestamp()
    assert beat.leaving == expected.leaving


seconds = st.floats(min_value=1.6e9, max_value=2.0e9)
counts = st.integers(min_value=0, max_value=1_000_000)
tracks = st.builds(
    Track,
    state=st.sampled_from(list(PointState)),
    seq=st.integers(min_value=-1, max_value=2**40),
    learners=counts,
    last_seen=st.none() | seconds,
    since=seconds,
    reconnects=st.integers(min_value=0, max_value=10_000),
    first_seen=st.none() | seconds,
    present_seconds=st.floats(min_value=0, max_value=1e6),
    learner_seconds=st.floats(min_value=0, max_value=1e12),
    min_learners=st.none() | counts,
    max_learners=st.none() | counts,
    count_varied=st.booleans(),
    flags=st.frozensets(st.sampled_from(["over_capacity", "jump", "frozen"])),
    silent_since=st.none() | seconds,
)


@given(tracks)
def test_a_snapshot_restores_the_same_track(track: Track) -> None:
    assert restored(snapshot("S1", "P1", track)) == (("S1", "P1"), track)


@given(tracks)
def test_statuses_are_the_contracts_point_status(track: Track) -> None:
    data = status("S1", "P1", track)
    parsed = decode(PointStatus, data)
    assert parsed.state is track.state and parsed.learners == track.learners
    assert parsed.since.timestamp() == pytest.approx(track.since, abs=1e-6)
    assert parsed.flags == tuple(sorted(track.flags))
    # Field for field and in the contract's order: what pydantic would have written.
    assert list(json.loads(data)) == list(parsed.model_dump())


@pytest.mark.parametrize(
    "beat",
    [
        BEAT,
        BEAT.model_copy(
            update={
                "sent_at": datetime(2026, 11, 23, 15, 0, tzinfo=timezone(timedelta(hours=7))),
                "link": LinkQuality(bitrate_kbps=1500.5, rtt_ms=20),
                "leaving": True,
            }
        ),
    ],
)
def test_accepted_heartbeats_are_written_as_the_contract_writes_them(beat: Heartbeat) -> None:
    link = None if beat.link is None else beat.link.model_dump()
    data = heartbeat_record(
        beat.point_code,
        beat.session_code,
        beat.seq,
        beat.sent_at,
        beat.received_at,
        beat.learners,
        link,
        beat.leaving,
    )
    assert data == encode(beat)
