"""Schemathesis driven by hand: one bounded, reproducible Hypothesis run per operation of a
service's OpenAPI document, every answer checked and tallied by status for the report."""

from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# No 5xx, and every answer one the document promises, in the shape it promises.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
REQUEST_TIMEOUT_SECONDS = 15
Operation = APIOperation[Any, Any, Any, Any]
AnyCase = Case[Any]


@dataclass
class Tally:
    """Answers by status, over a whole run."""

    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def refused(self) -> int:
        return sum(n for status, n in self.statuses.items() if 400 <= status < 500)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def add(self, other: "Tally") -> None:
        self.statuses.update(other.statuses)

    def summary(self) -> str:
        by_status = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return f"{self.sent} requests ({by_status})"


def _nothing(*_: object) -> None:
    pass


# A login refuses an address after 5 failed tries a minute: a fuzzer is the very guesser it
# stops, and every test after it on the same stack, all from 127.0.0.1, would be locked out
# for that minute. Its answers (200, 401, 429, the cookie) are tested on their own:
# tests/component/test_reporting_router.py, tests/integration/test_registration_accounts.py.
GATES = frozenset({"POST /v1/login"})

Prepare = Callable[[AnyCase], None]
Inspect = Callable[[AnyCase, Response], None]


def fuzz(
    base_url: str,
    *,
    mode: GenerationMode,
    examples: int,
    prepare: Prepare = _nothing,
    inspect: Inspect = _nothing,
    only: Callable[[Operation], bool] = lambda _: True,
    skip: Collection[str] = (),
) -> Tally:
    """Fuzz every operation of the service at `base_url` (but `skip`ped labels, such as an
    endless event stream). `prepare` may change a case before it is sent (its credentials);
    `inspect` sees each answer after the checks passed."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    tally = Tally()
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        if operation.label in skip or operation.label in GATES or not only(operation):
            continue
        tally.add(_fuzz_operation(operation, base_url, mode, examples, prepare, inspect))
    return tally


def _fuzz_operation(
    operation: Operation,
    base_url: str,
    mode: GenerationMode,
    examples: int,
    prepare: Prepare,
    inspect: Inspect,
) -> Tally:
    tally = Tally()

    # Derandomized and without an example database: every run sends the same requests.
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: AnyCase) -> None:
        prepare(case)
        response = case.call(base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS)
        tally.statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)
        inspect(case, response)

    try:
        run()
    except Unsatisfiable:
        # Negative mode on an operation with nothing to violate (no parameters, no body).
        assert mode is GenerationMode.NEGATIVE, operation.label
    return tally
