"""Every metric the monitoring reads is one the running services really export: the alert rules,
the series their promtool tests are fed with, the Grafana dashboard and the runbook are checked
against what the three services' `/metrics` show once a course has run through them, so a
metric that nothing sets fails here."""

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from devstack.simulate import send_heartbeat
from tests.e2e.helpers import eventually
from tests.e2e.test_thin_path import fresh_plan, registered_points, totals
from tests.integration.test_monitoring_config import (
    DASHBOARD,
    RULE_TESTS,
    RULES,
    load_dashboard,
    metric_names,
    panels,
    recording_rules,
)

pytestmark = pytest.mark.e2e
RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
# Prometheus's own series about each scrape, not a service's.
PROMETHEUS_OWN = frozenset({"up"})
# What a runbook's backticked word must look like to be read as a metric.
METRIC_WORD = re.compile(r"`([a-z][a-z0-9_]*_(?:total|seconds|records|backlog|points))[`{]")


async def test_every_metric_the_monitoring_reads_is_exported(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    plan = fresh_plan(points=3)
    points = await registered_points(clients, plan)
    for point in points:
        assert (
            await send_heartbeat(clients["attendance"], point, plan.session_code)
        ).status_code == 202
    await eventually(lambda: totals(clients, plan), lambda t: t.get("never_connected") == 0)
    exported = set(PROMETHEUS_OWN) | recording_rules()
    for service in ("registration", "attendance", "reporting"):
        text = (await clients[service].get("/metrics")).text
        for family in text_string_to_metric_families(text):
            exported |= {family.name} | {sample.name for sample in family.samples}
    read = {
        "alert rules": _rule_metrics(),
        "rule tests' input series": _rule_test_series(),
        DASHBOARD.name: {
            name
            for panel in panels(load_dashboard())
            for target in panel.get("targets", [])
            for name in metric_names(target["expr"])
        },
        RUNBOOK.name: set(METRIC_WORD.findall(RUNBOOK.read_text(encoding="utf-8"))),
    }
    assert all(read.values()), read
    unexported = {where: sorted(names - exported) for where, names in read.items()}
    assert unexported == {where: [] for where in read}


def _rule_metrics() -> set[str]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    exprs = [rule["expr"] for group in groups for rule in group["rules"]]
    return {name for expr in exprs for name in metric_names(expr)}


def _rule_test_series() -> set[str]:
    tests: list[dict[str, Any]] = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    return {
        series["series"].split("{")[0].strip()
        for test in tests
        for series in test.get("input_series", [])
    }
