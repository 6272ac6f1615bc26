"""The Prometheus config, its alert rules and the Grafana dashboard are valid and agree.

promtool (Debian's `prometheus` package, installed by bin/_prepare.sh) checks the config and the
rule files, and runs the rules' unit tests (deploy/prometheus/tests/monitor_test.yml). Without
promtool those tests skip on a workstation and fail in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
CONFIG = PROMETHEUS / "prometheus.yml"
RULES_DIR = PROMETHEUS / "rules"
RULES = RULES_DIR / "monitor.yml"
RULE_TESTS = PROMETHEUS / "tests" / "monitor_test.yml"
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "live-monitor.json"
PROVIDER = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"

# Where docker-compose mounts deploy/prometheus/rules in the Prometheus container.
RULE_GLOB_IN_CONTAINER = "/etc/prometheus/rules/*.yml"

# Words of PromQL that look like metric names once label lists and strings are gone.
PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan"}
)

REQUIRED_ALERTS = frozenset(
    {
        "ProvinceLosingPoints",
        "NationalConnectedShareFalling",
        "ServiceDown",
        "StatesUnknown",
        "ConsumerLagGrowing",
        "OutboxBacklog",
        "DeadLetters",
    }
)


def installed(tool: str, package: str) -> str:
    """The path of `tool`, from Debian's `package`: a failure in CI, a skip elsewhere."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing; bin/_prepare.sh installs it (Debian's {package})")
        pytest.skip(f"{tool} is not installed (apt-get install {package})")
    return path


def run_tool(tool: str, *args: str) -> tuple[str, str]:
    """What `tool` wrote to stdout and stderr; it must succeed."""
    result = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{tool} {' '.join(args)} failed:\n{output}"
    return result.stdout, result.stderr


@pytest.fixture(scope="module")
def promtool() -> str:
    return installed("promtool", "prometheus")


def run_promtool(promtool: str, *args: str) -> str:
    return "".join(run_tool(promtool, *args))


def test_the_config_and_every_rule_file_it_loads_pass_promtool(
    promtool: str, tmp_path: Path
) -> None:
    config = CONFIG.read_text(encoding="utf-8")
    assert RULE_GLOB_IN_CONTAINER in config
    # The container path does not exist here: point the glob at the repository's rules instead.
    local = tmp_path / "prometheus.yml"
    local.write_text(config.replace(RULE_GLOB_IN_CONTAINER, f"{RULES_DIR}/*.yml"), encoding="utf-8")
    output = run_promtool(promtool, "check", "config", str(local))
    loaded = sorted(RULES_DIR.glob("*.yml"))
    assert loaded == [RULES], "only rule files may live in the rules directory"
    assert f"SUCCESS: {len(loaded)} rule files found" in output, output
    assert str(RULES) in output, output


def test_the_rules_pass_promtool_check_rules(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", str(RULES))
    assert "SUCCESS" in output, output


def test_the_alerts_fire_as_the_unit_tests_expect(promtool: str) -> None:
    """ProvinceLosingPoints, ServiceDown, ConsumerLagGrowing and the others, on synthetic series."""
    output = run_promtool(promtool, "test", "rules", str(RULE_TESTS))
    assert "SUCCESS" in output, output


def test_the_unit_tests_cover_every_alert() -> None:
    tests = RULE_TESTS.read_text(encoding="utf-8")
    tested = set(re.findall(r"^\s*alertname:\s*(\S+)\s*$", tests, re.MULTILINE))
    assert alert_names() <= tested
    # A province with few points connected but no incident must not raise ProvinceLosingPoints.
    assert "02: no incident" in tests


def test_the_alerts_are_all_there_with_severity_summary_and_description() -> None:
    assert alert_names() >= REQUIRED_ALERTS
    for alert, body in alert_blocks():
        assert re.search(r"^\s+severity: (critical|warning)\s*$", body, re.MULTILINE), alert
        assert re.search(r"^\s+summary: \S", body, re.MULTILINE), alert
        assert re.search(r"^\s+description: \S", body, re.MULTILINE), alert


def test_the_dashboard_provider_reads_the_mounted_directory() -> None:
    provider = PROVIDER.read_text(encoding="utf-8")
    assert re.search(r"^\s+type: file\s*$", provider, re.MULTILINE)
    assert re.search(r"^\s+path: /var/lib/grafana/dashboards\s*$", provider, re.MULTILINE)


def test_the_dashboard_picks_a_session_from_the_live_totals() -> None:
    dashboard = load_dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    session = variables["session"]
    assert session["type"] == "query"
    assert session["query"] == "label_values(session_points, session)"
    titles = {panel["title"] for panel in panels(dashboard)}
    for expected in (
        "Points connected / registered",
        "Learners present / expected",
        "Connected points and learners present",
        "Connected share by province (worst first)",
        "Connected share by channel",
        "Open incidents",
        "Attendance processor lag",
        "Heartbeats per second",
        "Dead letters (per 5 minutes)",
    ):
        assert expected in titles


def test_every_dashboard_panel_queries_the_data_source() -> None:
    """Which metrics the queries may read is checked against the running services
    (tests/e2e/test_exported_metrics.py)."""
    ids: list[int] = []
    for panel in panels(load_dashboard()):
        ids.append(panel["id"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        exprs = [target["expr"] for target in panel["targets"]]
        assert exprs and all(expr.strip() for expr in exprs), panel["title"]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_every_dashboard_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    """promtool parses each query as a recording rule (YAML reads JSON), variables filled in."""
    grafana_variables = {"$__rate_interval": "1m", "$__range": "3h", "$session": "S1"}
    rules = []
    for number, panel in enumerate(panels(load_dashboard())):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in grafana_variables.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"unknown Grafana variable in {target['expr']}"
            rules.append({"record": f"dashboard:query:{number}{target['refId']}", "expr": expr})
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(
        json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8"
    )
    output = run_promtool(promtool, "check", "rules", str(rule_file))
    assert f"SUCCESS: {len(rules)} rules found" in output, output


def test_the_metric_name_extraction_sees_through_promql() -> None:
    expr = (
        'sum by (job, topic) (increase(dead_letters_total{topic=~"a|b"}[5m]))'
        " / on (job) group_left () max without (instance) (up offset 5m)"
        ' and session:session_points_connected:ratio{session="$session"} > 0.5'
        " or rate(faststream_x_total[$__rate_interval]) * 1e3"
    )
    assert metric_names(expr) == {
        "dead_letters_total",
        "up",
        "session:session_points_connected:ratio",
        "faststream_x_total",
    }


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression (a regex approximation, enough for our queries)."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr
    )  # label lists
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables
    words = re.findall(r"(?<![\w:.])([A-Za-z_:][\w:]*)\b(?!\s*\()", expr)
    return {word for word in words if word.lower() not in PROMQL_KEYWORDS}


def recording_rules() -> set[str]:
    text = RULES.read_text(encoding="utf-8")
    names = set(re.findall(r"^\s*- record:\s*(\S+)\s*$", text, re.MULTILINE))
    assert names, "no recording rules found"
    return names


def alert_names() -> set[str]:
    return {alert for alert, _ in alert_blocks()}


def alert_blocks() -> Iterator[tuple[str, str]]:
    """Each alerting rule's name and text, up to the next rule or group."""
    text = RULES.read_text(encoding="utf-8")
    starts = list(re.finditer(r"^\s*- (alert|record|name):\s*(\S+)\s*$", text, re.MULTILINE))
    for match, following in zip(starts, [*starts[1:], None], strict=True):
        if match.group(1) == "alert":
            end = following.start() if following else len(text)
            yield match.group(2), text[match.end() : end]


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])
