"""Token buckets per key: how often each connection point may be heard, on its own.

Pure: the caller passes the time, so the rules can be tested without waiting.
"""

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """A bucket of `capacity` tokens per key, refilled at `rate` tokens per second.

    A key may spend a burst of `capacity` at once and `rate` per second for ever after; each
    key's bucket is its own, so one key spending everything never slows another.

    Memory follows the keys heard from recently: a bucket left alone for `capacity / rate`
    seconds is full again, and a full bucket is exactly what an unknown key gets, so it is
    dropped. Buckets are kept in the order they were last touched, so the ones to drop are at
    the front and each is dropped once: every call costs O(1) amortised.
    """

    def __init__(self, capacity: float, rate: float) -> None:
        if capacity < 1:
            raise ValueError("capacity must allow at least one call")
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.capacity = capacity
        self.rate = rate
        self._refill_seconds = capacity / rate
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str, now: float) -> float | None:
        """Spend one token of `key` at `now` (seconds, from a clock that does not go back).

        None if allowed; otherwise the whole seconds to wait before a token is there again,
        at least 1, for a `Retry-After` header. A refused call spends nothing.
        """
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(self.capacity, now)
        else:
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(self.capacity, bucket.tokens + elapsed * self.rate)
            bucket.at = max(bucket.at, now)
        self._buckets[key] = bucket  # now the most recently touched
        self._forget_full(now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        wait = (1 - bucket.tokens) / self.rate
        return float(max(1, math.ceil(wait)))

    def __len__(self) -> int:
        """How many buckets are held (the keys heard from within the refill time)."""
        return len(self._buckets)

    def _forget_full(self, now: float) -> None:
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now - oldest.at < self._refill_seconds:
                return
            self._buckets.popitem(last=False)
