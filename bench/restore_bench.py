"""The attendance service against a real Kafka broker: restoring its state from the changelog.

    uv run python bench/restore_bench.py [--size FACTOR] [--runs 3]

`attendance.restore.read_changelog` over the 12 partitions of the state changelog (N = 100,000
track snapshots, decoded into Tracks) against a bare aiokafka consumer draining the same
partitions with the same loop, without decoding; seconds, ratio, tracks/s, and the memory the
restored dict holds per track (tracemalloc, in a separate untimed pass).

It starts its own single-node Kafka broker on 127.0.0.1 (devstack), creates the topics, and
stops everything it started even on error. `--size 0.05` shrinks the data for a quick check.
Medians and spread over `--runs`; ours is compared with a baseline measured in the same run on
the same broker. The table ends with how busy the machine already was before the benchmark
started: other work on the machine skews every number here.
"""

import argparse
import asyncio
import gc
import random
import statistics
import time
import tracemalloc
from pathlib import Path

from harness import (
    Figure,
    Record,
    Table,
    drain_bare,
    kafka,
    med,
    produce_all,
    record_figure,
    run_noting_load,
    size_and_runs,
    spread,
    step,
)

from attendance.domain import Track
from attendance.encoding import snapshot
from attendance.restore import read_changelog
from contracts.events import PointState
from contracts.topics import STATE_CHANGELOG, point_key, status_key
from servicekit.kafka import key_partition


def partition_of(point_code: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives the point's key (murmur2)."""
    return key_partition(point_key(point_code), partitions)


def realistic_track(rng: random.Random, now: float) -> Track:
    """A point an hour into a session: mostly connected, a few late or gone."""
    first = now - 3600 + rng.uniform(0, 120)
    expected = rng.randint(15, 60)
    roll = rng.random()
    if roll < 0.9:
        state, last_seen = PointState.CONNECTED, now - rng.uniform(0, 5)
        since = first if rng.random() < 0.8 else now - rng.uniform(60, 1800)
    elif roll < 0.93:
        state, last_seen = PointState.LATE, now - rng.uniform(12, 30)
        since = last_seen + 12
    else:
        state, last_seen = PointState.DISCONNECTED, now - rng.uniform(30, 900)
        since = last_seen + 30
    learners = max(0, expected - rng.randint(0, 10))
    present = max(0.0, last_seen - first - rng.uniform(0, 60))
    return Track(
        state=state,
        seq=int((last_seen - first) / 5),
        learners=learners,
        last_seen=last_seen,
        since=since,
        reconnects=rng.choice((0, 0, 0, 0, 1, 2)),
        first_seen=first,
        present_seconds=present,
        learner_seconds=present * (learners + rng.uniform(-1, 1)),
        min_learners=max(0, learners - rng.randint(0, 4)),
        max_learners=learners + rng.randint(0, 4),
        count_varied=True,
        flags=frozenset({"jump"}) if rng.random() < 0.02 else frozenset(),
    )


def changelog_records(n: int) -> tuple[list[Record], list[int]]:
    """The snapshots, and each one's partition: that of the point's key, not the record's."""
    rng = random.Random(1)
    now = time.time()
    out: list[Record] = []
    partitions: list[int] = []
    for number in range(1, n + 1):
        point = f"P{number:06d}"
        value = snapshot("S1", point, realistic_track(rng, now))
        out.append((STATE_CHANGELOG.name, status_key("S1", point), value))
        partitions.append(partition_of(point, STATE_CHANGELOG.partitions))
    return out, partitions


async def restore_bench(bootstrap: str, n: int, runs: int) -> Table:
    partitions = range(STATE_CHANGELOG.partitions)
    step(f"restore: encoding {n:,} track snapshots")
    records, record_partitions = changelog_records(n)
    average_bytes = statistics.fmean(len(v) for _, _, v in records)
    step("restore: producing them")
    produced = await produce_all(bootstrap, records, partitions=record_partitions)
    del records, record_partitions
    gc.collect()
    base: list[float] = []
    ours: list[float] = []
    inner: list[float] = []
    for run in range(runs):
        step(f"restore: run {run + 1}/{runs}")
        # The same reading loop as read_changelog's, with its fetch sizes.
        drained, count = await drain_bare(
            bootstrap, (STATE_CHANGELOG,), fetch_bytes=8 * 1024 * 1024, max_records=10_000
        )
        base.append(drained)
        assert count == n, f"baseline read {count} of {n}"
        began = time.perf_counter()
        restored, seconds = await read_changelog(bootstrap, partitions)
        ours.append(time.perf_counter() - began)
        inner.append(seconds)
        got = sum(len(tracks) for tracks in restored.values())
        assert got == n, f"restored {got} of {n}"
        del restored
        gc.collect()
    # Memory of what a restore leaves held, in a pass of its own (tracemalloc slows it down).
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    restored, _ = await read_changelog(bootstrap, partitions)
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held -= before
    peak -= before
    del restored

    m, b = med(ours), med(base)
    table = Table(
        f"restore: {n:,} tracks over {len(partitions)} changelog partitions ({runs} runs)",
        ("what", "median s", "spread s", "tracks/s", "ratio"),
    )
    table.rows.append(
        ("baseline: bare consumer, no decode", f"{b:.2f}", spread(base), f"{n / b:,.0f}", "1.00")
    )
    table.rows.append(
        (
            "ours: read_changelog (decode + Track)",
            f"{m:.2f}",
            spread(ours),
            f"{n / m:,.0f}",
            f"{m / b:.2f}x",
        )
    )
    table.notes += [
        f"ours as read_changelog reports it (inside, without the call around it): "
        f"median {med(inner):.2f} s",
        f"memory held by the restored dict: {held / n:,.0f} bytes/track "
        f"({held / 2**20:,.1f} MiB for {n:,}); peak during the restore {peak / n:,.0f} "
        f"bytes/track (tracemalloc)",
        f"average snapshot record {average_bytes:,.0f} bytes; writing them took {produced:.1f} s "
        f"({n / produced:,.0f} records/s, acks=all, idempotent, batched)",
    ]
    record_figure(
        Figure(
            "B5",
            f"attendance: restore of {n:,} tracks after a restart",
            f"{m:.2f} s",
            f"{spread(ours)} s",
            f"{b:.2f} s (bare drain of the changelog)",
            f"{m / b:.2f}x the baseline",
            "<= 1.5x",
            m / b <= 1.5,
        )
    )
    record_figure(
        Figure(
            "B6",
            "attendance: memory per tracked point (restored state)",
            f"{held / n:,.0f} B",
            f"peak {peak / n:,.0f} B",
            "—",
            "—",
            "< 1 KB",
            held / n < 1024,
        )
    )
    return table


def run_restore(args: argparse.Namespace, tmp: Path) -> list[Table]:
    n = max(1000, int(100_000 * args.size))
    with kafka(tmp) as broker:
        return [asyncio.run(restore_bench(broker.bootstrap, n, args.runs))]


def main() -> None:
    parser = size_and_runs(__doc__, "scale sizes and durations")
    run_noting_load("restore", run_restore, parser.parse_args())


if __name__ == "__main__":
    main()
