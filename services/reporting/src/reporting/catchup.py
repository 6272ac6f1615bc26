"""Whether reporting's table consumers are still loading what their topics held at start.

While one is, the records are a table being loaded, and reporting stores them to compute the
totals once at the end (`LiveTotals.settle`) instead of folding each one in.
"""

import asyncio
from collections.abc import Callable
from typing import Any

from servicekit.catchup import CatchUp


class Tables:
    """The catch-up of every table consumer: the totals wait until all of them are loaded,
    since the first to finish would otherwise total everything once for nothing."""

    def __init__(self, *subscribers: Any) -> None:
        self._catch_ups = [(subscriber, CatchUp()) for subscriber in subscribers]

    @property
    def loaded(self) -> bool:
        """Whether every table has been read to where it was at start (exact, once true)."""
        return all(catch_up.done for _, catch_up in self._catch_ups)

    async def loading(self) -> bool:
        for subscriber, catch_up in self._catch_ups:
            if await catch_up.behind(subscriber.consumer):
                return True
        return False

    async def settle_once_loaded(self, settle: Callable[[], None], every: float) -> None:
        """Call `settle` once every table is loaded, even when no record follows the last one.

        Read committed, a partition often ends with a transaction's commit marker, which the
        consumer reads past without handing a record to a handler: the handler of the last
        record saw its table still behind, and without this the totals would wait for the next
        record (tests/integration/test_reporting_tables.py shows it on the broker).
        """
        while not self.loaded:
            await self.loading()
            await asyncio.sleep(every)
        settle()
