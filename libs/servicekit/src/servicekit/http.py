"""The HTTP shell of a service: its API plus `/healthz`, `/metrics` and the AsyncAPI document."""

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

import anyio
from fastapi import FastAPI, Header, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from servicekit.headers import SecurityHeaders
from servicekit.healing import ProducerHealer
from servicekit.kafka import KAFKA_ERRORS
from servicekit.limits import BodySizeLimit
from servicekit.logs import configure_logging
from servicekit.settings import ServiceSettings

log = logging.getLogger(__name__)
STOP_TIMEOUT_SECONDS = 10.0
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
# Largest body of a route without a limit of its own: JSON commands are a few hundred bytes.
DEFAULT_MAX_BODY = 64 * 1024


@asynccontextmanager
async def _no_extra_lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield


def service_app(
    *,
    title: str,
    broker: KafkaBroker,
    metrics: CollectorRegistry,
    lifespan: Lifespan = _no_extra_lifespan,
    max_body: int = DEFAULT_MAX_BODY,
    max_body_per_path: Mapping[str, int] = {},
    on_body_refused: Callable[[str], None] | None = None,
    serve_without_kafka: bool = False,
    ready: Callable[[], Awaitable[bool]] | None = None,
) -> FastAPI:
    """A FastAPI app that runs `broker` for its lifetime, then the service's own `lifespan`.

    Bodies over `max_body` bytes (or the path's own limit) get 413; `on_body_refused` hears
    the path of each, for a service that counts them.

    With `serve_without_kafka`, the app serves even while Kafka is unreachable and connects
    when Kafka comes: for a service whose writes wait in its own database (the outbox).
    `ready` keeps `/healthz` at 503 until the service has what it needs to answer (its tables).
    """

    configure_logging(ServiceSettings())
    healer = ProducerHealer(broker, metrics)

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        connecting = None
        if serve_without_kafka:
            connecting = asyncio.create_task(_start_when_reachable(broker))
        else:
            await broker.start()
        healing = asyncio.create_task(healer.run())
        try:
            async with lifespan(app):
                yield
        finally:
            healing.cancel()
            if connecting is not None:
                connecting.cancel()
            # Bounded, so a service told to stop while Kafka is unreachable still exits.
            with anyio.move_on_after(STOP_TIMEOUT_SECONDS):
                await broker.stop()

    app = FastAPI(title=title, lifespan=run)
    answer_invalid_bodies(app)
    app.add_middleware(
        BodySizeLimit, default=max_body, per_path=max_body_per_path, on_refused=on_body_refused
    )
    # Outermost, so that even a refusal of the body-size guard carries the headers.
    app.add_middleware(SecurityHeaders, exempt_from_csp=_docs_paths(app))
    _document_body_refusals(app)
    asyncapi = AsyncAPI(broker, title=title)

    @app.get("/healthz", tags=["ops"], summary="Healthy when the Kafka broker answers")
    async def healthz(response: Response) -> dict[str, str]:
        if not await broker.ping(timeout=2.0):
            response.status_code = 503
            return {"status": "kafka unreachable"}
        if ready is not None and not await ready():
            response.status_code = 503
            return {"status": "loading"}
        return {"status": "ok"}

    @app.get("/asyncapi.json", tags=["ops"], summary="The AsyncAPI document of this service")
    async def asyncapi_document() -> Any:
        return asyncapi.to_specification().to_jsonable()

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def exposition(accept: Annotated[str | None, Header()] = None) -> Response:
        # prometheus_client's own content negotiation (OpenMetrics when asked). Not its
        # `make_asgi_app`: that renders on the event loop, and this sync route renders in the
        # thread pool; mounted, it also answers `/metrics` with a redirect to `/metrics/`
        # and leaves the route out of the OpenAPI document.
        encoder, content_type = choose_encoder(accept or "")
        return Response(encoder(metrics), media_type=content_type)

    return app


def answer_invalid_bodies(app: FastAPI) -> None:
    """A 422 as FastAPI writes it, also for a body that is not UTF-8: FastAPI's own handler
    shows the body it could not read as text, and fails (a 500) on one that is not."""

    async def invalid(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        readable = {bytes: lambda raw: raw.decode("utf-8", "replace")}
        errors = jsonable_encoder(error.errors(), custom_encoder=readable)
        return JSONResponse({"detail": errors}, status_code=422)

    app.add_exception_handler(RequestValidationError, invalid)


def _docs_paths(app: FastAPI) -> frozenset[str]:
    """The interactive API docs load FastAPI's Swagger UI and ReDoc with inline scripts."""
    paths = (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    return frozenset(path for path in paths if path)


BODY_REFUSALS = {
    "400": {"description": "the body could not be read (not UTF-8, not JSON)"},
    "413": {"description": "the body is larger than this route accepts"},
}


def _document_body_refusals(app: FastAPI) -> None:
    """Any route with a body may be refused before it runs, by FastAPI's body parsing (400) or
    by the size limit (413): the OpenAPI document says so, since clients do meet them."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            for path in build()["paths"].values():
                for operation in path.values():
                    if "requestBody" in operation:
                        operation["responses"] = BODY_REFUSALS | operation["responses"]
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


async def _start_when_reachable(broker: KafkaBroker) -> None:
    for attempt in itertools.count():
        try:
            await broker.start()
            return
        except KAFKA_ERRORS as error:
            log.warning("Kafka unreachable (%s); connecting again shortly", error)
            await broker.stop()
            await asyncio.sleep(min(2**attempt, 10))
