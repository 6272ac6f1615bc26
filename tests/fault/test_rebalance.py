"""Processor instances join and leave the group every few seconds while
heartbeats flow. No partition stalls, no point that kept beating is ever shown late or
disconnected, and the state equals the oracle."""

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator

import pytest

from devstack.kafka import Broker
from devstack.silences import false_transitions
from tests.conftest import Figures
from tests.fault.fleet import UNDER_LOAD, Fleet, Load, fault_plan, flowing, register
from tests.fault.oracle import (
    agreement,
    committed_offsets,
    missing_from_topic,
    read_end_offsets,
    status_history,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fault, UNDER_LOAD]
SEED = 8_003
# Joins and graceful leaves (kill -9 is item 1's): each one a rebalance.
CHURN = (
    ("join", "processor-1"),
    ("join", "processor-2"),
    ("leave", "processor-0"),
    ("join", "processor-3"),
    ("leave", "processor-1"),
    ("join", "processor-0"),
    ("leave", "processor-2"),
)
STALL_LIMIT_SECONDS = 30.0


@contextlib.asynccontextmanager
async def watching_stalls(bootstrap: str) -> AsyncIterator[dict[int, float]]:
    """Per partition, the longest time it had heartbeats waiting and no commit moved."""
    longest: dict[int, float] = {}

    async def watch() -> None:
        moved: dict[int, tuple[int, float]] = {}
        while True:
            committed, ends = await committed_offsets(bootstrap), await read_end_offsets(bootstrap)
            now = time.monotonic()
            for partition, end in ends.items():
                done = committed.get(partition, 0)
                last_done, since = moved.get(partition, (-1, now))
                if done != last_done or done >= end:
                    moved[partition] = (done, now)
                else:
                    longest[partition] = max(longest.get(partition, 0.0), now - since)
            await asyncio.sleep(0.5)

    task = asyncio.create_task(watch())
    try:
        yield longest
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_instances_joining_and_leaving_under_load(
    broker: Broker, fleet: Fleet, figures: Figures
) -> None:
    rng = random.Random(SEED)
    plan = fault_plan("rebalance")
    await asyncio.to_thread(fleet.start_all)
    points = await register(fleet, plan, SEED)
    load = Load(fleet.url("ingest"), plan.session_code, points, plan.heartbeat_interval_s)
    exits: list[float] = []
    async with flowing(load), watching_stalls(broker.bootstrap) as stalls:
        for step, (move, role) in enumerate(CHURN):
            await asyncio.sleep(rng.uniform(2.0, 4.0))
            if step == len(CHURN) // 2:
                for point in points[:6]:
                    point.learners += 5  # a change that must travel through the rebalances
            if move == "join":
                await asyncio.to_thread(fleet.start, role, wait=False)
            else:
                exits.append(await asyncio.to_thread(fleet.terminate, role))
        comparison = await agreement(broker.bootstrap, fleet.url("reporting"), plan.session_code)
    history = await status_history(broker.bootstrap, plan.session_code)
    flapped = false_transitions(history, load.silences)
    missing = await missing_from_topic(broker.bootstrap, plan.session_code, load.accepted)
    figures(
        **load.figures(),
        found_in_kafka=len(load.accepted) - len(missing),
        rebalances=len(CHURN),
        instance_exit_seconds=[round(e, 1) for e in exits],
        longest_partition_stall_seconds=round(max(stalls.values(), default=0.0), 1),
        flapping_points=len(flapped),
        differences=comparison.differences,
    )
    assert missing == set()
    assert flapped == {}
    assert max(stalls.values(), default=0.0) < STALL_LIMIT_SECONDS, stalls
    assert comparison.differences == 0
