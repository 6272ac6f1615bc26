"""The heartbeat routes in process, on a fake of Kafka's producer: every answer a point or a
gateway can get, what reaches Kafka for each, and the refusals counted by reason. The real
broker's side (acknowledgements, outages, rates over time) is in tests/e2e and tests/fault."""

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from attendance.config import Settings
from attendance.encoding import heartbeat_of
from attendance.fast_path import FastHeartbeats
from attendance.ingest import (
    BATCH_PATH,
    HEARTBEAT_PATH,
    POINT_PATH,
    Intake,
    ingest_body_limits,
    ingest_router,
)
from attendance.watermarks import Stamps
from contracts.events import Channel, Level, PointRegistration, SessionSchedule
from contracts.registry import RegistryTable
from contracts.tokens import hash_token
from servicekit.headers import SecurityHeaders
from servicekit.http import answer_invalid_bodies
from servicekit.kafka import Outgoing
from servicekit.limits import BodySizeLimit

NOW = datetime.now(UTC)
sequence = itertools.count(1)


@dataclass
class FakeProducer:
    """Takes records as Kafka would, or fails each send with `failure`."""

    records: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    failure: BaseException | None = None

    async def publish_all(self, records: list[Outgoing]) -> list["asyncio.Future[Any]"]:
        return [self._sent([(key, value) for key, value, _ in records])]

    def _sent(self, records: list[tuple[bytes | None, bytes]]) -> "asyncio.Future[Any]":
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.failure is not None:
            future.set_exception(self.failure)
        else:
            self.records += records
            future.set_result(None)
        return future


def point(code: str, *, province: str = "79", **changes: Any) -> PointRegistration:
    fields: dict[str, Any] = {
        "code": code,
        "name": f"Point {code}",
        "level": Level.COMMUNE,
        "channel": Channel.VIDEO_BRIDGE,
        "province_code": province,
        "courses": ("C1",),
        "token_hash": hash_token(f"token-{code}"),
    }
    return PointRegistration(**(fields | changes))


@dataclass
class Ingest:
    client: TestClient
    kafka: FakeProducer
    metrics: CollectorRegistry
    loaded: list[bool]
    stamps: Stamps

    def beat(self, sender: str, about: str | None = None, **changes: Any) -> Any:
        return self.client.post(
            HEARTBEAT_PATH, json=body(about or sender) | changes, headers=bearer(sender)
        )

    def refused(self) -> dict[str, float]:
        return {
            sample.labels["reason"]: sample.value
            for family in self.metrics.collect()
            if family.name == "heartbeats_rejected"
            for sample in family.samples
            if sample.name == "heartbeats_rejected_total" and sample.value
        }

    def heard(self) -> list[str]:
        return [heartbeat_of(value)[0][1] for _, value in self.kafka.records]


def body(code: str, session: str = "S1") -> dict[str, Any]:
    return {
        "point_code": code,
        "session_code": session,
        "seq": next(sequence),
        "sent_at": NOW.isoformat(),
        "learners": 12,
    }


def bearer(code: str) -> dict[str, str]:
    return {"Authorization": f"Bearer token-{code}"}


def registered() -> RegistryTable:
    registry = RegistryTable()
    for registered in [
        point("P1"),
        point("P2"),
        point("ELSEWHERE", courses=("C2",)),
        point("GONE", active=False),
        point("GW", relays_for=("79",)),
        point("NORTH", province="01"),
    ]:
        registry.put_point(registered)
    registry.put_session(
        SessionSchedule(
            code="S1", course_code="C1", starts_at=NOW, ends_at=NOW + timedelta(hours=4)
        )
    )
    return registry


def served(intake: Intake, *, fast: bool = True) -> ASGIApp:
    """The routes behind the layers the service puts in front of them (`service_app`), and
    the single route's fast path in front of those, as `attendance.app` serves them."""
    api = FastAPI()
    answer_invalid_bodies(api)
    api.include_router(ingest_router(intake))
    limited = BodySizeLimit(
        api,
        default=64 * 1024,
        per_path=ingest_body_limits(intake.settings),
        on_refused=intake.counted.body_refused,
    )
    guarded = SecurityHeaders(limited)
    return FastHeartbeats(guarded, intake=intake) if fast else guarded


def intake_on(
    kafka: FakeProducer, settings: Settings, metrics: CollectorRegistry, loaded: list[bool]
) -> Intake:
    async def is_loaded() -> bool:
        return loaded[0]

    stamps = Stamps(time.time())
    return Intake(registered(), kafka, settings, metrics, is_loaded, stamps)  # type: ignore[arg-type]


@pytest.fixture
def ingest() -> Iterator[Ingest]:
    settings = Settings(rate_limit_burst=3, rate_limit_per_second=0.01)
    kafka, metrics, loaded = FakeProducer(), CollectorRegistry(), [True]
    intake = intake_on(kafka, settings, metrics, loaded)
    with TestClient(served(intake), raise_server_exceptions=False) as client:
        yield Ingest(client, kafka, metrics, loaded, intake.stamps)


def test_a_point_is_heard_for_itself_in_its_own_sessions_and_nothing_else(
    ingest: Ingest,
) -> None:
    accepted = ingest.beat("P1")
    assert accepted.status_code == 202
    assert accepted.json()["heartbeat_interval_s"] == 5.0
    no_token = ingest.client.post(HEARTBEAT_PATH, json=body("P1"))
    unknown_token = ingest.client.post(
        HEARTBEAT_PATH, json=body("P1"), headers={"Authorization": "Bearer pt_forged"}
    )
    answers = {
        "no token": no_token.status_code,
        "unknown token": unknown_token.status_code,
        "another point's token": ingest.beat("P2", about="P1").status_code,
        "not enrolled": ingest.beat("ELSEWHERE").status_code,
        "deactivated": ingest.beat("GONE").status_code,
        "unknown session": ingest.beat("P1", session_code="NO-SUCH").status_code,
        "negative learners": ingest.beat("P1", learners=-3).status_code,
        "unknown field": ingest.beat("P1", colour="red").status_code,
        "zone-less time": ingest.beat("P1", sent_at="2026-11-23T08:00:00").status_code,
        "10 KB": ingest.beat("P2", padding="x" * 10_000).status_code,
        "not UTF-8, not JSON": ingest.client.post(
            HEARTBEAT_PATH, content=b"\xff", headers=bearer("P1") | {"Content-Type": "text/plain"}
        ).status_code,
    }
    assert answers == {
        "no token": 401,
        "unknown token": 401,
        "another point's token": 403,
        "not enrolled": 403,
        "deactivated": 403,
        "unknown session": 404,
        "negative learners": 422,
        "unknown field": 422,
        "zone-less time": 422,
        "10 KB": 413,
        "not UTF-8, not JSON": 422,
    }
    assert ingest.heard() == ["P1"]
    assert ingest.refused() == {
        "unauthenticated": 2,
        "wrong_point": 1,
        "not_enrolled": 2,
        "unknown_session": 1,
        "invalid": 4,
        "too_large": 1,
    }


def test_a_heartbeat_naming_no_session_is_filed_under_the_one_on_air(ingest: Ingest) -> None:
    unnamed = body("P1")
    del unnamed["session_code"]
    accepted = ingest.client.post(HEARTBEAT_PATH, json=unnamed, headers=bearer("P1"))
    assert accepted.status_code == 202
    assert accepted.json()["session_code"] == "S1"
    (record,) = ingest.kafka.records
    assert heartbeat_of(record[1])[0] == ("S1", "P1")
    # A course with no session on air: a 409 that says so, counted as off air.
    off_air = body("ELSEWHERE")
    del off_air["session_code"]
    refused = ingest.client.post(HEARTBEAT_PATH, json=off_air, headers=bearer("ELSEWHERE"))
    assert refused.status_code == 409
    assert "no session" in refused.json()["detail"]
    relayed = [body("P2") | {"session_code": None}, off_air]
    batch = ingest.client.post(BATCH_PATH, json={"heartbeats": relayed}, headers=bearer("GW"))
    assert batch.json()["accepted"] == 1
    assert [(r["index"], r["status"]) for r in batch.json()["rejected"]] == [(1, 409)]
    assert ingest.heard() == ["P1", "P2"]
    assert ingest.refused() == {"off_air": 2}


def test_a_point_reads_who_it_is_and_its_session_with_its_own_token(ingest: Ingest) -> None:
    me = ingest.client.get(POINT_PATH, headers=bearer("P1"))
    assert me.status_code == 200
    body = me.json()
    assert (body["code"], body["name"], body["session"]["code"]) == ("P1", "Point P1", "S1")
    assert ingest.client.get(POINT_PATH, headers=bearer("ELSEWHERE")).json()["session"] is None
    assert ingest.client.get(POINT_PATH).status_code == 401
    forged = {"Authorization": "Bearer pt_forged"}
    assert ingest.client.get(POINT_PATH, headers=forged).status_code == 401


def test_a_point_over_its_burst_is_told_when_to_come_back_and_others_are_not(
    ingest: Ingest,
) -> None:
    assert [ingest.beat("P1").status_code for _ in range(4)] == [202, 202, 202, 429]
    too_often = ingest.beat("P1")
    assert int(too_often.headers["Retry-After"]) >= 1
    assert ingest.beat("P2").status_code == 202
    assert ingest.heard() == ["P1", "P1", "P1", "P2"]
    assert ingest.refused() == {"rate_limited": 2}


def test_a_gateway_forwards_for_its_provinces_and_each_refusal_is_listed(ingest: Ingest) -> None:
    heartbeats = [body("P1"), body("NORTH"), body("GW"), body("ELSEWHERE"), body("P2", "NO-SUCH")]
    answer = ingest.client.post(BATCH_PATH, json={"heartbeats": heartbeats}, headers=bearer("GW"))
    assert answer.status_code == 202
    assert answer.json()["accepted"] == 2
    assert [(r["index"], r["status"], r["reason"]) for r in answer.json()["rejected"]] == [
        (1, 403, "wrong_point"),
        (3, 403, "not_enrolled"),
        (4, 404, "unknown_session"),
    ]
    assert ingest.heard() == ["P1", "GW"]
    not_a_gateway = ingest.client.post(
        BATCH_PATH, json={"heartbeats": [body("P1")]}, headers=bearer("P1")
    )
    assert not_a_gateway.status_code == 403
    empty = ingest.client.post(BATCH_PATH, json={"heartbeats": []}, headers=bearer("GW"))
    assert empty.status_code == 422
    assert ingest.refused() == {
        "wrong_point": 1,
        "not_enrolled": 1,
        "unknown_session": 1,
        "not_gateway": 1,
        "invalid": 1,
    }


def test_while_the_registry_loads_every_point_is_asked_to_retry(ingest: Ingest) -> None:
    ingest.loaded[0] = False
    loading = ingest.beat("P1")
    assert (loading.status_code, loading.headers["Retry-After"]) == (503, "1")
    ingest.loaded[0] = True
    assert ingest.beat("P1").status_code == 202
    assert ingest.refused() == {"registry_loading": 1}


def test_kafka_refusing_a_heartbeat_is_a_503_and_a_bug_is_not_disguised_as_one(
    ingest: Ingest,
) -> None:
    ingest.kafka.failure = KafkaConnectionError()
    away = ingest.beat("P1")
    assert (away.status_code, away.headers["Retry-After"]) == (503, "2")
    batch = ingest.client.post(
        BATCH_PATH, json={"heartbeats": [body("P1"), body("GW")]}, headers=bearer("GW")
    )
    assert batch.status_code == 503
    assert ingest.refused() == {"kafka_unavailable": 3}
    ingest.kafka.failure = TypeError("a bug in the producer's path")
    assert ingest.beat("P2").status_code == 500
    assert ingest.refused() == {"kafka_unavailable": 3}
    assert ingest.heard() == []


def test_every_request_lets_its_stamp_go_however_it_ends(ingest: Ingest) -> None:
    """A stamp left open would hold this instance's watermarks back for good, and with them
    every processor's judgement of silence."""
    answers = [ingest.beat("P1").status_code, ingest.beat("P2", about="P1").status_code]
    answers.append(ingest.client.post(HEARTBEAT_PATH, json=body("P1")).status_code)
    answers.append(ingest.beat("P1", learners=-1).status_code)
    answers += [ingest.beat("P1").status_code for _ in range(3)]
    gateway = ingest.client.post(
        BATCH_PATH, json={"heartbeats": [body("GW"), body("NORTH")]}, headers=bearer("GW")
    )
    answers.append(gateway.status_code)
    ingest.loaded[0] = False
    answers.append(ingest.beat("P2").status_code)
    ingest.loaded[0] = True
    ingest.kafka.failure = KafkaConnectionError()
    answers.append(ingest.beat("P2").status_code)
    ingest.kafka.failure = TypeError("a bug in the producer's path")
    answers.append(ingest.beat("GW").status_code)
    assert answers == [202, 403, 401, 422, 202, 202, 429, 202, 503, 503, 500]
    later = time.time() + 60
    assert ingest.stamps.tick(later) == later


VARIANTS: dict[str, dict[str, Any]] = {
    "as sent": {},
    "no session": {"session_code": None},
    "a count as text": {"learners": "12"},
    "a moment as a number": {"sent_at": 1_800_000_000},
    "a link": {"link": {"rtt_ms": 20, "packet_loss_pct": 0.5}},
    "a link with a newer field": {"link": {"rtt_ms": 20, "jitter_ms": 3}},
    "leaving as text": {"leaving": "true"},
    "negative learners": {"learners": -3},
    "a million learners and one": {"learners": 1_000_001},
    "negative seq": {"seq": -1},
    "an unknown field": {"colour": "red"},
    "a zone-less time": {"sent_at": "2026-11-23T08:00:00"},
    "a code out of pattern": {"point_code": "P1; drop"},
    "a session code out of pattern": {"session_code": "S 1"},
    "negative rtt": {"link": {"rtt_ms": -1}},
    "no learners": {"learners": None},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_batch_route_reads_a_heartbeat_as_the_single_route_does(
    ingest: Ingest, variant: str
) -> None:
    """The batch route decodes with msgspec, the single route with pydantic: the same item
    is valid on both or on neither."""
    item = body("GW") | VARIANTS[variant]
    item = {k: v for k, v in item.items() if v is not None or k == "session_code"}
    single = ingest.client.post(HEARTBEAT_PATH, json=item, headers=bearer("GW"))
    batch = ingest.client.post(BATCH_PATH, json={"heartbeats": [item]}, headers=bearer("GW"))
    assert (single.status_code == 422) == (batch.status_code == 422), (single.text, batch.text)
    if batch.status_code == 422:
        assert batch.json()["detail"][0]["loc"][0] == "body"
    else:
        assert batch.status_code == 202


def test_the_batch_route_documents_the_body_it_reads() -> None:
    app = FastAPI()
    intake = Intake(RegistryTable(), None, Settings(), CollectorRegistry(), None, Stamps(0))  # type: ignore[arg-type]
    app.include_router(ingest_router(intake))
    document = app.openapi()
    operation = document["paths"][BATCH_PATH]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["heartbeats"]["items"] == {
        "$ref": "#/components/schemas/HeartbeatIn"
    }
    assert schema["properties"]["heartbeats"]["maxItems"] == 1000
    assert "HeartbeatIn" in document["components"]["schemas"]
    assert "422" in operation["responses"]


# Values a field may carry, valid or not: what each of the two readers must judge alike.
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2_000_000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "12",
            "-1",
            "1e3",
            "true",
            "P1",
            "S1",
            "NO-SUCH",
            "S 1",
            NOW.isoformat(),
            "2026-11-23T08:00:00",
            "2026-11-23T08:00:00Z",
            "2026-11-23 08:00:00+07:00",
            "2026-11-23T08:00:00.123456789+00:00",
            "2026-11-23",
            "1800000000",
        ]
    ),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["rtt_ms", "jitter_ms"]), st.integers(-1, 50)),
)
FIELDS = ["point_code", "session_code", "seq", "sent_at", "learners", "link", "leaving", "colour"]


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A heartbeat request: mostly a valid one with a field or two changed, its sender's token
    or another, sometimes a body that is no JSON object at all."""
    heartbeat: dict[str, Any] = body(draw(st.sampled_from(["P1", "P2", "ELSEWHERE", "GONE"])))
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=2, unique=True)):
        if draw(st.booleans()):
            heartbeat[name] = draw(ANY_VALUE)
        else:
            heartbeat.pop(name, None)
    content = json.dumps(heartbeat).encode()
    content = draw(st.sampled_from([content, content, content, content[:-1], b"[]", b"\xff"]))
    sender = draw(st.sampled_from(["P1", "P1", "P2"]))
    headers = draw(
        st.sampled_from(
            [
                bearer(sender) | {"Content-Type": "application/json"},
                bearer(sender) | {"Content-Type": "application/json; charset=utf-8"},
                bearer(sender) | {"Content-Type": "text/plain"},
                {"Authorization": f"Basic token-{sender}", "Content-Type": "application/json"},
                {"Content-Type": "application/json"},
            ]
        )
    )
    return content, headers


def _without_moments(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_moments(v) for k, v in data.items() if k != "received_at"}
    return data


@given(st.lists(requests(), min_size=1, max_size=4))
@settings(max_examples=150, deadline=None)
def test_the_fast_path_answers_every_heartbeat_as_the_route_does(
    sent: list[tuple[bytes, dict[str, str]]],
) -> None:
    """The single route's fast path (msgspec, no FastAPI) and the route behind it give the same
    answer to every request, write the same heartbeats and count the same refusals."""
    limits = Settings(rate_limit_burst=2, rate_limit_per_second=0.01)
    seen = []
    for fast in (True, False):
        kafka, metrics = FakeProducer(), CollectorRegistry()
        intake = intake_on(kafka, limits, metrics, [True])
        with TestClient(served(intake, fast=fast), raise_server_exceptions=False) as client:
            answers = [
                client.post(HEARTBEAT_PATH, content=content, headers=headers)
                for content, headers in sent
            ]
        seen.append(
            (
                [
                    (
                        answer.status_code,
                        _without_moments(answer.json()),
                        sorted(k for k in answer.headers if k != "content-length"),
                        answer.headers.get("retry-after"),
                    )
                    for answer in answers
                ],
                [_without_moments(json.loads(value)) for _, value in kafka.records],
                Ingest(client, kafka, metrics, [True], intake.stamps).refused(),
            )
        )
    assert seen[0] == seen[1]


def test_the_fast_path_answers_accepted_heartbeats_and_leaves_the_rest_to_the_route() -> None:
    reached: list[str] = []

    async def route(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    kafka = FakeProducer()
    intake = intake_on(kafka, Settings(), CollectorRegistry(), [True])
    client = TestClient(FastHeartbeats(route, intake=intake))  # no lifespan: none to run
    accepted = client.post(HEARTBEAT_PATH, json=body("P1"), headers=bearer("P1"))
    assert (accepted.status_code, reached) == (202, [])
    assert accepted.headers["x-frame-options"] == "DENY"
    passed_on = [
        client.post(HEARTBEAT_PATH, json=body("P1", "NO-SUCH"), headers=bearer("P1")),
        client.post(HEARTBEAT_PATH, json=body("P1") | {"learners": -1}, headers=bearer("P1")),
        client.post(HEARTBEAT_PATH, json=body("P1")),
        client.post(BATCH_PATH, json={"heartbeats": [body("GW")]}, headers=bearer("GW")),
    ]
    assert [answer.status_code for answer in passed_on] == [418] * 4
    assert reached == [HEARTBEAT_PATH] * 3 + [BATCH_PATH]
    assert len(kafka.records) == 1
