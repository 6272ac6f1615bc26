"""Failed logins from one address, a few a minute at most: past them the address waits,
whatever it tries, so a token cannot be guessed by trying many."""

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class LoginGuard:
    def __init__(self, limit: str = "5/minute") -> None:
        self._limit = parse(limit)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def blocked(self, address: str) -> bool:
        return not self._limiter.test(self._limit, address)

    def failed(self, address: str) -> None:
        self._limiter.hit(self._limit, address)
