"""The registry as attendance keeps it: with each point's expected learners as plain ints."""

from dataclasses import dataclass, field

from contracts.events import PointRegistration
from contracts.registry import RegistryTable


@dataclass
class Registry(RegistryTable):
    # Asked for on every heartbeat (`attendance.quality`): at 100,000 points a lookup through
    # the registrations' models took four times one in a dict of ints.
    expected_learners: dict[str, int] = field(default_factory=dict)

    def put_point(self, point: PointRegistration) -> None:
        super().put_point(point)
        self.expected_learners[point.code] = point.expected_learners

    def remove_point(self, code: str) -> None:
        super().remove_point(code)
        self.expected_learners.pop(code, None)
