"""Deadlines by the hundred thousand, where a tick costs what expires, not what is tracked.

A hashed timing wheel: keys sit in slots of `resolution` seconds. Rescheduling a key is two set
operations, and `pop_due` only visits slots whose time has come, so the cost of a tick follows the
number of keys that expire rather than the number of keys held.
"""

import heapq
import math
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class DeadlineWheel(Generic[K]):
    def __init__(self, resolution: float = 0.1) -> None:
        self._resolution = resolution
        # A key's slot follows from its deadline: no second table of them (memory per point).
        self._deadline: dict[K, float] = {}
        self._slots: dict[int, set[K]] = {}
        self._slot_heap: list[int] = []

    def __len__(self) -> int:
        return len(self._deadline)

    def schedule(self, key: K, at: float | None) -> None:
        """Set (or with None, cancel) the one deadline of `key`."""
        self.cancel(key)
        if at is None:
            return
        slot = self._slot(at)
        self._deadline[key] = at
        members = self._slots.get(slot)
        if members is None:
            members = self._slots[slot] = set()
            heapq.heappush(self._slot_heap, slot)
        members.add(key)

    def cancel(self, key: K) -> None:
        at = self._deadline.pop(key, None)
        if at is None:
            return
        self._slots[self._slot(at)].discard(key)
        # An emptied slot stays in the heap until `pop_due` reaches it: cheaper than a heap delete.

    def pop_due(self, now: float) -> list[K]:
        """Remove and return every key whose deadline is at or before `now`."""
        due: list[K] = []
        while self._slot_heap and self._slot_heap[0] * self._resolution <= now:
            slot = self._slot_heap[0]
            members = self._slots[slot]
            ripe = [key for key in members if self._deadline[key] <= now]
            for key in ripe:
                members.discard(key)
                del self._deadline[key]
            due.extend(ripe)
            if members:
                break  # the rest of this slot lies in the future, and so does every later slot
            heapq.heappop(self._slot_heap)
            del self._slots[slot]
        return due

    def scheduled(self) -> list[K]:
        """Every key with a deadline, as a list: the caller may reschedule them meanwhile."""
        return list(self._deadline)

    def deadline_of(self, key: K) -> float | None:
        return self._deadline.get(key)

    def _slot(self, at: float) -> int:
        return math.floor(at / self._resolution)
