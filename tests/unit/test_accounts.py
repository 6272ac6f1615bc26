"""What each role may do, and what a coordinator may see."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.accounts import ALLOWED, Action, Caller, GrantError, Role, check_grant

provinces = st.frozensets(st.sampled_from(["01", "04", "38", "79"]), max_size=4)


def test_the_roles_allow_what_the_desk_was_promised() -> None:
    assert {role: set(ALLOWED[role]) for role in Role} == {
        Role.ADMINISTRATOR: {Action.READ, Action.CHANGE, Action.RESPOND, Action.MANAGE_ACCOUNTS},
        Role.OPERATOR: {Action.READ, Action.CHANGE, Action.RESPOND},
        Role.COORDINATOR: {Action.READ, Action.RESPOND},
        Role.VIEWER: {Action.READ},
    }


@given(st.sampled_from(Role), provinces)
def test_only_a_coordinator_has_provinces_and_always_some(
    role: Role, scope: frozenset[str]
) -> None:
    valid = bool(scope) == (role is Role.COORDINATOR)
    if valid:
        assert check_grant(role, scope) == scope
        assert Caller("someone", role, scope).scope == (scope if scope else None)
    else:
        with pytest.raises(GrantError):
            Caller("someone", role, scope)


@given(st.sampled_from(Role), provinces, st.one_of(st.none(), st.sampled_from(["01", "38", "96"])))
def test_a_coordinator_sees_only_their_provinces_and_the_others_see_all(
    role: Role, scope: frozenset[str], province: str | None
) -> None:
    grant = scope if role is Role.COORDINATOR else frozenset()
    if role is Role.COORDINATOR and not grant:
        grant = frozenset({"04"})
    caller = Caller("someone", role, grant)
    assert caller.sees(province) == (role is not Role.COORDINATOR or province in grant)
