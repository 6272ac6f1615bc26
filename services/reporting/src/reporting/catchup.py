"""Whether a whole-topic consumer is still reading what its topics held when it started.

While it is, the records are a table being loaded, and reporting stores them to compute the
totals once at the end (`LiveTotals.settle`) instead of folding each one in.
"""

import ctypes
import ctypes.util
from typing import Any


class CatchUp:
    def __init__(self) -> None:
        self._ends: dict[Any, int] | None = None
        self.done = False

    async def behind(self, consumer: Any) -> bool:
        """Whether records the topics held at the first batch are still to come after this
        batch (the consumer's positions are already past it)."""
        if self.done:
            return False
        if not hasattr(consumer, "end_offsets"):  # not a real consumer (a test broker)
            self.done = True
            return False
        if self._ends is None:
            self._ends = await consumer.end_offsets(list(consumer.assignment()))
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
