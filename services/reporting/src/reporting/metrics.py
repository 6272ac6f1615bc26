"""Live totals as Prometheus gauges, read from the tallies at scrape time. Labels are bounded:
session, province (34), channel, state; never a point."""

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from contracts.events import PointState
from reporting.incidents import IncidentDetector
from reporting.live import LiveTotals


class TotalsCollector(Collector):
    def __init__(self, live: LiveTotals, detector: IncidentDetector) -> None:
        self._live = live
        self._detector = detector

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        points = _gauge("session_points", "Points of a session by state", "session", "state")
        registered = _gauge("session_points_registered", "Points registered", "session")
        present = _gauge("session_learners_present", "Learners present", "session")
        expected = _gauge("session_learners_expected", "Learners expected", "session")
        provinces = _gauge("province_points", "Points by province", "session", "province", "state")
        province_registered = _gauge(
            "province_points_registered", "Points registered by province", "session", "province"
        )
        channels = _gauge("channel_points", "Points by channel", "session", "channel", "state")
        for code, view in list(self._live.sessions.items()):
            registered.add_metric([code], view.overall.registered)
            present.add_metric([code], view.overall.learners_present)
            expected.add_metric([code], view.overall.learners_expected)
            for state in PointState:
                points.add_metric([code, state.value], view.overall.states[state])
            for province, tally in view.provinces.items():
                province_registered.add_metric([code, province], tally.registered)
                for state in PointState:
                    provinces.add_metric([code, province, state.value], tally.states[state])
            for channel, tally in view.channels.items():
                for state in PointState:
                    channels.add_metric([code, channel, state.value], tally.states[state])
        yield from (points, registered, present, expected, provinces, province_registered, channels)
        yield from self._incidents()
        yield from self._judgement()

    def _judgement(self) -> Iterator[GaugeMetricFamily]:
        now = datetime.now(UTC)
        unknown = GaugeMetricFamily(
            "reporting_states_unknown",
            "1 while the states cannot be vouched for: the processor's clock lags (Kafka, the"
            " ingest or the processor away)",
        )
        unknown.add_metric([], 1.0 if self._live.judged.unknown(now) else 0.0)
        yield unknown
        until = self._live.judged.until()
        if until is not None:
            age = GaugeMetricFamily(
                "reporting_judged_age_seconds",
                "How far behind now the states are judged (the processor's clock)",
            )
            age.add_metric([], max(0.0, (now - until).total_seconds()))
            yield age

    def _incidents(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        incidents = _gauge("reporting_open_incidents", "Open incidents", "session", "kind")
        open_ = self._detector.open
        for (session, kind), count in Counter((s, k) for s, k, _ in open_).items():
            incidents.add_metric([session, kind], count)
        opened = CounterMetricFamily("reporting_incidents", "Incidents opened", labels=["kind"])
        for kind, count in self._detector.opened_total.items():
            opened.add_metric([kind], count)
        # Every group of a session, 0 without an incident: an alert needs the series before.
        down = {
            kind: _gauge(
                f"{kind}_incident_points",
                f"Points down in the open incident of a {kind} (0: none)",
                "session",
                kind,
            )
            for kind in ("province", "channel")
        }
        for code, view in list(self._live.sessions.items()):
            for kind, groups in (("province", view.provinces), ("channel", view.channels)):
                for group in groups:
                    incident = open_.get((code, kind, group))
                    down[kind].add_metric(
                        [code, group], 0 if incident is None else len(incident.points)
                    )
        yield from (incidents, opened)
        yield from down.values()


def _gauge(name: str, documentation: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))
