"""The desk's accounts: issued, listed, rotated and revoked by an administrator; and who am I."""

from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, Field

from contracts.accounts import Role
from registration import accounts
from registration.accounts import AccountCreate, AccountPublic, IssuedAccount
from registration.api.access import (
    Authenticated,
    Db,
    Refused,
    holder_of,
    managing_accounts,
)
from servicekit.logins import Logins

REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no token"},
    403: {"description": "not a live account's token, or its role does not allow this"},
}

router = APIRouter(prefix="/v1", tags=["accounts"], responses=REFUSALS)
managed = APIRouter(
    prefix="/accounts",
    dependencies=[Depends(managing_accounts)],
    responses={
        404: {"model": Refused, "description": "no such account"},
        409: {"model": Refused, "description": "already exists"},
        422: {"model": Refused, "description": "invalid: nothing was changed"},
    },
)


class Me(BaseModel):
    name: str
    role: Role
    provinces: list[str]


class Login(BaseModel):
    token: str = Field(min_length=1, max_length=200)


@router.post(
    "/login",
    summary="Log in with a token: a cookie for the registry's pages",
    responses={429: {"description": "too many failed logins from this address"}},
)
def login(body: Login, request: Request, response: Response, db: Db) -> Me:
    logins: Logins = request.app.state.logins
    caller = logins.admit(
        request, response, body.token, lambda token: holder_of(request, db, token)
    )
    return Me(name=caller.name, role=caller.role, provinces=sorted(caller.provinces))


@router.post("/logout", summary="Forget the login's cookie", status_code=204)
def logout(request: Request, response: Response) -> None:
    request.app.state.logins.forget(response)


@router.get("/me", summary="The account the token belongs to")
def me(caller: Authenticated) -> Me:
    return Me(name=caller.name, role=caller.role, provinces=sorted(caller.provinces))


@managed.post("", status_code=status.HTTP_201_CREATED, summary="Issue an account and its token")
def post_account(account_in: AccountCreate, db: Db) -> IssuedAccount:
    account, token = accounts.issue_account(db=db, account_in=account_in)
    return IssuedAccount(account=AccountPublic.model_validate(account), token=token)


@managed.get("")
def list_accounts(db: Db) -> list[AccountPublic]:
    return [AccountPublic.model_validate(a) for a in accounts.list_accounts(db)]


@managed.post("/{name}/token", status_code=status.HTTP_201_CREATED, summary="A new token")
def rotate_token(name: str, db: Db) -> IssuedAccount:
    token = accounts.rotate_account_token(db=db, name=name)
    account = accounts.get_account(db=db, name=name)
    return IssuedAccount(account=AccountPublic.model_validate(account), token=token)


@managed.delete("/{name}/token", summary="Revoke the account: its token stops working at once")
def revoke(name: str, db: Db) -> AccountPublic:
    return AccountPublic.model_validate(accounts.revoke_account(db=db, name=name))


router.include_router(managed)
