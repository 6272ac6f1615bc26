"""What every route needs: the caller known and allowed, a database session, errors as HTTP."""

import hmac
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session

from contracts.accounts import Action, Caller, Role
from registration.accounts import account_with_token, caller_of
from registration.commands import Conflict, Invalid, NotFound
from registration.importing import FileError

_bearer = HTTPBearer(auto_error=False)


class Refused(BaseModel):
    """Why a request changed nothing: the domain's reason, or FastAPI's list of field errors."""

    detail: str | list[dict[str, Any]]


BOOTSTRAP_ADMINISTRATOR = "operator"


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def database(engine: Annotated[Engine, Depends(engine_of)]) -> Iterator[Session]:
    with Session(engine) as db:
        yield db


Db = Annotated[Session, Depends(database)]


# The browser's login (the registry's pages): the token in an HttpOnly, SameSite=Strict cookie.
TOKEN_COOKIE = "registry_token"


def holder_of(request: Request, db: Session, token: str) -> Caller | None:
    """Whose `token` is: a live account, or the deployment's operator token, which stays the
    bootstrap administrator (it issues the first accounts); None for no one's."""
    bootstrap = request.app.state.operator_token.get_secret_value().encode()
    if hmac.compare_digest(token.encode(), bootstrap):
        return Caller(BOOTSTRAP_ADMINISTRATOR, Role.ADMINISTRATOR)
    account = account_with_token(db, token)
    return None if account is None else caller_of(account)


def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    db: Db,
) -> Caller:
    """Who holds the bearer token, or else the login's cookie."""
    presented = credentials.credentials if credentials else request.cookies.get(TOKEN_COOKIE)
    if not presented:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "token required", headers={"WWW-Authenticate": "Bearer"}
        )
    caller = holder_of(request, db, presented)
    if caller is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "not a token of a live account")
    return caller


Authenticated = Annotated[Caller, Depends(authenticated)]


def action_of(request: Request) -> Action:
    return Action.READ if request.method in ("GET", "HEAD") else Action.CHANGE


def authorised(request: Request, caller: Authenticated) -> Caller:
    """The caller, if their role allows what the request does to the registry."""
    return _allowed(caller, action_of(request))


def managing_accounts(caller: Authenticated) -> Caller:
    return _allowed(caller, Action.MANAGE_ACCOUNTS)


def _allowed(caller: Caller, action: Action) -> Caller:
    if not caller.may(action):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"role {caller.role.value} may not {action.value}"
        )
    return caller


Authorised = Annotated[Caller, Depends(authorised)]


_STATUS = {NotFound: 404, Conflict: 409, Invalid: 422, FileError: 422}


def translate_errors(app: FastAPI) -> None:
    """Refusals of the domain become 404, 409 or 422 with the reason; nothing was changed."""
    for kind, code in _STATUS.items():

        async def handler(_: Request, error: Exception, code: int = code) -> JSONResponse:
            return JSONResponse({"detail": str(error)}, status_code=code)

        app.add_exception_handler(kind, handler)
