"""Every HTTP API fuzzed from its own OpenAPI document (schemathesis), against
the services running as processes on the real broker.

Each answer must be no 5xx, a status the document lists, in the content type and shape it
promises. A refused request must change nothing: the registry's rows (read from its database
after every refusal) and the records on the registry and heartbeat topics (end offsets).
"""

import asyncio
import os

import httpx
import pytest
from schemathesis import GenerationMode, Response

from contracts.topics import HEARTBEATS, REGISTRY_POINTS, REGISTRY_SESSIONS
from devstack.kafka import Broker
from devstack.services import ServiceProcess
from devstack.simulate import DEV_OPERATOR_TOKEN
from tests.conftest import Figures
from tests.e2e.helpers import eventually
from tests.e2e.test_thin_path import fresh_plan, registered_points, totals
from tests.fault.credentials import presenting
from tests.fault.fuzzing import AnyCase, Operation, Tally, fuzz
from tests.fault.state import outbox_drained, records_published, registration_db, registry_rows

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

# Hypothesis examples per operation and mode: enough to reach every refusal, bounded for CI.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
REGISTRY = (REGISTRY_POINTS, REGISTRY_SESSIONS)
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# Open to all by design; the login and logout are the gate itself, whose refusals and throttle
# tests/integration/test_registration_accounts.py checks.
OPEN_ROUTES = {
    "GET /healthz",
    "GET /metrics",
    "GET /asyncapi.json",
    "POST /v1/login",
    "POST /v1/logout",
}
HEARTBEAT_ROUTES = {"POST /v1/heartbeats", "POST /v1/heartbeats/batch"}
REFUSALS = {400, 401, 403, 404, 409, 413, 422, 429}
# Endless by design; fuzzed only with unknown sessions, which it refuses at once.
STREAM = "GET /v1/sessions/{session_code}/stream"


def protected(operation: Operation) -> bool:
    return operation.label not in OPEN_ROUTES


def heartbeat_route(operation: Operation) -> bool:
    return operation.label in HEARTBEAT_ROUTES


def outcome(tally: Tally, published: int) -> dict[str, object]:
    return {
        "requests": tally.sent,
        "by_status": dict(sorted(tally.statuses.items())),
        "server_errors": tally.server_errors,
        "published_by_refused": published,
    }


async def test_registration_fuzzed_by_strangers_is_refused_and_changes_nothing(
    stack: dict[str, ServiceProcess],
    kafka: Broker,
    clients: dict[str, httpx.AsyncClient],
    figures: Figures,
) -> None:
    plan = fresh_plan(points=1)
    (point,) = await registered_points(clients, plan)
    registration = stack["registration"]
    db = registration_db(registration)
    await outbox_drained(db)
    rows, offsets = registry_rows(db), await records_published(kafka.bootstrap, REGISTRY)

    tally = Tally()
    for token in (None, "not-the-operator-token", point.token):
        tally.add(
            await asyncio.to_thread(
                fuzz,
                registration.url,
                mode=GenerationMode.POSITIVE,
                examples=EXAMPLES,
                prepare=presenting(token),
                only=protected,
            )
        )

    assert set(tally.statuses) <= {401, 403}, tally.summary()
    # Anything a refused request had committed would have reached its topic by now.
    await outbox_drained(db)
    after = await records_published(kafka.bootstrap, REGISTRY)
    assert registry_rows(db) == rows
    assert after == offsets
    figures(**outcome(tally, sum(after.values()) - sum(offsets.values())))


class RefusalsChangeNothing:
    """Per case: the registry's rows before the request, compared after it if it was refused."""

    def __init__(self, registration: ServiceProcess) -> None:
        self.db = registration_db(registration)
        self.before: dict[str, list[tuple[object, ...]]] = {}
        self.refusals_checked = 0

    def prepare(self, case: AnyCase) -> None:
        presenting(DEV_OPERATOR_TOKEN)(case)
        self.before = registry_rows(self.db)

    def inspect(self, case: AnyCase, response: Response) -> None:
        if response.status_code >= 400:
            assert registry_rows(self.db) == self.before, case.as_curl_command()
            self.refusals_checked += 1


async def test_registration_fuzzed_by_the_operator_has_no_5xx_and_refusals_change_nothing(
    stack: dict[str, ServiceProcess], figures: Figures
) -> None:
    registration = stack["registration"]
    watch = RefusalsChangeNothing(registration)
    tally = Tally()
    for mode in MODES:
        tally.add(
            await asyncio.to_thread(
                fuzz,
                registration.url,
                mode=mode,
                examples=EXAMPLES,
                prepare=watch.prepare,
                inspect=watch.inspect,
            )
        )
    assert tally.server_errors == 0
    assert watch.refusals_checked == tally.refused
    figures(**outcome(tally, 0), refusals_checked_in_database=watch.refusals_checked)


async def test_attendance_fuzzed_publishes_exactly_what_it_accepted(
    stack: dict[str, ServiceProcess],
    kafka: Broker,
    clients: dict[str, httpx.AsyncClient],
    figures: Figures,
) -> None:
    plan = fresh_plan(points=2)
    speaker, stranger = await registered_points(clients, plan)
    attendance = stack["attendance"]
    before = await records_published(kafka.bootstrap, (HEARTBEATS,))

    # Bodies as generated: codes of nobody the token may speak for, or no valid body at all.
    refused = Tally()
    for mode in MODES:
        refused.add(
            await asyncio.to_thread(
                fuzz,
                attendance.url,
                mode=mode,
                examples=EXAMPLES,
                prepare=presenting(stranger.token),
                only=heartbeat_route,
            )
        )
    assert set(refused.statuses) <= REFUSALS, refused.summary()
    assert await records_published(kafka.bootstrap, (HEARTBEATS,)) == before

    # The same generated fields in the speaker's own name: some are accepted, the rest limited.
    def own_name(case: AnyCase) -> None:
        presenting(speaker.token)(case)
        assert isinstance(case.body, dict)
        case.body |= {"point_code": speaker.code, "session_code": plan.session_code}

    heard = await asyncio.to_thread(
        fuzz,
        attendance.url,
        mode=GenerationMode.POSITIVE,
        examples=EXAMPLES,
        prepare=own_name,
        only=lambda operation: operation.label == "POST /v1/heartbeats",
    )
    opened = await asyncio.to_thread(
        fuzz,
        attendance.url,
        mode=GenerationMode.POSITIVE,
        examples=3,
        only=lambda operation: not protected(operation),
    )
    assert set(heard.statuses) <= {202, 429} and heard.statuses[202] >= 1, heard.summary()
    after = await records_published(kafka.bootstrap, (HEARTBEATS,))
    assert after[HEARTBEATS.name] - before[HEARTBEATS.name] == heard.statuses[202]
    refused.add(opened)
    figures(
        **outcome(refused, 0),
        own_name_requests=heard.sent,
        own_name_by_status=dict(heard.statuses),
        heartbeats_published=after[HEARTBEATS.name] - before[HEARTBEATS.name],
    )


async def test_reporting_fuzzed_has_no_5xx(
    stack: dict[str, ServiceProcess], clients: dict[str, httpx.AsyncClient], figures: Figures
) -> None:
    plan = fresh_plan(points=3)
    await registered_points(clients, plan)
    await eventually(lambda: totals(clients, plan), lambda t: t.get("connected") == 1)
    reporting = stack["reporting"]

    # Known codes too, so the reports and views are built, not only refused as unknown.
    def known_codes(case: AnyCase) -> None:
        parameters = dict(case.path_parameters or {})
        if "session_code" in parameters:
            parameters["session_code"] = plan.session_code
        if "course_code" in parameters:
            parameters["course_code"] = plan.course_code
        case.path_parameters = parameters

    tally = Tally()
    for mode in MODES:
        tally.add(await asyncio.to_thread(fuzz, reporting.url, mode=mode, examples=EXAMPLES))
        tally.add(
            await asyncio.to_thread(
                fuzz,
                reporting.url,
                mode=mode,
                examples=EXAMPLES,
                prepare=known_codes,
                skip={STREAM},
            )
        )
    assert tally.server_errors == 0
    figures(**outcome(tally, 0))
