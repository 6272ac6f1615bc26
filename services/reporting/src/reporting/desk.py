"""The desk's own routes: who is asking (a token, or the cookie a login leaves in the browser),
logging in and out, and acting on what went wrong (acknowledge, assign, annotate, resolve).

An action is published on `desk.actions` before it is answered, and kept here at once: every
instance reads it from the topic too, so every desk shows it, and a restarted one rebuilds it.
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Self

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, Field, model_validator

from contracts.accounts import Action, Caller, Role
from contracts.events import SUBJECT_PATTERN, DeskAction
from contracts.events import Response as Doing
from reporting.access import (
    OPERATIONS_NETWORK,
    VIEWER_TOKEN_HOLDER,
    Accounts,
    Refused,
)
from reporting.actions import DeskLog
from reporting.live import LiveTotals
from reporting.lookup import session_view
from servicekit.kafka import KAFKA_ERRORS
from servicekit.logins import Logins

TOKEN_COOKIE = "desk_token"  # the login's (servicekit.logins)

Record = Callable[[DeskAction], Awaitable[None]]
Identify = Callable[[Request], Awaitable[Caller]]


def identifying(accounts: Accounts, viewer_token: str | None) -> Identify:
    """The dependency naming who asks: a bearer token, else `access_token=` (EventSource and
    links cannot send a header), else the login's cookie."""

    async def caller(request: Request) -> Caller:
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        presented = presented or request.query_params.get("access_token", "")
        presented = presented or request.cookies.get(TOKEN_COOKIE, "")
        try:
            return accounts.identify(presented, viewer_token)
        except Refused as refused:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, str(refused), headers={"WWW-Authenticate": "Bearer"}
            ) from None

    return caller


class Me(BaseModel):
    name: str
    role: Role
    provinces: list[str]
    may_respond: bool
    # A named account (logged in), not the viewer token or the open operations network.
    account: bool

    @classmethod
    def of(cls, caller: Caller) -> Self:
        return cls(
            account=caller not in (OPERATIONS_NETWORK, VIEWER_TOKEN_HOLDER),
            name=caller.name,
            role=caller.role,
            provinces=sorted(caller.provinces),
            may_respond=caller.may(Action.RESPOND),
        )


class Login(BaseModel):
    token: str = Field(min_length=1, max_length=200)


class ActionRequest(BaseModel):
    """What someone does: on `point:CODE`, or on an incident, `province:PP` or `channel:C`."""

    subject: str = Field(pattern=SUBJECT_PATTERN)
    response: Doing
    assignee: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def complete(self) -> Self:
        if self.response is Doing.ASSIGN and not self.assignee:
            raise ValueError("an assignment names the account it goes to (assignee)")
        if self.response is Doing.ANNOTATE and not (self.note or "").strip():
            raise ValueError("a note says something (note)")
        return self


def desk_router(
    live: LiveTotals,
    accounts: Accounts,
    desk: DeskLog,
    record: Record,
    identify: Identify,
    logins: Logins,
) -> APIRouter:
    router = APIRouter(
        prefix="/v1",
        tags=["desk"],
        responses={401: {"description": "no token where one is required, or not a live account's"}},
    )
    Asking = Annotated[Caller, Depends(identify)]

    @router.post(
        "/login",
        summary="Log in with an account's token: a cookie for the browser",
        responses={429: {"description": "too many failed logins from this address"}},
    )
    async def login(body: Login, request: Request, response: Response) -> Me:
        def holder(token: str) -> Caller | None:
            try:
                return accounts.identify(token, None)
            except Refused:
                return None

        return Me.of(logins.admit(request, response, body.token, holder))

    @router.post("/logout", summary="Forget the login's cookie", status_code=204)
    async def logout(response: Response) -> None:
        logins.forget(response)

    @router.get("/me", summary="Who is asking, and what they may do")
    async def me(asking: Asking) -> Me:
        return Me.of(asking)

    def sees(subject: str, asking: Caller) -> bool:
        """Whether the caller sees what `subject` names: a point of their provinces, their
        province's incident; a channel's incident spans provinces, and is national."""
        kind, _, code = subject.partition(":")
        if kind == "point":
            point = live.registry.points.get(code)
            return point is not None and asking.sees(point.province_code)
        return asking.sees(code) if kind == "province" else asking.scope is None

    @router.post(
        "/sessions/{session_code}/actions",
        summary="Acknowledge, assign, annotate or resolve a point or an incident",
        status_code=202,
        responses={
            403: {"description": "a viewer"},
            404: {"description": "unknown session, or nothing of the caller's to act on"},
            503: {"description": "Kafka away: the action was not recorded"},
        },
    )
    async def act(session_code: str, body: ActionRequest, asking: Asking) -> DeskAction:
        session_view(live, session_code)
        if not asking.may(Action.RESPOND):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"a {asking.role.value} only reads")
        kind, _, code = body.subject.partition(":")
        counted = kind != "point" or live.counts(session_code, code)
        if not (counted and sees(body.subject, asking)):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "nothing of the caller's to act on")
        if body.assignee is not None and not accounts.holds(body.assignee):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "no such account")
        action = DeskAction(
            id=uuid.uuid4().hex,
            session_code=session_code,
            subject=body.subject,
            response=body.response,
            by=asking.name,
            at=datetime.now(UTC),
            assignee=body.assignee if body.response is Doing.ASSIGN else None,
            note=body.note.strip() if body.note and body.response is Doing.ANNOTATE else None,
        )
        try:
            await record(action)
        except KAFKA_ERRORS as error:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"the action was not recorded ({error})"
            ) from None
        kept(live, desk, action)
        return action

    @router.get(
        "/sessions/{session_code}/actions",
        summary="What the desk did in the session",
        responses={404: {"description": "unknown session"}},
    )
    async def list_actions(session_code: str, asking: Asking) -> list[DeskAction]:
        session_view(live, session_code)
        return [a for a in desk.session(session_code) if sees(a.subject, asking)]

    return router


def kept(live: LiveTotals, desk: DeskLog, action: DeskAction) -> None:
    """Keep `action`; the first time, the session's streams are told something changed."""
    if desk.put(action):
        view = live.view(action.session_code)
        if view is not None:
            view.version += 1
