"""Waiting for an eventually consistent system without sleeping blindly."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], patience: float = 45.0
) -> T:
    """Poll `probe` until `until` holds of its result; fail with the last result seen.

    The patience only stops a broken system from hanging the suite: it is not a speed claim.
    """
    deadline = time.monotonic() + patience
    last = await probe()
    while not until(last):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition never held; last seen: {last!r}")
        await asyncio.sleep(0.2)
        last = await probe()
    return last
