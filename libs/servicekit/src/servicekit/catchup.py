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
        come (its positions are past the batches already handed out).

        Exact only in a handler, once it applied its batch. Asked anywhere else it may answer
        early: FastStream has taken the batch from the consumer (its positions moved past it)
        before the handler applied it, and a table read at that moment lacks the batch."""
        if self.done:
            return False
        ends = await self._ends_of(consumer)
        if ends is None:
            return False
        for partition, end in ends.items():
            if await consumer.position(partition) < end:
                return True
        self._loaded()
        return False

    async def held_nothing(self, consumer: Any) -> bool:
        """Whether the topics held no record when the consumer got its partitions: loaded,
        with no handler ever to say so. Exact anywhere."""
        if not self.done and (ends := await self._ends_of(consumer)) is not None:
            starts = await consumer.beginning_offsets(list(ends))
            if all(end <= starts[partition] for partition, end in ends.items()):
                self._loaded()
        return self.done

    async def _ends_of(self, consumer: Any) -> dict[Any, int] | None:
        if self._ends is None:
            if not hasattr(consumer, "end_offsets"):  # not started, or not a real consumer
                return None
            assigned = list(consumer.assignment())
            if not assigned:  # no partitions yet: nothing to wait for, and no ends to take
                return None
            self._ends = await consumer.end_offsets(assigned)
        return self._ends

    def _loaded(self) -> None:
        self.done = True
        release_memory()


def release_memory() -> None:
    """Hand back to the system the memory a load's transient objects (fetched batches, raw
    records) left free between the records kept: without it the process stays at its peak."""
    libc = ctypes.util.find_library("c")
    if libc is not None:
        trim = getattr(ctypes.CDLL(libc), "malloc_trim", None)  # glibc only
        if trim is not None:
            trim(0)
