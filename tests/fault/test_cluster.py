"""On a three-broker cluster (replication 3, min.insync.replicas 2), the broker leading the most
heartbeat partitions is killed (kill -9) under load, then brought back. Nothing accepted is
lost, no point that kept beating is ever shown late or disconnected (its partitions' leaders
moving is the monitor's own outage, not the point's silence), and the system equals the
oracle once the node is back in sync."""

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.topics import HEARTBEATS
from devstack.kafka import Cluster, default_cache_dir
from devstack.silences import false_transitions
from servicekit.provision import ensure_topics
from tests.conftest import Figures
from tests.e2e.helpers import eventually
from tests.fault.fleet import UNDER_LOAD, Fleet, Load, fault_plan, flowing, register
from tests.fault.oracle import (
    agreement,
    latest_statuses,
    missing_from_topic,
    status_history,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fault, UNDER_LOAD]
SEED = 8_012
DOWN_SECONDS = 15.0  # past the controller's broker session timeout (9 s): the node is fenced


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster.start(default_cache_dir(), tmp_path / "kafka", nodes=3) as cluster:
        asyncio.run(ensure_topics(cluster.bootstrap, replication_factor=3))
        yield cluster


@pytest.fixture
def fleet(cluster: Cluster, tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(cluster.bootstrap, tmp_path)
    try:
        yield fleet
    finally:
        fleet.stop()


async def heartbeat_leaders(cluster: Cluster) -> Counter[int]:
    """How many heartbeat partitions each node leads."""
    leaders = [await cluster.leader_of(HEARTBEATS.name, p) for p in range(HEARTBEATS.partitions)]
    return Counter(leaders)


async def in_sync_everywhere(cluster: Cluster) -> bool:
    for partition in range(HEARTBEATS.partitions):
        state = await cluster.partition(HEARTBEATS.name, partition)
        if len(state.in_sync) < len(cluster.nodes):
            return False
    return True


async def test_the_leader_of_the_heartbeats_killed_loses_nothing_and_flaps_nothing(
    cluster: Cluster, fleet: Fleet, figures: Figures
) -> None:
    plan = fault_plan("cluster")
    await asyncio.to_thread(fleet.start_all, 2)
    points = await register(fleet, plan, SEED)
    load = Load(fleet.url("ingest"), plan.session_code, points, plan.heartbeat_interval_s)
    async with flowing(load):
        await asyncio.sleep(5)
        began = time.time()  # every joining point has spoken by now
        leaders = await heartbeat_leaders(cluster)
        victim, led = leaders.most_common(1)[0]
        before = Counter(load.refused), len(load.accepted)
        await asyncio.to_thread(cluster.nodes[victim].kill)
        killed_at = time.monotonic()
        await asyncio.sleep(DOWN_SECONDS)
        while_down = Counter(load.refused) - before[0], len(load.accepted) - before[1]
        await asyncio.to_thread(cluster.restart, victim)
        await eventually(lambda: in_sync_everywhere(cluster), bool, patience=90)
        back_in_sync = time.monotonic() - killed_at
        for point in points[:6]:
            point.learners += 3  # must reach the totals whichever broker leads now
        comparison = await agreement(cluster.bootstrap, fleet.url("reporting"), plan.session_code)
    missing = await missing_from_topic(cluster.bootstrap, plan.session_code, load.accepted)
    history = await status_history(cluster.bootstrap, plan.session_code)
    falsely = false_transitions(history, load.silences)
    statuses = await latest_statuses(cluster.bootstrap, plan.session_code)
    steady = load.silences.steady(began)
    reconnected = {c: s.reconnects for c, s in statuses.items() if c in steady and s.reconnects}
    figures(
        **load.figures(),
        found_in_kafka=len(load.accepted) - len(missing),
        killed_node=victim + 1,
        heartbeat_partitions_it_led=led,
        answers_while_down=dict(while_down[0]) | {"202": while_down[1]},
        back_in_sync_after_seconds=round(back_in_sync, 1),
        false_transitions=len(falsely),
        reconnects=sum(reconnected.values()),
        differences=comparison.differences,
    )
    assert missing == set()
    assert falsely == {}, falsely
    assert reconnected == {}, reconnected
    assert comparison.differences == 0
