"""Where the learner count comes from: a fixed number, a file the room's operator edits, or
what the operator types in the terminal while the agent runs."""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

MAX_LEARNERS = 1_000_000  # the server's bound (contracts.events.Count)


class LearnerCountError(ValueError):
    """A learner count that cannot be used; the message says why, for the operator."""


@dataclass(frozen=True)
class Reading:
    count: int
    problem: str | None = None  # why the count is the last good one, not a fresh one


class LearnerSource(Protocol):
    def read(self) -> Reading:
        """The count to send now; never fails once the source has given one good count."""
        ...


def parse_count(text: str) -> int:
    """A learner count as a person writes it ('37', ' 37\\n'), or why it is not one."""
    stripped = text.strip()
    try:
        count = int(stripped)
    except ValueError:
        raise LearnerCountError(f"{stripped!r} is not a whole number of learners") from None
    if not 0 <= count <= MAX_LEARNERS:
        raise LearnerCountError(f"{count} learners is out of range (0 to {MAX_LEARNERS:,})")
    return count


@dataclass(frozen=True)
class FixedCount:
    count: int

    def read(self) -> Reading:
        return Reading(self.count)


class FileCount:
    """The number in a file, read again before every heartbeat so the operator can edit it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Fails at once: an agent started on an unusable file has nothing true to send.
        problem, count = self._attempt()
        if count is None:
            raise LearnerCountError(problem)
        self._last_good = count

    def read(self) -> Reading:
        problem, count = self._attempt()
        if count is None:
            return Reading(self._last_good, problem)
        self._last_good = count
        return Reading(count)

    def _attempt(self) -> tuple[str, int | None]:
        try:
            return "", parse_count(self.path.read_text(encoding="utf-8", errors="replace"))
        except OSError as error:
            return f"cannot read the learners file {self.path}: {error.strerror}", None
        except LearnerCountError as error:
            return f"the learners file {self.path} holds no usable count: {error}", None


class TypedCount:
    """What the operator types: a first count asked before anything is sent, then any new
    number typed while the agent runs replaces it."""

    def __init__(self, first: int) -> None:
        # An int assignment is atomic under the GIL: the reader thread writes, the loop reads.
        self._count = first

    def read(self) -> Reading:
        return Reading(self._count)

    def listen(self, lines: TextIO, say: Callable[[str], None]) -> threading.Thread:
        """Read new counts from `lines` in a daemon thread (it must not keep the agent alive
        once it is asked to stop)."""
        thread = threading.Thread(
            target=self._keep_reading, args=(lines, say), name="learner-prompt", daemon=True
        )
        thread.start()
        return thread

    def _keep_reading(self, lines: TextIO, say: Callable[[str], None]) -> None:
        for line in lines:
            if not line.strip():
                continue
            # A good number needs no echo here: the agent says "learners: N" as it sends it.
            try:
                self._count = parse_count(line)
            except LearnerCountError as error:
                say(f"{error}; type the number of learners in the room")


def ask_first_count(ask: Callable[[str], str], say: Callable[[str], None]) -> int:
    """Ask until the operator gives a usable count."""
    while True:
        try:
            return parse_count(ask("Learners in the room now: "))
        except LearnerCountError as error:
            say(str(error))
