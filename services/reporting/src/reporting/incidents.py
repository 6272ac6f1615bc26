"""Incidents, not noise: many points of one province (or channel) dropping together make one
incident as soon as they are shown disconnected; a drop on its own counts only once it has
lasted the grace, so scattered short flaps make nothing. Pure."""

from collections import deque
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts.events import PointState
from contracts.wire import PointRecord, PointStatusRecord

PRESENT = (PointState.CONNECTED, PointState.LATE)


@dataclass(frozen=True)
class IncidentRules:
    # A drop counts on its own once the point has stayed disconnected this long (flaps are
    # ignored)...
    grace: timedelta = timedelta(seconds=60)
    # ...and at once when it is one of drops this close together: a shared cause (the
    # province's bridge, its relay gateway), not a room's flap.
    together: timedelta = timedelta(seconds=15)
    # Drops of one province or channel within this window are one event.
    window: timedelta = timedelta(minutes=3)
    min_points: int = 5
    min_share: float = 0.3  # of the group's registered points

    def needed(self, registered: int) -> float:
        """How many drops of a group of `registered` points make an incident."""
        return max(self.min_points, self.min_share * registered)


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
        *,
        on_air: bool = True,
    ) -> None:
        """A point's new status (`before` its last one, None for its first): a drop from
        present counts against its province and channel; a present status ends any drop. A point
        that said it left (its status' `since` is its last heartbeat: attendance.domain.on_beat)
        did not drop, nor did one silent once its session was over (`on_air` at `since`)."""
        if after.state is PointState.DISCONNECTED and (before is None or before.state in PRESENT):
            if point is None or _left(after) or not on_air:
                return
            groups = [
                (after.session_code, "province", point.province_code or "--"),
                (after.session_code, "channel", point.channel.value),
            ]
            self.dropped(after.session_code, after.point_code, groups, after.since)
        elif after.state in PRESENT and before is not None:  # a first status has no drop to end
            self.back(after.session_code, after.point_code)

    def tick(
        self,
        now: datetime,
        registered: dict[GroupKey, int],
        on_air: Container[str] | None = None,
    ) -> tuple[list[Incident], list[Incident]]:
        """Confirm drops past the grace, open and close incidents (all of a session no longer
        `on_air`); returns (opened, closed)."""
        for (session, point), (at, groups) in list(self._down.items()):
            if now - at >= self.rules.grace:
                del self._down[(session, point)]
                self._confirmed_points.add((session, point))
                for key in groups:
                    self._confirmed.setdefault(key, deque()).append(_Drop(point, at))
        # The drops still within their grace, by group: many of them together are an incident.
        down_in: dict[GroupKey, dict[str, datetime]] = {}
        for (_, point), (at, groups) in self._down.items():
            for key in groups:
                down_in.setdefault(key, {})[point] = at
        opened, closed = [], []
        for key in self._confirmed.keys() | down_in.keys():
            drops = self._confirmed.setdefault(key, deque())
            while drops and now - drops[0].at > self.rules.window and key not in self.open:
                drops.popleft()
            down = down_in.get(key, {})
            needed = self.rules.needed(registered.get(key, 0))
            incident = self.open.get(key)
            if incident is None and len(drops) + self._together(down) >= needed:
                since = min([*(d.at for d in drops), *down.values()])
                incident = Incident(key[0], key[1], key[2], opened_at=since)
                self.open[key] = incident
                self.opened_total[key[1]] += 1
                opened.append(incident)
            if incident is not None:
                incident.points |= {d.point for d in drops} | down.keys()
                over = on_air is not None and key[0] not in on_air
                if over or len(drops) + len(down) < needed / 2:
                    incident.closed_at = now
                    closed.append(self.open.pop(key))
                    drops.clear()
        return opened, closed

    def _together(self, down: dict[str, datetime]) -> int:
        """The most drops within `together` of one another (one alone is not together)."""
        times = sorted(down.values())
        most, first = 0, 0
        for last, at in enumerate(times):
            while at - times[first] > self.rules.together:
                first += 1
            most = max(most, last - first + 1)
        return most if most > 1 else 0


def _left(status: PointStatusRecord) -> bool:
    return status.last_heartbeat_at is not None and status.since <= status.last_heartbeat_at
