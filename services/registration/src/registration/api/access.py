"""What every route needs: the operator's token checked, a database session, errors as HTTP."""

import hmac
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session

from registration.commands import Conflict, Invalid, NotFound
from registration.importing import FileError

_bearer = HTTPBearer(auto_error=False)


class Refused(BaseModel):
    """Why a request changed nothing: the domain's reason, or FastAPI's list of field errors."""

    detail: str | list[dict[str, Any]]


def require_operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "operator token required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = request.app.state.operator_token.get_secret_value().encode()
    if not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "not an operator token")


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def database(engine: Annotated[Engine, Depends(engine_of)]) -> Iterator[Session]:
    with Session(engine) as db:
        yield db


Db = Annotated[Session, Depends(database)]

_STATUS = {NotFound: 404, Conflict: 409, Invalid: 422, FileError: 422}


def translate_errors(app: FastAPI) -> None:
    """Refusals of the domain become 404, 409 or 422 with the reason; nothing was changed."""
    for kind, code in _STATUS.items():

        async def handler(_: Request, error: Exception, code: int = code) -> JSONResponse:
            return JSONResponse({"detail": str(error)}, status_code=code)

        app.add_exception_handler(kind, handler)
