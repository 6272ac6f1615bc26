"""A cap on request bodies: a client sending more than a route allows gets 413, early."""

import json
from collections.abc import Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """A body grew past its limit while being read. An HTTP exception, because FastAPI turns any
    other error met while reading a body into a 400; this one its handler answers as 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit:,} bytes")


def _ignore(path: str) -> None:
    pass


class BodySizeLimit:
    """Pure ASGI middleware: refuses on `Content-Length` before reading, and counts the bytes of
    chunked bodies as they arrive, so an oversized body is never held in memory whole.
    `on_refused` hears the path of every refusal, for a service to count them."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        default: int,
        per_path: Mapping[str, int] = {},
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self._app = app
        self._default = default
        self._per_path = dict(per_path)
        self._on_refused = on_refused or _ignore

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit = self._per_path.get(scope["path"], self._default)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self._on_refused(scope["path"])
            await _refuse(send, limit)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    self._on_refused(scope["path"])
                    raise BodyTooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, counted, tracked)
        except BodyTooLarge:
            # Reached only under an app that does not answer HTTP exceptions itself.
            if not started:
                await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit:,} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
