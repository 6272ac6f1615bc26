"""Incidents, not noise: many points of one province (or channel) dropping within a short
window make one incident; a short flap (back within the grace period) makes nothing. Pure."""

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts.events import PointState
from contracts.wire import PointRecord, PointStatusRecord

PRESENT = (PointState.CONNECTED, PointState.LATE)


@dataclass(frozen=True)
class IncidentRules:
    # A drop counts once the point has stayed disconnected this long (flaps are ignored).
    grace: timedelta = timedelta(seconds=60)
    # Drops of one province or channel within this window are one event.
    window: timedelta = timedelta(minutes=3)
    min_points: int = 5
    min_share: float = 0.3  # of the group's registered points


@dataclass
class Incident:
    session_code: str
    kind: str  # "province" or "channel"
    group: str  # the province code or the channel
    opened_at: datetime
    points: set[str] = field(default_factory=set)
    closed_at: datetime | None = None


GroupKey = tuple[str, str, str]  # (session, kind, group)


@dataclass
class _Drop:
    point: str
    at: datetime


class IncidentDetector:
    def __init__(self, rules: IncidentRules = IncidentRules()) -> None:
        self.rules = rules
        self._down: dict[tuple[str, str], tuple[datetime, list[GroupKey]]] = {}
        self._confirmed: dict[GroupKey, deque[_Drop]] = {}
        self._confirmed_points: set[tuple[str, str]] = set()
        self.open: dict[GroupKey, Incident] = {}
        self.opened_total: dict[str, int] = {"province": 0, "channel": 0}

    def dropped(self, session: str, point: str, groups: list[GroupKey], at: datetime) -> None:
        """The point went disconnected at `at` (its status' `since`)."""
        self._down.setdefault((session, point), (at, groups))

    def back(self, session: str, point: str) -> None:
        """The point is connected again (or gone from the registry)."""
        self._down.pop((session, point), None)
        # Called for every status of a present point: only a confirmed drop needs the search.
        if (session, point) not in self._confirmed_points:
            return
        self._confirmed_points.discard((session, point))
        for key, drops in self._confirmed.items():
            if key[0] == session:
                remaining = [d for d in drops if d.point != point]
                drops.clear()
                drops.extend(remaining)
        for incident in self.open.values():
            incident.points.discard(point)

    def status_changed(
        self,
        before: PointStatusRecord | None,
        after: PointStatusRecord,
        point: PointRecord | None,
    ) -> None:
        """A point's new status (`before` its last one, None for its first): a drop from
        present counts against its province and channel; a present status ends any drop."""
        if after.state is PointState.DISCONNECTED and (before is None or before.state in PRESENT):
            if point is None:
                return
            groups = [
                (after.session_code, "province", point.province_code or "--"),
                (after.session_code, "channel", point.channel.value),
            ]
            self.dropped(after.session_code, after.point_code, groups, after.since)
        elif after.state in PRESENT and before is not None:  # a first status has no drop to end
            self.back(after.session_code, after.point_code)

    def tick(
        self, now: datetime, registered: dict[GroupKey, int]
    ) -> tuple[list[Incident], list[Incident]]:
        """Confirm drops past the grace, open and close incidents; returns (opened, closed)."""
        for (session, point), (at, groups) in list(self._down.items()):
            if now - at >= self.rules.grace:
                del self._down[(session, point)]
                self._confirmed_points.add((session, point))
                for key in groups:
                    self._confirmed.setdefault(key, deque()).append(_Drop(point, at))
        opened, closed = [], []
        for key, drops in self._confirmed.items():
            while drops and now - drops[0].at > self.rules.window and key not in self.open:
                drops.popleft()
            needed = max(self.rules.min_points, self.rules.min_share * registered.get(key, 0))
            incident = self.open.get(key)
            if incident is None and len(drops) >= needed:
                incident = Incident(
                    key[0], key[1], key[2], opened_at=drops[0].at, points={d.point for d in drops}
                )
                self.open[key] = incident
                self.opened_total[key[1]] += 1
                opened.append(incident)
            elif incident is not None:
                incident.points |= {d.point for d in drops}
                if len(drops) < needed / 2:
                    incident.closed_at = now
                    closed.append(self.open.pop(key))
                    drops.clear()
        return opened, closed
