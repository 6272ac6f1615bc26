"""A processor frozen (SIGSTOP) past the group's session timeout, then thawed.
Its partitions move to the other instance meanwhile; once thawed it rejoins the group without
a loop of failed commits, its stale view publishes nothing false, and lag returns to zero."""

import asyncio
import os
import re
import signal
import time

import pytest

from devstack.kafka import Broker
from devstack.silences import false_transitions
from tests.conftest import Figures
from tests.e2e.helpers import eventually
from tests.fault.fleet import UNDER_LOAD, Fleet, Load, fault_plan, flowing, register
from tests.fault.oracle import (
    agreement,
    group_members,
    missing_from_topic,
    status_history,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fault, UNDER_LOAD]
SEED = 8_004
SESSION_TIMEOUT_SECONDS = 10.0  # FastStream's (aiokafka's) default session_timeout_ms
FROZEN_SECONDS = SESSION_TIMEOUT_SECONDS + 5
COMMIT_FAILURE = re.compile(r"CommitFailed|commit.*fail|IllegalGeneration|UnknownMemberId", re.I)


def failures(log: str) -> list[str]:
    return [line for line in log.splitlines() if COMMIT_FAILURE.search(line)]


async def test_a_processor_frozen_past_its_session_timeout_rejoins(
    broker: Broker, fleet: Fleet, figures: Figures
) -> None:
    plan = fault_plan("pause")
    await asyncio.to_thread(fleet.start_all, 2)
    points = await register(fleet, plan, SEED)
    load = Load(fleet.url("ingest"), plan.session_code, points, plan.heartbeat_interval_s)
    frozen = fleet.services["processor-0"]
    async with flowing(load):
        await eventually(lambda: group_members(broker.bootstrap), lambda n: n == 2, 60)
        await asyncio.sleep(3)
        os.kill(frozen.process.pid, signal.SIGSTOP)
        await asyncio.sleep(FROZEN_SECONDS)
        members_while_frozen = await group_members(broker.bootstrap)
        log_before = len(fleet.log("processor-0"))
        os.kill(frozen.process.pid, signal.SIGCONT)
        thawed = time.monotonic()
        for point in points[:6]:
            point.learners += 4  # must reach the totals whichever instance owns the point
        await eventually(lambda: group_members(broker.bootstrap), lambda n: n == 2, 60)
        rejoined = time.monotonic() - thawed
        comparison = await agreement(broker.bootstrap, fleet.url("reporting"), plan.session_code)
        log_settled = len(fleet.log("processor-0"))
        await asyncio.sleep(5)  # long enough for a failing commit to repeat, if it would
    log = fleet.log("processor-0")
    # Commits fail until the thawed instance has rejoined (each batch it still held is tried,
    # refused, rewound): a burst that must end, not a loop.
    while_rejoining = failures(log[log_before:log_settled])
    after_settled = failures(log[log_settled:])
    history = await status_history(broker.bootstrap, plan.session_code)
    flapped = false_transitions(history, load.silences)
    missing = await missing_from_topic(broker.bootstrap, plan.session_code, load.accepted)
    figures(
        **load.figures(),
        found_in_kafka=len(load.accepted) - len(missing),
        frozen_seconds=FROZEN_SECONDS,
        members_while_frozen=members_while_frozen,
        rejoined_after_seconds=round(rejoined, 1),
        commit_failures_while_rejoining=len(while_rejoining),
        commit_failures_after_rejoining=len(after_settled),
        flapping_points=len(flapped),
        differences=comparison.differences,
    )
    assert frozen.process.poll() is None, "the thawed processor must carry on, not exit"
    assert members_while_frozen == 1, "the frozen member must have been dropped"
    assert after_settled == [], after_settled
    assert missing == set()
    assert flapped == {}
    assert comparison.differences == 0
