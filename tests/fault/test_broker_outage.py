"""Issue 8, item 2: the broker stopped and started again while heartbeats flow. While it is
down the ingest answers 503 and every service stays up; afterwards every 202 is in Kafka, the
processor's lag returns to zero and the system equals the oracle."""

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.kafka import Broker, default_cache_dir
from devstack.simulate import DEV_OPERATOR_TOKEN
from tests.e2e.helpers import eventually
from tests.fault.conftest import Figures
from tests.fault.fleet import Fleet, Load, fault_plan, fleet_on, flowing, own_broker, register
from tests.fault.oracle import agreement, missing_from_topic

pytestmark = [pytest.mark.e2e, pytest.mark.fault]
SEED = 8_002
OUTAGE_SECONDS = 10.0
OPERATOR = {"Authorization": f"Bearer {DEV_OPERATOR_TOKEN}"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    yield from own_broker(tmp_path)


@pytest.fixture
def fleet(broker: Broker, tmp_path: Path) -> Iterator[Fleet]:
    # While the broker comes back the ingest's publishes take over a second, more than the
    # processor's default clock grace (0.5 s): a caught-up processor would then judge a point
    # late whose next heartbeat is still on its way, a false reconnect the oracle does not see
    # (docs/reliability.md, found, not fixed). The grace is the setting for that trade-off.
    yield from fleet_on(
        broker,
        tmp_path,
        ingest_env={"ATTENDANCE_PUBLISH_TIMEOUT_SECONDS": "2"},
        processor_env={"ATTENDANCE_CLOCK_GRACE_SECONDS": "2.5"},
    )


def start_again(broker: Broker) -> Broker:
    """The same broker (data, ports) back, where every client expects it."""
    return Broker.start(
        default_cache_dir(), broker.data_dir, ports=(broker.port, broker.controller_port)
    )


async def still_serving(fleet: Fleet, session_code: str) -> dict[str, int]:
    """Each service alive and answering HTTP while Kafka is away."""
    for role, service in fleet.services.items():
        assert service.process.poll() is None, f"{role} exited:\n{service.log_tail()}"
    async with httpx.AsyncClient(base_url=fleet.url("reporting"), timeout=10) as reporting:
        totals = await reporting.get(f"/v1/sessions/{session_code}/totals")
    async with httpx.AsyncClient(base_url=fleet.url("registration"), timeout=10) as registration:
        courses = await registration.get("/v1/courses", headers=OPERATOR)
    return {"reporting totals": totals.status_code, "registration courses": courses.status_code}


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
            await asyncio.to_thread(broker.stop)
            before = Counter(load.refused), len(load.accepted)
            down_since = time.monotonic()
            await asyncio.sleep(OUTAGE_SECONDS)
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
            comparison = await agreement(back.bootstrap, fleet.url("reporting"), plan.session_code)
        missing = await missing_from_topic(broker.bootstrap, plan.session_code, load.accepted)
        figures(
            **load.figures(),
            found_in_kafka=len(load.accepted) - len(missing),
            records_on_topic=comparison.oracle.records,
            outage_seconds=round(outage, 1),
            broker_start_seconds=round(broker_start_seconds, 1),
            ingest_accepting_again_after_seconds=round(ingest_back, 1),
            answers_while_down=dict(during[0]) | {"202": during[1]},
            http_while_down=serving,
            differences=comparison.differences,
        )
        # The ingest's answer while Kafka is away is 503, nothing else (no 500, no hang).
        assert set(during[0]) == {"503"}
        assert serving == {"reporting totals": 200, "registration courses": 200}
        assert missing == set()
        assert comparison.differences == 0
    finally:
        if back is not None:
            await asyncio.to_thread(back.stop)
