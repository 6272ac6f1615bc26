"""Every payload round-trips, newer writers' extra fields are ignored, anything else is refused."""

from datetime import UTC, datetime

import pytest

from contracts.codec import ContractError, decode, encode
from contracts.events import Heartbeat, PointRegistration
from contracts.registry import RegistryTable
from contracts.tokens import hash_token, new_token
from contracts.topics import ALL_TOPICS, HEARTBEATS, POINT_STATUS, REGISTRY_POINTS

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
BEAT = Heartbeat(
    point_code="P1", session_code="S1", seq=3, sent_at=NOW, received_at=NOW, learners=12
)


def test_round_trip_carries_type_and_version() -> None:
    data = encode(BEAT)
    assert b'"event_type":"attendance.heartbeat"' in data and b'"schema_version":1' in data
    assert decode(Heartbeat, data) == BEAT


def test_unknown_fields_are_ignored() -> None:
    assert decode(Heartbeat, encode(BEAT)[:-1] + b',"from_the_future":{"x":1}}') == BEAT


@pytest.mark.parametrize(
    "data",
    [
        None,
        b"",
        b"not json",
        b"[1, 2]",
        encode(BEAT)[:20],
        encode(BEAT).replace(b'"schema_version":1', b'"schema_version":2'),
        encode(BEAT).replace(b"attendance.heartbeat", b"registry.point"),
        encode(BEAT).replace(b'"learners":12', b'"learners":-1'),
        # Valid but for an unknown field of 100 KB: no writer of this system makes such a record.
        encode(BEAT)[:-1] + b',"padding":"' + b"x" * 100_000 + b'"}',
    ],
)
def test_anything_else_is_a_contract_error(data: bytes | None) -> None:
    with pytest.raises(ContractError):
        decode(Heartbeat, data)


def test_topics_compaction_and_dead_letters() -> None:
    assert REGISTRY_POINTS.config["cleanup.policy"] == "compact"
    assert POINT_STATUS.config["cleanup.policy"] == "compact"
    assert HEARTBEATS.config == {
        "cleanup.policy": "delete",
        "retention.ms": "86400000",
        "message.timestamp.type": "LogAppendTime",
    }
    names = {topic.name for topic in ALL_TOPICS}
    assert {"attendance.heartbeats.dlq", "registry.points.dlq"} <= names


def test_registry_table_finds_points_by_token_hash_and_forgets_old_tokens() -> None:
    table = RegistryTable()
    old, new = new_token(), new_token()
    base = dict(
        code="P1", name="Xã Đông Tiến", level="commune", channel="video_bridge", courses=("C1",)
    )
    table.put_point(PointRegistration.model_validate(base | {"token_hash": hash_token(old)}))
    table.put_point(PointRegistration.model_validate(base | {"token_hash": hash_token(new)}))
    assert table.point_by_token_hash(hash_token(old)) is None
    found = table.point_by_token_hash(hash_token(new))
    assert found is not None and found.code == "P1"
    table.remove_point("P1")
    assert table.point_by_token_hash(hash_token(new)) is None
