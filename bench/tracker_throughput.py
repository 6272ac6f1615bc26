"""How fast the attendance processor's in-process work is, against decoding the same JSON alone.

    uv run python bench/tracker_throughput.py [--heartbeats 200000] [--points 10000] [--runs 5]

Prints heartbeats per second for the baseline (`json.loads` of each record) and for ours
(contract decode + state machine + timing wheel), as medians over the runs, and their ratio.
No broker: the Kafka-bound benchmarks come with the benchmark harness.
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from attendance.clock import IngestClock
from attendance.domain import Beat, Liveness
from attendance.tracker import Pending, Tracker
from contracts.codec import decode, encode
from contracts.events import Heartbeat


def payloads(heartbeats: int, points: int) -> list[bytes]:
    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    out = []
    for n in range(heartbeats):
        # Spread over each 5 s round, as points beat: a whole round at one instant would look
        # like the monitor accepting nothing in between (an outage taken out of silence).
        at = start + timedelta(seconds=5 * (n // points) + 5 * (n % points) / points)
        out.append(
            encode(
                Heartbeat(
                    point_code=f"P{n % points:06d}",
                    session_code="S1",
                    seq=n // points,
                    sent_at=at,
                    received_at=at,
                    learners=n % 50,
                )
            )
        )
    return out


def rate(work: Callable[[list[bytes]], object], data: list[bytes]) -> float:
    began = time.perf_counter()
    work(data)
    return len(data) / (time.perf_counter() - began)


def baseline(data: list[bytes]) -> None:
    for record in data:
        json.loads(record)


def ours(data: list[bytes]) -> None:
    tracker = Tracker(lambda _: Liveness(), clock=IngestClock(outage_after=1.0, gone_after=10.0))
    pending = Pending()
    for record in data:
        heartbeat = decode(Heartbeat, record)
        beat = Beat(heartbeat.seq, heartbeat.received_at.timestamp(), heartbeat.learners)
        tracker.on_beat((heartbeat.session_code, heartbeat.point_code), beat, pending)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--heartbeats", type=int, default=200_000)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    data = payloads(args.heartbeats, args.points)
    base = [rate(baseline, data) for _ in range(args.runs)]
    mine = [rate(ours, data) for _ in range(args.runs)]
    for label, rates in (("baseline json.loads", base), ("decode+state machine", mine)):
        spread = f"{min(rates):,.0f} to {max(rates):,.0f}"
        print(f"{label:<21}: {statistics.median(rates):>10,.0f} heartbeats/s ({spread})")
    ratio = statistics.median(mine) / statistics.median(base)
    print(f"{'ratio':<21}: {ratio:.2f} of the baseline")


if __name__ == "__main__":
    main()
