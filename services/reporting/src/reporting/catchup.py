"""Whether reporting's table consumers are still loading what their topics held at start.

While one is, the records are a table being loaded, and reporting stores them to compute the
totals once at the end (`LiveTotals.settle`) instead of folding each one in.
"""

from typing import Any

from servicekit.catchup import CatchUp


class Tables:
    """The catch-up of every table consumer: the totals wait until all of them are loaded,
    since the first to finish would otherwise total everything once for nothing."""

    def __init__(self, *subscribers: Any) -> None:
        self._catch_ups = [(subscriber, CatchUp()) for subscriber in subscribers]

    async def loading(self) -> bool:
        for subscriber, catch_up in self._catch_ups:
            if await catch_up.behind(subscriber.consumer):
                return True
        return False
