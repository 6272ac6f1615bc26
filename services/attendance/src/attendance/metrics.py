"""What the processor reports to Prometheus. Points by state are counted at scrape time from
the tracks themselves, so the gauges can never drift from the state they describe."""

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from attendance.domain import Track
from attendance.quality import FLAGS
from contracts.events import PointState


class ProcessorMetrics:
    def __init__(self, metrics: CollectorRegistry, tracks: Callable[[], Iterable[Track]]) -> None:
        self.batch_size = Histogram(
            "processor_batch_records",
            "Heartbeat records per processed batch",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000),
            registry=metrics,
        )
        self.heartbeats = Counter(
            "processor_heartbeats_total", "Heartbeat records processed", registry=metrics
        )
        self.lag_seconds = Gauge(
            "processor_lag_seconds",
            "Age of the newest heartbeat processed when it was processed (receive to state)",
            registry=metrics,
        )
        self.lag_records = Gauge(
            "processor_lag_records",
            "Heartbeat records on the owned partitions not processed yet (as of the last fetch)",
            registry=metrics,
        )
        self.restore_seconds = Histogram(
            "processor_restore_seconds",
            "Time to restore assigned partitions from the changelog",
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60),
            registry=metrics,
        )
        self.restored_tracks = Counter(
            "processor_restored_tracks_total",
            "Tracks restored from the changelog",
            registry=metrics,
        )
        self.transactions = Counter(
            "processor_transactions_total",
            "Transactions of an owned partition (statuses, changelog and input offset together)",
            ["outcome"],
            registry=metrics,
        )
        for outcome in ("committed", "failed", "fenced"):
            self.transactions.labels(outcome)
        self.recoveries = Counter(
            "processor_partition_recoveries_total",
            "Partitions dropped after a failed transaction and taken again from Kafka",
            registry=metrics,
        )
        self.stale = Counter(
            "processor_stale_heartbeats_total",
            "Heartbeats that reached Kafka only after their ingest had answered 503: not taken",
            registry=metrics,
        )
        self.flags = Counter(
            "quality_flags_total",
            "Learner counts newly flagged as implausible",
            ["flag"],
            registry=metrics,
        )
        for flag in FLAGS:  # at 0 from the start: the first one is an increase
            self.flags.labels(flag)
        metrics.register(_PointsByState(tracks))


class _PointsByState(Collector):
    def __init__(self, tracks: Callable[[], Iterable[Track]]) -> None:
        self._tracks = tracks

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = Tally(track.state for track in self._tracks())
        family = GaugeMetricFamily(
            "processor_points", "Tracked points (per session) by connection state", labels=["state"]
        )
        for state in PointState:
            family.add_metric([state.value], counts[state])
        yield family
