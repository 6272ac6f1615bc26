"""The people of the desk and what each role lets them do: the one decision every service
makes about a request from a named account.

- an administrator does everything, issuing and revoking accounts too;
- an operator (the desk) prepares and runs courses: reads and changes the registry;
- a province coordinator reads what belongs to their provinces and responds to what goes
  wrong there (acknowledges, assigns, annotates, resolves), and nothing else;
- a viewer reads everything and changes nothing.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMINISTRATOR = "administrator"
    OPERATOR = "operator"
    COORDINATOR = "coordinator"
    VIEWER = "viewer"


class Action(StrEnum):
    READ = "read"
    CHANGE = "change"
    RESPOND = "respond"  # to a point or an incident that went wrong
    MANAGE_ACCOUNTS = "manage_accounts"


ALLOWED: dict[Role, frozenset[Action]] = {
    Role.ADMINISTRATOR: frozenset(Action),
    Role.OPERATOR: frozenset({Action.READ, Action.CHANGE, Action.RESPOND}),
    Role.COORDINATOR: frozenset({Action.READ, Action.RESPOND}),
    Role.VIEWER: frozenset({Action.READ}),
}


class GrantError(ValueError):
    """A role and provinces that do not go together."""


def check_grant(role: Role, provinces: Iterable[str]) -> frozenset[str]:
    """The provinces of a grant: at least one for a coordinator, none for the other roles, who
    see the whole country (an operator limited to a province would be a coordinator)."""
    scope = frozenset(provinces)
    if role is Role.COORDINATOR and not scope:
        raise GrantError("a coordinator needs at least one province")
    if role is not Role.COORDINATOR and scope:
        raise GrantError(f"an account with role {role.value} sees every province: give none")
    return scope


@dataclass(frozen=True)
class Caller:
    """Who is asking: an account's name, its role, and a coordinator's provinces."""

    name: str
    role: Role
    provinces: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        check_grant(self.role, self.provinces)

    def may(self, action: Action) -> bool:
        return action in ALLOWED[self.role]

    def sees(self, province_code: str | None) -> bool:
        """Whether what belongs to `province_code` (None: to no province, as a Teams site or
        the studio) is this caller's to see."""
        return self.role is not Role.COORDINATOR or province_code in self.provinces

    @property
    def scope(self) -> frozenset[str] | None:
        """The provinces this caller is limited to; None for the whole country."""
        return self.provinces if self.role is Role.COORDINATOR else None
