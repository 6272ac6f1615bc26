"""How `devstack up` stops: the first Ctrl-C, SIGTERM or SIGHUP stops everything in order; a
second one, once the first was taken, kills what is left and exits at once.

Inside the event loop a signal cancels the running coroutine (the loop's own signal handlers), so
no task is ever interrupted half-way by a KeyboardInterrupt; outside it (starting up, stopping
the services) it raises KeyboardInterrupt, which unwinds what was started. One Ctrl-C through
`uv run` can arrive twice (from the terminal and forwarded by uv): a signal within
`SAME_PRESS_SECONDS` of the first is that same press.
"""

import asyncio
import os
import signal
import time
from collections.abc import Callable, Coroutine
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SAME_PRESS_SECONDS = 0.5
FORCED_EXIT_STATUS = 130


class Stopper:
    def __init__(self, say: Callable[[str], None], force: Callable[[], None]) -> None:
        self._say, self._force = say, force
        self._asked_at: float | None = None
        self._previous: dict[int, Any] = {}

    @property
    def asked(self) -> bool:
        return self._asked_at is not None

    def __enter__(self) -> "Stopper":
        self._previous = {signum: signal.signal(signum, self._on_signal) for signum in SIGNALS}
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return kind is KeyboardInterrupt and self.asked  # the stop we were asked for, done

    async def run(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` until it ends, or until a signal asks to stop: then cancel it."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(work)

        def on_signal() -> None:
            if self._take():
                task.cancel()

        for signum in SIGNALS:
            loop.add_signal_handler(signum, on_signal)
        try:
            await task
        except asyncio.CancelledError:
            if not self.asked:
                raise
        finally:
            for signum in SIGNALS:
                loop.remove_signal_handler(signum)
                signal.signal(signum, self._on_signal)  # the loop put the default one back

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._take():
            raise KeyboardInterrupt

    def _take(self) -> bool:
        """Whether this signal is the first; a later press forces."""
        now = time.monotonic()
        if self._asked_at is None:
            self._asked_at = now
            self._say("Stopping the simulation, the services and the broker… (again to force)")
            return True
        if now - self._asked_at >= SAME_PRESS_SECONDS:
            self._say("Forced: killing what is left.")
            self._force()
            os._exit(FORCED_EXIT_STATUS)
        return False
