"""Reporting's callers: accounts heard from registry.accounts, the viewer token, the open
network; and a coordinator's totals summed from their provinces."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.accounts import Role
from contracts.events import AccountGrant, Counts, Totals
from contracts.tokens import hash_token
from reporting.access import (
    OPERATIONS_NETWORK,
    VIEWER_TOKEN_HOLDER,
    Accounts,
    Refused,
    scoped,
)

COORDINATOR = AccountGrant(
    name="lan", role=Role.COORDINATOR, provinces=("01",), token_hash=hash_token("ac_lan")
)


def test_an_account_is_known_by_its_token_until_rotated_or_revoked() -> None:
    accounts = Accounts()
    accounts.put("lan", COORDINATOR)
    caller = accounts.identify("ac_lan", None)
    assert (caller.name, caller.role, caller.provinces) == (
        "lan",
        Role.COORDINATOR,
        frozenset({"01"}),
    )
    accounts.put("lan", COORDINATOR.model_copy(update={"token_hash": hash_token("ac_new")}))
    with pytest.raises(Refused):
        accounts.identify("ac_lan", None)
    assert accounts.identify("ac_new", None).name == "lan"
    accounts.put("lan", COORDINATOR.model_copy(update={"token_hash": None}))
    with pytest.raises(Refused):
        accounts.identify("ac_new", None)
    accounts.put("lan", COORDINATOR)
    accounts.put("lan", None)  # a tombstone
    with pytest.raises(Refused):
        accounts.identify("ac_lan", None)


def test_no_token_reads_as_the_operations_network_only_where_no_viewer_token_is_set() -> None:
    accounts = Accounts()
    assert accounts.identify("", None) is OPERATIONS_NETWORK
    with pytest.raises(Refused):
        accounts.identify("", "viewer-secret")
    assert accounts.identify("viewer-secret", "viewer-secret") is VIEWER_TOKEN_HOLDER
    with pytest.raises(Refused):
        accounts.identify("a-guess", None)  # presented, so it must be good


counts = st.builds(
    Counts,
    registered=st.integers(0, 500),
    connected=st.integers(0, 500),
    late=st.integers(0, 500),
    disconnected=st.integers(0, 500),
    never_connected=st.integers(0, 500),
    learners_present=st.integers(0, 20_000),
    learners_expected=st.integers(0, 20_000),
)


@given(
    st.dictionaries(st.sampled_from(["01", "04", "38", "79"]), counts),
    st.frozensets(st.sampled_from(["01", "38", "96"]), min_size=1),
)
def test_a_coordinator_sees_the_sum_of_their_provinces_and_nothing_else(
    by_province: dict[str, Counts], provinces: frozenset[str]
) -> None:
    national = Totals(
        session_code="S1",
        as_of=datetime.now(UTC),
        peak_connected=9_999,
        by_channel={"teams": Counts(**dict.fromkeys(Counts.model_fields, 1))},
        by_province=by_province,
        **dict.fromkeys(Counts.model_fields, 10_000),
    )
    theirs = scoped(national, provinces)
    assert set(theirs.by_province) == set(by_province) & provinces
    for field in Counts.model_fields:
        expected = sum(getattr(by_province[p], field) for p in theirs.by_province)
        assert getattr(theirs, field) == expected
    assert theirs.by_channel == {} and theirs.by_level == {} and theirs.peak_connected == 0
    assert scoped(national, None) is national
