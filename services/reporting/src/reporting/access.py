"""Who is asking reporting, and what of a session they may see.

The desk's accounts come from `registry.accounts` (registration issues them): a token is known
by its hash, a revoked one is forgotten. The viewer token (`REPORTING_VIEWER_TOKEN`) reads like
a viewer account. With no viewer token set, a request with no token reads as a viewer, as
inside the operations network before accounts existed; a token that is presented must be good.

A coordinator's totals are those of their provinces: summed from the provinces' counts, which
the national totals already hold, with no breakdown by channel or level and no national peak.
"""

import hmac

from contracts.accounts import Caller, Role
from contracts.events import AccountGrant, Counts, Totals
from contracts.tokens import hash_token

VIEWER_TOKEN_HOLDER = Caller("viewer token", Role.VIEWER)
OPERATIONS_NETWORK = Caller("operations network", Role.VIEWER)


class Refused(Exception):
    """No caller: a token that no live account holds, or none where one is required."""


class Accounts:
    """The live accounts, by the hash of their token."""

    def __init__(self) -> None:
        self._callers: dict[str, Caller] = {}
        self._hash_of: dict[str, str] = {}

    def put(self, name: str, grant: AccountGrant | None) -> None:
        """The account's latest grant; None (a tombstone) or no token hash: it is gone."""
        known = self._hash_of.pop(name, None)
        if known is not None:
            del self._callers[known]
        if grant is not None and grant.token_hash is not None:
            self._callers[grant.token_hash] = Caller(name, grant.role, frozenset(grant.provinces))
            self._hash_of[name] = grant.token_hash

    def holds(self, name: str) -> bool:
        """Whether `name` is a live account (one a trouble can be assigned to)."""
        return name in self._hash_of

    def identify(self, presented: str, viewer_token: str | None) -> Caller:
        if not presented:
            if viewer_token is None:
                return OPERATIONS_NETWORK
            raise Refused("a token is required")
        if viewer_token is not None and hmac.compare_digest(
            presented.encode(), viewer_token.encode()
        ):
            return VIEWER_TOKEN_HOLDER
        caller = self._callers.get(hash_token(presented))
        if caller is None:
            raise Refused("not the token of a live account")
        return caller


def scoped(totals: Totals, provinces: frozenset[str] | None) -> Totals:
    """The totals as a caller limited to `provinces` sees them (None: the whole country)."""
    if provinces is None:
        return totals
    by_province = {p: c for p, c in totals.by_province.items() if p in provinces}
    overall = {field: 0 for field in Counts.model_fields}
    for counts in by_province.values():
        for field in overall:
            overall[field] += getattr(counts, field)
    return Totals(
        session_code=totals.session_code,
        as_of=totals.as_of,
        judged_until=totals.judged_until,
        unknown=totals.unknown,
        **overall,
        by_province=by_province,
    )
