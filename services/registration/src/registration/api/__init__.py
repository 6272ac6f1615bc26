"""The registry's HTTP API: operator routes only."""

from fastapi import APIRouter, Depends, FastAPI
from pydantic import SecretStr
from sqlalchemy import Engine

from registration.api import courses, imports, points, sessions
from registration.api.access import Refused, require_operator, translate_errors


def install(app: FastAPI, *, engine: Engine, operator_token: SecretStr) -> None:
    """Serve the registry API from `app`, on `engine`, for holders of `operator_token`."""
    app.state.engine = engine
    app.state.operator_token = operator_token
    translate_errors(app)
    app.include_router(registry_router())


def registry_router() -> APIRouter:
    router = APIRouter(
        dependencies=[Depends(require_operator)],
        responses={
            401: {"description": "no operator token"},
            403: {"description": "not an operator token"},
            404: {"model": Refused, "description": "no such course, session or point"},
            409: {"model": Refused, "description": "already exists, or still in use"},
            422: {"model": Refused, "description": "invalid: nothing was changed"},
        },
    )
    for module in (courses, sessions, points, imports):
        router.include_router(module.router)
    return router
