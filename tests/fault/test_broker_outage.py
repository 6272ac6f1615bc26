"""The broker stopped for a minute and started again while heartbeats flow. While it is down
the ingest answers 503 and every service stays up; once it is back the ingest accepts again
(its producer, broken by the outage, replaced), every 202 is in Kafka, the system equals the
oracle, and the monitor's own outage is no point's silence: the points that kept trying are
never shown late or disconnected and get no reconnect, while those that really went silent
meanwhile are shown disconnected from their last heartbeat."""

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.kafka import Broker, default_cache_dir
from devstack.silences import false_transitions
from devstack.simulate import DEV_OPERATOR_TOKEN
from tests.conftest import Figures
from tests.e2e.helpers import eventually
from tests.fault.fleet import UNDER_LOAD, Fleet, Load, fault_plan, fleet_on, flowing, register
from tests.fault.oracle import (
    Allowances,
    agreement,
    latest_statuses,
    missing_from_topic,
    status_history,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fault, UNDER_LOAD]
SEED = 8_002
OUTAGE_SECONDS = 60.0
PUBLISH_TIMEOUT_SECONDS = 2.0
ALLOWANCES = Allowances(publish_timeout=PUBLISH_TIMEOUT_SECONDS)
GONE_SILENT = 3  # points whose rooms really stop while Kafka is away
OPERATOR = {"Authorization": f"Bearer {DEV_OPERATOR_TOKEN}"}


@pytest.fixture
def fleet(broker: Broker, tmp_path: Path) -> Iterator[Fleet]:
    timeout = {"ATTENDANCE_PUBLISH_TIMEOUT_SECONDS": str(PUBLISH_TIMEOUT_SECONDS)}
    yield from fleet_on(broker, tmp_path, ingest_env=timeout, processor_env=timeout)


def start_again(broker: Broker) -> Broker:
    """The same broker (data, ports) back, where every client expects it."""
    return Broker.start(
        default_cache_dir(), broker.data_dir, ports=(broker.port, broker.controller_port)
    )


async def still_serving(fleet: Fleet, session_code: str) -> dict[str, object]:
    """Each service alive and answering HTTP while Kafka is away, and what the desk is told."""
    for role, service in fleet.services.items():
        assert service.process.poll() is None, f"{role} exited:\n{service.log_tail()}"
    async with httpx.AsyncClient(base_url=fleet.url("reporting"), timeout=10) as reporting:
        totals = await reporting.get(f"/v1/sessions/{session_code}/totals")
    async with httpx.AsyncClient(base_url=fleet.url("registration"), timeout=10) as registration:
        courses = await registration.get("/v1/courses", headers=OPERATOR)
    return {
        "reporting totals": totals.status_code,
        "registration courses": courses.status_code,
        "states unknown": totals.json().get("unknown"),
    }


async def states_known(fleet: Fleet, session_code: str) -> bool:
    async with httpx.AsyncClient(base_url=fleet.url("reporting"), timeout=10) as reporting:
        totals = await reporting.get(f"/v1/sessions/{session_code}/totals")
    return totals.status_code == 200 and totals.json().get("unknown") is False


async def test_a_broker_outage_loses_no_accepted_heartbeat(
    broker: Broker, fleet: Fleet, figures: Figures
) -> None:
    plan = fault_plan("outage")
    await asyncio.to_thread(fleet.start_all)
    points = await register(fleet, plan, SEED)
    load = Load(fleet.url("ingest"), plan.session_code, points, plan.heartbeat_interval_s)
    back: Broker | None = None
    try:
        async with flowing(load):
            await asyncio.sleep(4)
            began = time.time()  # every joining point has spoken by now
            await asyncio.to_thread(broker.stop)
            before = Counter(load.refused), len(load.accepted)
            down_since = time.monotonic()
            await asyncio.sleep(OUTAGE_SECONDS / 2)
            gone = [p for p in points if not p.never_joins][:GONE_SILENT]
            load.silent.update(p.code for p in gone)
            await asyncio.sleep(OUTAGE_SECONDS / 2)
            during = Counter(load.refused) - before[0], len(load.accepted) - before[1]
            serving = await still_serving(fleet, plan.session_code)
            began = time.monotonic()
            back = await asyncio.to_thread(start_again, broker)
            outage = time.monotonic() - down_since
            broker_start_seconds = time.monotonic() - began
            # Ingest is back once every beating point was heard again.
            heard_before = len(load.accepted)
            await eventually(
                lambda: asyncio.sleep(0, len(load.accepted) - heard_before),
                lambda heard: heard >= 2 * len(points),
                patience=60,
            )
            ingest_back = time.monotonic() - began - broker_start_seconds
            known_again = await eventually(
                lambda: states_known(fleet, plan.session_code), bool, patience=60
            )
            # Long enough for the silent ones to be shown disconnected (their timeout since the
            # monitor came back).
            await asyncio.sleep(plan.disconnected_after_s + 2)
            comparison = await agreement(
                back.bootstrap, fleet.url("reporting"), plan.session_code, allowances=ALLOWANCES
            )
        missing = await missing_from_topic(
            broker.bootstrap, plan.session_code, load.accepted, ALLOWANCES
        )
        steady = load.silences.steady(began)
        history = await status_history(back.bootstrap, plan.session_code)
        falsely = false_transitions(history, load.silences)
        statuses = await latest_statuses(back.bootstrap, plan.session_code)
        reconnected = {c: s.reconnects for c, s in statuses.items() if c in steady and s.reconnects}
        silent = {code: statuses[code] for code in load.silent}
        # Stopped while Kafka is away again, every service ends on the SIGTERM (uvicorn exits
        # by the signal it handled) within the 30 s grace Kubernetes gives: none is SIGKILLed.
        await asyncio.to_thread(back.stop)
        began = time.monotonic()
        await asyncio.to_thread(fleet.stop, 30.0)
        stop_seconds = time.monotonic() - began
        exits = {role: s.process.returncode for role, s in fleet.services.items()}
        figures(
            **load.figures(),
            found_in_kafka=len(load.accepted) - len(missing),
            records_on_topic=comparison.oracle.records,
            outage_seconds=round(outage, 1),
            broker_start_seconds=round(broker_start_seconds, 1),
            ingest_accepting_again_after_seconds=round(ingest_back, 1),
            answers_while_down=dict(during[0]) | {"202": during[1]},
            http_while_down=serving,
            false_transitions=len(falsely),
            reconnects_of_points_that_kept_trying=sum(reconnected.values()),
            gone_silent_shown=sorted(s.state.value for s in silent.values()),
            differences=comparison.differences,
            stop_seconds_with_kafka_away=round(stop_seconds, 1),
            exit_codes=exits,
        )
        assert exits == dict.fromkeys(exits, -signal.SIGTERM), exits
        # The ingest's answer while Kafka is away is 503, nothing else (no 500, no hang).
        assert set(during[0]) == {"503"}
        # The desk is told it does not know, rather than shown drops; and knows again after.
        assert serving == {
            "reporting totals": 200,
            "registration courses": 200,
            "states unknown": True,
        }
        assert known_again
        assert missing == set()
        assert comparison.differences == 0
        assert falsely == {}, falsely
        assert reconnected == {}, reconnected
        for code, status in silent.items():
            last = comparison.oracle.truths[code].last_seen
            assert status.state.value == "disconnected", (code, status)
            assert status.last_heartbeat_at is not None
            assert status.last_heartbeat_at.timestamp() == pytest.approx(last, abs=1e-3)
    finally:
        if back is not None:
            await asyncio.to_thread(back.stop)
