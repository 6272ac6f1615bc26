"""Heartbeats in over HTTP: `POST /v1/heartbeats` from a point for itself, and
`POST /v1/heartbeats/batch` from a relay gateway for the points of its provinces.

Each request is authenticated by the sender's token, each heartbeat is checked against the
registry (`attendance.admission`) and the point's rate limit, and the answer is 202 only once
Kafka has acknowledged every heartbeat accepted. A request holds a stamp open, from the first
thing its route does until its heartbeats are handed to the producer, so this instance's
watermarks (`attendance.watermarks`) never claim a moment a heartbeat could still land before.
A point's accepted heartbeat is answered ahead of FastAPI (`attendance.fast_path`); what every
other answer is, this module says.
"""

import asyncio
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry, Counter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from attendance.admission import Reason, Refusal, admitted, session_to_show
from attendance.config import Settings
from attendance.encoding import heartbeat_record
from attendance.ratelimit import TokenBuckets
from attendance.watermarks import Stamps
from contracts import wire
from contracts.events import Code, Count, LinkQuality, PointRegistration, SessionSchedule
from contracts.registry import RegistryTable
from contracts.tokens import hash_token
from contracts.topics import point_key
from contracts.wire import HeartbeatRecord, LinkQualityRecord, encode_json, is_code
from servicekit.kafka import KAFKA_ERRORS, Outgoing, RawPublisher

HEARTBEAT_PATH = "/v1/heartbeats"
BATCH_PATH = "/v1/heartbeats/batch"
POINT_PATH = "/v1/points/me"
MAX_BATCH_ITEMS = 1000
RETRY_AFTER_SECONDS = "2"
JSON = "application/json"


class HeartbeatIn(BaseModel):
    """What a connection point sends, every few seconds, for itself."""

    model_config = ConfigDict(extra="forbid")

    point_code: Code
    # None: the point's session on air (or starting within 30 minutes), so that an agent or a
    # browser configured once serves every session of the course.
    session_code: Code | None = None
    seq: Annotated[int, Field(ge=0)]
    sent_at: AwareDatetime
    learners: Count
    link: LinkQuality | None = None
    leaving: bool = False


class BatchIn(BaseModel):
    """What a relay gateway forwards at once: heartbeats of itself and of the points it serves."""

    model_config = ConfigDict(extra="forbid")

    heartbeats: list[HeartbeatIn] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class HeartbeatItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`HeartbeatIn` as the batch route and the single route's fast path read it: decoded
    straight from JSON, without a pydantic model each (a gateway's thousand a request were a
    fifth of the ingest's time). Codes are checked after decoding (`is_code`), as pydantic's
    pattern; `tests/component/test_ingest_router.py` holds the two to the same answers."""

    point_code: str
    session_code: str | None = None
    seq: Annotated[int, msgspec.Meta(ge=0)]
    sent_at: wire.Instant
    learners: wire.Count
    link: LinkQualityRecord | None = None
    leaving: bool = False


class BatchItems(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`BatchIn`, read by msgspec (the OpenAPI document shows `BatchIn`)."""

    heartbeats: Annotated[
        list[HeartbeatItem], msgspec.Meta(min_length=1, max_length=MAX_BATCH_ITEMS)
    ]


# Lax like pydantic's JSON mode, as the route was: "12" for 12.
_read_batch = msgspec.json.Decoder(BatchItems, strict=False)


def read_batch(body: bytes) -> BatchItems:
    """The batch in `body`; RequestValidationError (a 422, as FastAPI answers) if it is not
    one."""
    try:
        batch = _read_batch.decode(body)
    except msgspec.ValidationError as error:
        raise _invalid("value_error", str(error)) from error
    except msgspec.DecodeError as error:
        raise _invalid("json_invalid", str(error)) from error
    for index, item in enumerate(batch.heartbeats):
        for field_name in ("point_code", "session_code"):
            code = getattr(item, field_name)
            if code is not None and not is_code(code):
                where = ("heartbeats", index, field_name)
                raise _invalid("string_pattern_mismatch", "not a valid code", where)
    return batch


def _invalid(kind: str, message: str, where: tuple[str | int, ...] = ()) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("body", *where), "msg": message}])


# The batch body as the document shows it: `BatchIn`'s schema, its heartbeats the same
# `HeartbeatIn` component the single route's body is.
BATCH_BODY = {
    "content": {
        JSON: {
            "schema": {
                key: value
                for key, value in BatchIn.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                ).items()
                if key != "$defs"
            }
        }
    },
    "required": True,
}
INVALID_BODY = {
    "description": "Validation Error",
    "content": {JSON: {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
}


class Accepted(BaseModel):
    received_at: datetime
    # The session the heartbeat was filed under: the one it named, or the one on air.
    session_code: str
    # The session's cadence, so a point's agent needs no setting of its own to keep it.
    heartbeat_interval_s: float


class Rejected(BaseModel):
    """One heartbeat of a batch that was not accepted; the others were."""

    index: int
    point_code: str
    status: int
    reason: Reason
    detail: str
    # Seconds before this point may be heard again (429 only).
    retry_after: int | None = None


class BatchAccepted(BaseModel):
    received_at: datetime
    accepted: int
    rejected: list[Rejected]


class PointBrief(BaseModel):
    """What a point's own page shows: the point, and its session on air or next (None when
    none is left)."""

    code: str
    name: str
    province_code: str | None
    expected_learners: int
    session: SessionSchedule | None


class IngestMetrics:
    """Heartbeats accepted, and refusals by reason (a whole request counts once)."""

    def __init__(self, metrics: CollectorRegistry) -> None:
        self.accepted = Counter(
            "heartbeats_accepted_total",
            "Heartbeats acknowledged by Kafka and answered 202",
            registry=metrics,
        )
        self.rejected = Counter(
            "heartbeats_rejected_total",
            "Heartbeats, or whole heartbeat requests, refused",
            ["reason"],
            registry=metrics,
        )
        for reason in Reason:
            self.rejected.labels(reason.value)  # every series from the start: rates work at once

    def refused(self, reason: Reason, count: int = 1) -> None:
        self.rejected.labels(reason.value).inc(count)

    def body_refused(self, path: str) -> None:
        """For the service's body-size guard, which refuses before any route runs."""
        if path in (HEARTBEAT_PATH, BATCH_PATH):
            self.refused(Reason.TOO_LARGE)


@cache
def ingest_metrics(metrics: CollectorRegistry) -> IngestMetrics:
    """The one set of ingest counters on `metrics`: the routes and the body-size guard both
    count into it, and Prometheus refuses a metric registered twice."""
    return IngestMetrics(metrics)


def ingest_body_limits(settings: Settings) -> dict[str, int]:
    """The body-size limits of the ingest routes, for `service_app(max_body_per_path=...)`."""
    return {HEARTBEAT_PATH: settings.max_heartbeat_bytes, BATCH_PATH: settings.max_batch_bytes}


class Intake:
    """What the heartbeat routes share, whichever path answers (FastAPI's routes, or
    `attendance.fast_path` for the single route's accepted heartbeats): the registry, the
    points' rate limits, the stamps, the producer and the counters."""

    def __init__(
        self,
        registry: RegistryTable,
        heartbeats: RawPublisher,
        settings: Settings,
        metrics: CollectorRegistry,
        loaded: Callable[[], Awaitable[bool]],
        stamps: Stamps,
    ) -> None:
        self.registry = registry
        self.heartbeats = heartbeats
        self.settings = settings
        self.counted = ingest_metrics(metrics)
        self.loaded = loaded
        self.stamps = stamps
        self._limiter = TokenBuckets(settings.rate_limit_burst, settings.rate_limit_per_second)

    def refuse(self, refusal: Refusal, headers: dict[str, str] | None = None) -> HTTPException:
        self.counted.refused(refusal.reason)
        return HTTPException(refusal.status, refusal.detail, headers=headers)

    def point_of(self, token: str) -> PointRegistration | None:
        """The point whose token this is, if any."""
        presented = hash_token(token)
        point = self.registry.point_by_token_hash(presented)
        if point is None or not hmac.compare_digest(point.token_hash or "", presented):
            return None
        return point

    def rate_limited(self, point_code: str) -> tuple[Refusal, int] | None:
        wait = self._limiter.take(point_code, time.monotonic())
        if wait is None:
            return None
        refusal = Refusal(429, Reason.RATE_LIMITED, "heartbeats too frequent for this point")
        return refusal, int(wait)

    async def deliver(self, stamp: int, accepted: list[Outgoing]) -> None:
        """Return once Kafka acknowledged every heartbeat, or answer 503 within the timeout
        (the publisher's, `publish_timeout_seconds`: a batch's, not a deadline per request)."""
        try:
            pending = await self.heartbeats.publish_all(accepted)
            self.stamps.close(stamp)
            await _acknowledged(pending)
        except KAFKA_ERRORS as error:
            self.counted.refused(Reason.KAFKA_UNAVAILABLE, len(accepted))
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "heartbeats not stored: Kafka unavailable, retry",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            ) from error
        self.counted.accepted.inc(len(accepted))


def ingest_router(intake: Intake) -> APIRouter:
    """The heartbeat routes, answering from the intake's registry and publishing through its
    producer; 503 until it says the registry holds what its topics held at start."""
    registry, counted, stamps = intake.registry, intake.counted, intake.stamps
    refuse, rate_limited, deliver = intake.refuse, intake.rate_limited, intake.deliver
    router = APIRouter(tags=["heartbeats"], route_class=_counting_invalid(counted))
    bearer = HTTPBearer(auto_error=False)

    # Declared first in each route, so it runs before anything that could wait; `async` (here
    # and below) so FastAPI runs it inline, not in a thread, a hop of many loop turns.
    async def stamped() -> AsyncIterator[int]:
        stamp = stamps.open()
        try:
            yield stamp
        finally:
            stamps.close(stamp)

    async def authenticated(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> PointRegistration:
        if not await intake.loaded():
            # A token not read yet is not an unknown token: a point told 401 may give up.
            loading = Refusal(503, Reason.REGISTRY_LOADING, "registry still loading, retry")
            raise refuse(loading, headers={"Retry-After": "1"})
        if credentials is None:
            raise refuse(Refusal(401, Reason.UNAUTHENTICATED, "bearer token required"))
        point = intake.point_of(credentials.credentials)
        if point is None:
            raise refuse(Refusal(401, Reason.UNAUTHENTICATED, "unknown or revoked token"))
        return point

    async def read_body(request: Request) -> bytes:
        """The body, read before the token is checked, as FastAPI reads a body it parses: an
        oversized one is refused 413 by the body limit, whoever sends it."""
        return await request.body()

    async def authenticated_gateway(
        point: Annotated[PointRegistration, Depends(authenticated)],
    ) -> PointRegistration:
        if not point.relays_for or not point.active:
            raise refuse(Refusal(403, Reason.NOT_GATEWAY, "not an active relay gateway's token"))
        return point

    def judged(
        index: int,
        item: HeartbeatItem,
        gateway: PointRegistration,
        relays_for: frozenset[str],
        received_at: datetime,
    ) -> dict[str, Any] | str:
        """Why a heartbeat of a gateway's batch is refused (a `Rejected`), or the session it
        is filed under."""
        filed = admitted(
            registry, gateway, item.point_code, item.session_code, received_at, relays_for
        )
        wait = None
        # Only after the point was found admissible: a gateway must never spend the tokens of
        # a point it may not speak for.
        if isinstance(filed, str):
            limited = rate_limited(item.point_code)
            if limited is None:
                return filed
            refusal, wait = limited
        else:
            refusal = filed
        counted.refused(refusal.reason)
        return {
            "index": index,
            "point_code": item.point_code,
            "status": refusal.status,
            "reason": refusal.reason.value,
            "detail": refusal.detail,
            "retry_after": wait,
        }

    @router.post(
        HEARTBEAT_PATH,
        status_code=status.HTTP_202_ACCEPTED,
        summary="A heartbeat of one point, sent with that point's own token",
        response_model=Accepted,
        responses={401: {}, 403: {}, 404: {}, 409: {}, 413: {}, 429: {}, 503: {}},
    )
    async def post_heartbeat(
        stamp: Annotated[int, Depends(stamped)],
        heartbeat: HeartbeatIn,
        point: Annotated[PointRegistration, Depends(authenticated)],
    ) -> Response:
        # Keyed by the token's point, whatever the body claims: a caller is throttled before
        # anything else, and only ever on its own bucket.
        limited = rate_limited(point.code)
        if limited is not None:
            too_often, wait = limited
            raise refuse(too_often, headers={"Retry-After": str(wait)})
        received_at = datetime.now(UTC)
        filed = admitted(registry, point, heartbeat.point_code, heartbeat.session_code, received_at)
        if isinstance(filed, Refusal):
            raise refuse(filed)
        # Looked up before the await: admission just found it, and nothing ran since.
        session = registry.sessions[filed]
        await deliver(stamp, [_record(heartbeat, filed, received_at)])
        answer = accepted_answer(received_at, filed, session)
        return Response(answer, status.HTTP_202_ACCEPTED, media_type=JSON)

    @router.get(
        POINT_PATH,
        summary="The point this token belongs to, and its session on air or next",
        responses={401: {}, 503: {}},
    )
    async def get_point(
        point: Annotated[PointRegistration, Depends(authenticated)],
    ) -> PointBrief:
        return PointBrief(
            code=point.code,
            name=point.name,
            province_code=point.province_code,
            expected_learners=point.expected_learners,
            session=session_to_show(registry, point, datetime.now(UTC)),
        )

    @router.post(
        BATCH_PATH,
        status_code=status.HTTP_202_ACCEPTED,
        summary="Heartbeats of many points, forwarded by a relay gateway with its own token",
        description=(
            "Each heartbeat is accepted if it is the gateway's own or that of an active point"
            " of a province the gateway relays for, enrolled in the session's course, and within"
            " that point's rate limit; the others are listed in `rejected` by index. 202 once"
            f" Kafka acknowledged every accepted one. At most {MAX_BATCH_ITEMS} heartbeats."
        ),
        response_model=BatchAccepted,
        responses={401: {}, 403: {}, 413: {}, 422: INVALID_BODY, 503: {}},
        openapi_extra={"requestBody": BATCH_BODY},
    )
    async def post_batch(
        stamp: Annotated[int, Depends(stamped)],
        body: Annotated[bytes, Depends(read_body)],
        gateway: Annotated[PointRegistration, Depends(authenticated_gateway)],
    ) -> Response:
        batch = read_batch(body)
        received_at = datetime.now(UTC)
        relays_for = frozenset(gateway.relays_for)
        accepted: list[Outgoing] = []
        rejected: list[dict[str, Any]] = []
        for index, item in enumerate(batch.heartbeats):
            judgement = judged(index, item, gateway, relays_for, received_at)
            if isinstance(judgement, str):
                accepted.append(item_record(item, judgement, received_at))
            else:
                rejected.append(judgement)
        if accepted:
            await deliver(stamp, accepted)
        # Written directly, as the single route's answer (the route documents `BatchAccepted`).
        answer = {"received_at": received_at, "accepted": len(accepted), "rejected": rejected}
        return Response(encode_json(answer), status.HTTP_202_ACCEPTED, media_type=JSON)

    return router


def accepted_answer(received_at: datetime, filed: str, session: SessionSchedule) -> bytes:
    """The single route's 202 body, written directly (the route still documents `Accepted`):
    FastAPI would validate and serialise the model again on every one of the course's
    heartbeats."""
    answer = {
        "received_at": received_at,
        "session_code": filed,
        "heartbeat_interval_s": session.heartbeat_interval_s,
    }
    return encode_json(answer)


def _record(heartbeat: HeartbeatIn, session_code: str, received_at: datetime) -> Outgoing:
    """The record of an accepted heartbeat, filed under `session_code`, on
    `attendance.heartbeats` (in its key's partition)."""
    link = None if heartbeat.link is None else heartbeat.link.model_dump()
    value = heartbeat_record(
        heartbeat.point_code,
        session_code,
        heartbeat.seq,
        heartbeat.sent_at,
        received_at,
        heartbeat.learners,
        link,
        heartbeat.leaving,
    )
    return point_key(heartbeat.point_code), value, None


def item_record(item: HeartbeatItem, session_code: str, received_at: datetime) -> Outgoing:
    """`_record` of a heartbeat of a gateway's batch."""
    value = encode_json(
        HeartbeatRecord(
            point_code=item.point_code,
            session_code=session_code,
            seq=item.seq,
            sent_at=item.sent_at,
            received_at=received_at,
            learners=item.learners,
            link=item.link,
            leaving=item.leaving,
        )
    )
    return point_key(item.point_code), value, None


async def _acknowledged(pending: list["asyncio.Future[Any]"]) -> None:
    if len(pending) == 1:  # a point's own heartbeat: no gathering (a task and futures more)
        await pending[0]
        return
    outcomes = await asyncio.gather(*pending, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def _counting_invalid(metrics: IngestMetrics) -> type[APIRoute]:
    """Routes that count the bodies FastAPI refuses (422) before a handler could."""

    class CountingRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handle = super().get_route_handler()

            async def counting(request: Request) -> Response:
                try:
                    return await handle(request)
                except RequestValidationError:
                    metrics.refused(Reason.INVALID)
                    raise

            return counting

    return CountingRoute
