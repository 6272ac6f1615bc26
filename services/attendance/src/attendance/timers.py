"""Deadlines by the hundred thousand, where a tick costs what expires, not what is tracked.

A hashed timing wheel: keys sit in slots of `resolution` seconds. A key's deadline is the truth;
rescheduling it adds the key to its new slot and leaves the old slot's entry to be dropped when
that slot's time comes (lazy deletion: a point rescheduled on every heartbeat costs one set
insert, not a removal and an insert). `pop_due` only visits slots whose time has come, so the
cost of a tick follows the number of keys that expire rather than the number of keys held.
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
        # Each slot's keys, some of them since moved to a later slot or cancelled.
        self._slots: dict[int, set[K]] = {}
        self._slot_heap: list[int] = []

    def __len__(self) -> int:
        return len(self._deadline)

    def schedule(self, key: K, at: float | None) -> None:
        """Set (or with None, cancel) the one deadline of `key`."""
        if at is None:
            self.cancel(key)
            return
        earlier = self._deadline.get(key)
        self._deadline[key] = at
        slot = self._slot(at)
        if earlier is not None and self._slot(earlier) == slot:
            return
        members = self._slots.get(slot)
        if members is None:
            members = self._slots[slot] = set()
            heapq.heappush(self._slot_heap, slot)
        members.add(key)

    def cancel(self, key: K) -> None:
        self._deadline.pop(key, None)

    def pop_due(self, now: float) -> list[K]:
        """Remove and return every key whose deadline is at or before `now`."""
        due: list[K] = []
        deadlines = self._deadline
        while self._slot_heap and self._slot_heap[0] * self._resolution <= now:
            slot = self._slot_heap[0]
            members = self._slots[slot]
            later: set[K] = set()
            for key in members:
                at = deadlines.get(key)
                if at is None or self._slot(at) != slot:
                    continue  # cancelled, or moved to another slot since
                if at <= now:
                    due.append(key)
                    del deadlines[key]
                else:
                    later.add(key)
            if later:
                # The rest of this slot lies in the future, and so does every later slot.
                self._slots[slot] = later
                break
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
