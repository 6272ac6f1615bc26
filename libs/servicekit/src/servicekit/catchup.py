"""Whether a whole-topic consumer is still reading what its topics held when it started.

A service reading compacted topics as tables is not ready until it has read them to the end
offsets they had at its start: before that, a missing key may only be still to come.
"""

import ctypes
import ctypes.util
from typing import Any


class CatchUp:
    def __init__(self) -> None:
        self._ends: dict[Any, int] | None = None
        self.done = False

    async def behind(self, consumer: Any) -> bool:
        """Whether records the topics held when the consumer got its partitions are still to
        come (its positions are past the batches already handed out)."""
        if self.done:
            return False
        if not hasattr(consumer, "end_offsets"):  # not started, or not a real consumer
            return False
        if self._ends is None:
            assigned = list(consumer.assignment())
            if not assigned:  # no partitions yet: nothing to wait for, and no ends to take
                return False
            self._ends = await consumer.end_offsets(assigned)
        for partition, end in self._ends.items():
            if await consumer.position(partition) < end:
                return True
        self.done = True
        release_memory()
        return False


def release_memory() -> None:
    """Hand back to the system the memory a load's transient objects (fetched batches, raw
    records) left free between the records kept: without it the process stays at its peak."""
    libc = ctypes.util.find_library("c")
    if libc is not None:
        trim = getattr(ctypes.CDLL(libc), "malloc_trim", None)  # glibc only
        if trim is not None:
            trim(0)
