"""`POST /v1/heartbeats` answered without FastAPI when the heartbeat is accepted: the course's
every request, a point's own heartbeat every few seconds.

FastAPI's dependencies, body parsing and middlewares took three quarters of the ingest's time
on this route (B2: 2,700 requests/s against 33,000/s for a bare ASGI app on the same uvicorn;
6,800/s with this layer, against 28,000/s).
This layer reads the body with msgspec (`HeartbeatItem`, as the batch route does), checks the
token, admission and rate limit through the same `Intake` as the route, and answers 202
itself. Everything else goes on to the FastAPI route, body and all, before anything was spent
on it: a body it cannot read, no bearer token, an unknown one, a refusal of any kind, a body
with no length or over the limit. So every refusal keeps the answer the OpenAPI document
gives (the route's own), and the route stays the one place that says what a refusal is.
"""

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

import msgspec
from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from attendance.admission import admitted
from attendance.ingest import (
    HEARTBEAT_PATH,
    JSON,
    HeartbeatItem,
    Intake,
    accepted_answer,
    item_record,
)
from contracts.wire import encode_json, is_code
from servicekit.headers import security_headers

_read = msgspec.json.Decoder(HeartbeatItem, strict=False)  # lax as pydantic's JSON mode
Headers = list[tuple[bytes, bytes]]


def _raw(headers: Mapping[str, str]) -> Headers:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


_SECURITY = _raw(security_headers(HEARTBEAT_PATH))
_CONTENT_TYPE = (b"content-type", JSON.encode())


class FastHeartbeats:
    """Pure ASGI middleware, outermost: a point's accepted heartbeat answered here, any other
    request passed on to `app` as it came."""

    def __init__(self, app: ASGIApp, *, intake: Intake) -> None:
        self.app = app
        self._intake = intake
        self._limit = intake.settings.max_heartbeat_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != HEARTBEAT_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        token = self._bearer_token(scope["headers"])
        if token is None or not await self._intake.loaded():
            await self.app(scope, receive, send)
            return
        body = await _whole_body(receive)
        if body is not None and not await self._accepted(token, body, send):
            await self.app(scope, _replaying(body, receive), send)

    def _bearer_token(self, headers: Headers) -> str | None:
        """The bearer token of a request this layer may read: one with a JSON body of a stated
        length within the limit (the size guard behind it refuses the others)."""
        token = length = kind = None
        for name, value in headers:
            # The first of each, as Starlette's `Headers.get` reads them.
            if name == b"authorization" and token is None:
                token = value
            elif name == b"content-length" and length is None:
                length = value
            elif name == b"content-type" and kind is None:
                kind = value
        if token is None or kind != b"application/json":
            return None
        if length is None or not length.isdigit() or int(length) > self._limit:
            return None
        scheme, _, credentials = token.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not credentials:
            return None
        return credentials

    async def _accepted(self, token: str, body: bytes, send: Send) -> bool:
        """Answer the heartbeat in `body` if it is accepted (or Kafka fails it); False to leave
        it to the route, untouched."""
        try:
            heartbeat = _read.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return False
        session_code = heartbeat.session_code
        if not is_code(heartbeat.point_code) or not (session_code is None or is_code(session_code)):
            return False
        intake = self._intake
        stamp = intake.stamps.open()
        try:
            point = intake.point_of(token)
            if point is None:
                return False
            received_at = datetime.now(UTC)
            filed = admitted(
                intake.registry, point, heartbeat.point_code, session_code, received_at
            )
            # The rate limit last, as nothing is left to refuse: a token spent here is the one
            # the route would have spent, and a limited point is the route's to answer.
            if not isinstance(filed, str) or intake.rate_limited(point.code) is not None:
                return False
            session = intake.registry.sessions[filed]
            try:
                await intake.deliver(stamp, [item_record(heartbeat, filed, received_at)])
            except HTTPException as refused:  # Kafka's: the route could not answer it otherwise
                detail = encode_json({"detail": refused.detail})  # as FastAPI's handler does
                await _answer(send, refused.status_code, detail, refused.headers)
                return True
            await _answer(send, 202, accepted_answer(received_at, filed, session))
            return True
        finally:
            intake.stamps.close(stamp)


async def _answer(
    send: Send, status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> None:
    raw = [(b"content-length", str(len(body)).encode()), _CONTENT_TYPE, *_raw(headers or {})]
    await send({"type": "http.response.start", "status": status, "headers": raw + _SECURITY})
    await send({"type": "http.response.body", "body": body})


async def _whole_body(receive: Receive) -> bytes | None:
    """The body, or None if the client went away before sending all of it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """`receive` for the route behind: the body already read, then what the client sends."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
