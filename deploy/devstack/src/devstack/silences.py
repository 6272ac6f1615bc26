"""When each point's room really went silent, from the load's own requests: the yardstick of
false transitions, independent of the system and of the oracle.

A room is speaking while a request of its point is in flight (from the load's first action on a
socket for it to the last answer, retries included) and quiet between an answer and its next
request. At its pace that quiet lasts about an interval; one longer than `MISSED_BEAT`
intervals means the room missed a beat: the test stopped it on purpose, or it left, or the load
was too starved to act on a socket. The load may also stall as a whole, its event loop woken
late on a busy machine: its rooms were quiet by the load's fault (`stalled`). Only a status
whose claimed silence meets such a stretch may show the point late or disconnected. What the
load meant to do is no yardstick: on two busy cores a load that meant to beat every second was
seen to pause for five, and heartbeats it made reached the ingest up to 3.6 s later.
"""

import math
import time
from dataclasses import dataclass, field

from contracts.events import PointStatus

MISSED_BEAT = 1.5  # intervals of quiet
SILENT_STATES = ("late", "disconnected")


@dataclass
class Silences:
    interval: float
    # Per point: when it first spoke, when its last request ended (absent while one is in
    # flight), the stretches of missed beats so far, and when it said it was leaving.
    _first: dict[str, float] = field(default_factory=dict)
    _quiet_from: dict[str, float] = field(default_factory=dict)
    _missed: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    _left: dict[str, float] = field(default_factory=dict)
    # When the load's own event loop was woken late: no room of it spoke meanwhile.
    _stalls: list[tuple[float, float]] = field(default_factory=list)

    def speaking(self, code: str, at: float, *, leaving: bool = False) -> None:
        """A request of the point's begins (wall time)."""
        self._first.setdefault(code, at)
        quiet_from = self._quiet_from.pop(code, None)
        if quiet_from is not None and at - quiet_from > MISSED_BEAT * self.interval:
            self._missed.setdefault(code, []).append((quiet_from, at))
        if leaving:
            self._left.setdefault(code, at)

    def answered(self, code: str, at: float) -> None:
        """The point's request ended (an answer of any kind, or none)."""
        self._quiet_from[code] = at

    def stalled(self, began: float, ended: float) -> None:
        """The load's event loop ran nothing from `began` to `ended` (wall time)."""
        self._stalls.append((began, ended))

    def kept_sending(self, code: str, start: float, end: float, now: float | None = None) -> bool:
        """Whether the room spoke at its pace all through [start, end] (wall time)."""
        if self._first.get(code, math.inf) > start or self._left.get(code, math.inf) <= end:
            return False
        quiet = [*self._missed.get(code, []), *self._stalls]
        if (quiet_from := self._quiet_from.get(code)) is not None:
            now = time.time() if now is None else now
            if now - quiet_from > MISSED_BEAT * self.interval:
                quiet.append((quiet_from, math.inf))
        return not any(began < end and ended > start for began, ended in quiet)

    def steady(self, start: float, end: float | None = None) -> set[str]:
        """The points whose rooms spoke at their pace all through [start, end or now]."""
        end = time.time() if end is None else end
        return {code for code in self._first if self.kept_sending(code, start, end, end)}

    def counts(self) -> dict[str, float]:
        return {
            "missed_beat_stretches": sum(len(s) for s in self._missed.values()),
            "longest_missed_beat_s": round(
                max((e - b for s in self._missed.values() for b, e in s), default=0.0), 2
            ),
            "load_stalls": len(self._stalls),
            "longest_load_stall_s": round(max((e - b for b, e in self._stalls), default=0.0), 2),
        }


def false_transitions(
    history: dict[str, list[PointStatus]], silences: Silences
) -> dict[str, list[str]]:
    """Points shown late or disconnected at some moment although their room spoke at its pace
    all through the silence that status claims (from its last heartbeat to its `since`), with
    every state each was shown in."""
    return {
        code: [s.state.value for s in statuses]
        for code, statuses in history.items()
        if any(_false(s, silences) for s in statuses)
    }


def _false(status: PointStatus, silences: Silences) -> bool:
    if status.state.value not in SILENT_STATES:
        return False
    since = status.since.timestamp()
    last = status.last_heartbeat_at.timestamp() if status.last_heartbeat_at else since
    return silences.kept_sending(status.point_code, last, since)
