"""`POST /v1/heartbeats`: authenticate the point, validate, hand the heartbeat durably to Kafka."""

import asyncio
import hmac
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from faststream.kafka.publisher.usecase import DefaultPublisher
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.codec import encode
from contracts.events import Code, Count, Heartbeat, LinkQuality, PointRegistration
from contracts.registry import RegistryTable
from contracts.tokens import hash_token
from contracts.topics import point_key

RETRY_AFTER_SECONDS = "2"


class HeartbeatIn(BaseModel):
    """What a connection point sends, every few seconds, for itself."""

    model_config = ConfigDict(extra="forbid")

    point_code: Code
    session_code: Code
    seq: Annotated[int, Field(ge=0)]
    sent_at: AwareDatetime
    learners: Count
    link: LinkQuality | None = None
    leaving: bool = False


class Accepted(BaseModel):
    received_at: datetime


def ingest_router(
    registry: RegistryTable, heartbeats: DefaultPublisher, publish_timeout: float
) -> APIRouter:
    router = APIRouter(tags=["heartbeats"])
    bearer = HTTPBearer(auto_error=False)

    def authenticated_point(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> PointRegistration:
        if credentials is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bearer token required")
        presented = hash_token(credentials.credentials)
        point = registry.point_by_token_hash(presented)
        if point is None or not hmac.compare_digest(point.token_hash or "", presented):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked token")
        return point

    @router.post(
        "/v1/heartbeats",
        status_code=status.HTTP_202_ACCEPTED,
        summary="A heartbeat of one point, sent with that point's own token",
        responses={401: {}, 403: {}, 404: {}, 503: {}},
    )
    async def post_heartbeat(
        heartbeat: HeartbeatIn,
        point: Annotated[PointRegistration, Depends(authenticated_point)],
    ) -> Accepted:
        if heartbeat.point_code != point.code:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "a point may only speak for itself")
        session = registry.sessions.get(heartbeat.session_code)
        if session is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown session")
        if not point.active or session.course_code not in point.courses:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "point not enrolled in this session")
        accepted = Heartbeat(**heartbeat.model_dump(), received_at=datetime.now(UTC))
        try:
            await asyncio.wait_for(
                heartbeats.publish(encode(accepted), key=point_key(point.code)), publish_timeout
            )
        except Exception as error:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "heartbeat not stored: Kafka unavailable, retry",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            ) from error
        return Accepted(received_at=accepted.received_at)

    return router
