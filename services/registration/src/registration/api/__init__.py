"""The registry's HTTP API, for the desk's accounts by their role."""

from fastapi import APIRouter, Depends, FastAPI
from pydantic import SecretStr
from sqlalchemy import Engine

from registration.api import accounts, courses, imports, points, sessions, sheets
from registration.api.access import TOKEN_COOKIE, Refused, authorised, translate_errors
from registration.config import POINT_PAGE
from servicekit.logins import Logins


def install(
    app: FastAPI, *, engine: Engine, operator_token: SecretStr, point_page: str = POINT_PAGE
) -> None:
    """Serve the registry API from `app`, on `engine`, to the desk's accounts and to the
    holder of `operator_token`, the bootstrap administrator; sheets link to `point_page`."""
    app.state.engine = engine
    app.state.operator_token = operator_token
    app.state.point_page = point_page
    app.state.logins = Logins(TOKEN_COOKIE)
    translate_errors(app)
    app.include_router(registry_router())
    app.include_router(accounts.router)


def registry_router() -> APIRouter:
    router = APIRouter(
        dependencies=[Depends(authorised)],
        responses={
            **accounts.REFUSALS,
            404: {"model": Refused, "description": "no such course, session or point"},
            409: {"model": Refused, "description": "already exists, or still in use"},
            422: {"model": Refused, "description": "invalid: nothing was changed"},
        },
    )
    for module in (courses, sessions, points, imports, sheets):
        router.include_router(module.router)
    return router
