"""The registry as consumers see it: the latest record per key of the compacted registry topics."""

from dataclasses import dataclass, field

from contracts.events import PointRegistration, SessionSchedule


@dataclass
class RegistryTable:
    """Points and sessions folded from `registry.points` and `registry.sessions`.

    Applying the same record twice, or an older record again after a newer one was replaced, is
    harmless: the table only ever holds what the topic's latest record per key says.
    """

    points: dict[str, PointRegistration] = field(default_factory=dict)
    sessions: dict[str, SessionSchedule] = field(default_factory=dict)
    _by_token_hash: dict[str, str] = field(default_factory=dict)

    def put_point(self, point: PointRegistration) -> None:
        self.remove_point(point.code)
        self.points[point.code] = point
        if point.token_hash:
            self._by_token_hash[point.token_hash] = point.code

    def remove_point(self, code: str) -> None:
        old = self.points.pop(code, None)
        if old is not None and old.token_hash:
            self._by_token_hash.pop(old.token_hash, None)

    def put_session(self, session: SessionSchedule) -> None:
        self.sessions[session.code] = session

    def point_by_token_hash(self, token_hash: str) -> PointRegistration | None:
        code = self._by_token_hash.get(token_hash)
        return None if code is None else self.points.get(code)
