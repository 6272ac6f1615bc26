"""A browser's login: a token traded once for an HttpOnly, SameSite=Strict cookie (no script
reads it, no other site sends it), and failed logins from one address a few a minute at most:
past them the address waits, whatever it tries, so a token cannot be guessed by trying many."""

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from fastapi import HTTPException, Request, Response, status
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

T = TypeVar("T")
# A working day and its evening: the desk logs in once before the broadcast.
LOGIN_LASTS = timedelta(hours=14)


class Logins:
    def __init__(self, cookie: str, limit: str = "5/minute") -> None:
        self.cookie = cookie
        self._limit = parse(limit)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def admit(
        self, request: Request, response: Response, token: str, holder: Callable[[str], T | None]
    ) -> T:
        """Whose `token` is (`holder` says; None: no one's), with the login's cookie set on
        `response`; 401 for no one's, 429 for an address past its failed tries."""
        address = request.client.host if request.client else "unknown"
        if not self._limiter.test(self._limit, address):
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed logins")
        who = holder(token)
        if who is None:
            self._limiter.hit(self._limit, address)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not the token of a live account")
        response.set_cookie(
            self.cookie,
            token,
            max_age=int(LOGIN_LASTS.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return who

    def forget(self, response: Response) -> None:
        response.delete_cookie(self.cookie, httponly=True, samesite="strict")
