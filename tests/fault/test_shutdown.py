"""SIGTERM to every service while heartbeats flow. Each drains, commits and
exits within seconds (the processor leaves no heartbeat uncommitted behind it); started again,
the system has lost nothing and equals the oracle."""

import asyncio
import time

import pytest

from devstack.kafka import Broker
from tests.conftest import Figures
from tests.fault.fleet import UNDER_LOAD, Fleet, Load, fault_plan, flowing, register
from tests.fault.oracle import agreement, missing_from_topic, processor_lag

pytestmark = [pytest.mark.e2e, pytest.mark.fault, UNDER_LOAD]
SEED = 8_006
# The ingest first, so nothing new arrives while the processor drains.
ORDER = ("ingest", "processor-0", "reporting", "registration")
EXIT_LIMIT_SECONDS = 15.0
CLEAN_EXIT = "Application shutdown complete"


async def test_sigterm_drains_commits_and_loses_nothing(
    broker: Broker, fleet: Fleet, figures: Figures
) -> None:
    plan = fault_plan("sigterm")
    await asyncio.to_thread(fleet.start_all)
    points = await register(fleet, plan, SEED)
    load = Load(fleet.url("ingest"), plan.session_code, points, plan.heartbeat_interval_s)
    exits: dict[str, float] = {}
    codes: dict[str, int | None] = {}
    clean: dict[str, bool] = {}
    async with flowing(load):
        await asyncio.sleep(5)
        for role in ORDER:
            exits[role] = round(await asyncio.to_thread(fleet.terminate, role), 1)
            codes[role] = fleet.services[role].process.returncode
            # Uvicorn raises the signal again once shut down, so -15 is a clean exit too: the
            # log says whether the lifespan (drain, flush, commit) ran to its end.
            clean[role] = CLEAN_EXIT in fleet.log(role).rsplit("Shutting down", 1)[-1]
            if role == "processor-0":
                lag_after_processor = await processor_lag(broker.bootstrap)
        began = time.monotonic()
        await asyncio.to_thread(fleet.start_all)
        restart = time.monotonic() - began
        for point in points[:5]:
            point.learners += 3
        comparison = await agreement(broker.bootstrap, fleet.url("reporting"), plan.session_code)
    missing = await missing_from_topic(broker.bootstrap, plan.session_code, load.accepted)
    figures(
        **load.figures(),
        found_in_kafka=len(load.accepted) - len(missing),
        exit_seconds=exits,
        exit_codes=codes,
        shut_down_cleanly=clean,
        uncommitted_after_processor_exit=lag_after_processor,
        restart_all_seconds=round(restart, 1),
        differences=comparison.differences,
    )
    assert all(seconds < EXIT_LIMIT_SECONDS for seconds in exits.values()), exits
    assert set(codes.values()) <= {0, -15}, codes
    assert clean == dict.fromkeys(ORDER, True)
    assert lag_after_processor == 0
    assert missing == set()
    # A restarted ingest answers 503 until it has read the registry, never 401 to a known point.
    assert "401" not in load.refused, load.refused
    assert comparison.differences == 0
