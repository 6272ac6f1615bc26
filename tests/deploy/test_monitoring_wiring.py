"""Prometheus and Grafana in docker-compose.yml find what they are configured to read: the
services' scrape targets, the rule files, the provisioning, the dashboards and the data source.
(The rules and the dashboard themselves: tests/integration/test_monitoring_config.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.deploy.stack import (
    REPO,
    SERVICES,
    compose_file,
    container_ports,
    environment_of,
    mount_target_of,
)

PROMETHEUS = REPO / "deploy" / "prometheus"
ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
PROVISIONING = GRAFANA / "provisioning"
# Where the images look by default (no command-line flags or GF_PATHS_* override them).
PROMETHEUS_CONFIG_PATH = "/etc/prometheus/prometheus.yml"
GRAFANA_PROVISIONING_PATH = "/etc/grafana/provisioning"


def load_yaml(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose_file()["services"]
    return found


def test_prometheus_scrapes_each_service_by_its_compose_name_and_container_port() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    targets = {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }
    assert set(targets) == set(SERVICES)
    for job, addresses in targets.items():
        (port,) = container_ports(services()[job])
        assert addresses == [f"{job}:{port}"]
        assert config["scrape_configs"][0].get("metrics_path", "/metrics") == "/metrics"


def test_the_service_down_alert_watches_exactly_the_scraped_jobs() -> None:
    rules = (PROMETHEUS / "rules" / "monitor.yml").read_text(encoding="utf-8")
    match = re.search(r'up\{job=~"([^"]+)"\}', rules)
    assert match is not None
    assert set(match.group(1).split("|")) == set(SERVICES)


def test_prometheus_loads_the_mounted_config_and_rule_files() -> None:
    prometheus = services()["prometheus"]
    assert "command" not in prometheus, "the image's default flags read the paths below"
    assert mount_target_of(prometheus, PROMETHEUS / "prometheus.yml") == PROMETHEUS_CONFIG_PATH
    rules_target = mount_target_of(prometheus, PROMETHEUS / "rules")
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    assert config["rule_files"] == [f"{rules_target}/*.yml"]
    assert sorted(p.name for p in (PROMETHEUS / "rules").glob("*.yml")) == ["monitor.yml"]
    # Its own port in the container is the one published and probed.
    assert container_ports(prometheus) == [9090]
    assert "127.0.0.1:9090/-/ready" in " ".join(prometheus["healthcheck"]["test"])


def test_grafana_provisions_the_mounted_dashboard_folder() -> None:
    grafana = services()["grafana"]
    assert mount_target_of(grafana, PROVISIONING) == GRAFANA_PROVISIONING_PATH
    dashboards_target = mount_target_of(grafana, DASHBOARDS)
    (provider,) = load_yaml(PROVISIONING / "dashboards" / "dashboards.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == dashboards_target
    home = PurePosixPath(environment_of(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert str(home.parent) == dashboards_target
    assert (DASHBOARDS / home.name).is_file()


def test_the_data_source_is_the_compose_prometheus_and_the_dashboard_selects_it() -> None:
    (source,) = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus" and url.hostname in services()
    assert [url.port] == container_ports(services()["prometheus"])

    dashboard = json.loads((DASHBOARDS / "live-monitor.json").read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    chooser = variables["datasource"]
    assert chooser["type"] == "datasource" and chooser["query"] == source["type"]
    assert chooser["current"]["value"] == source["uid"]
    for reference in data_source_references(dashboard):
        assert reference["type"] == source["type"]
        assert reference["uid"] in ("${datasource}", source["uid"]), reference


def data_source_references(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            found.append(node["datasource"])
        for value in node.values():
            found += data_source_references(value)
    elif isinstance(node, list):
        for value in node:
            found += data_source_references(value)
    return found


def test_the_runbook_has_a_section_for_every_alert() -> None:
    rules = (PROMETHEUS / "rules" / "monitor.yml").read_text(encoding="utf-8")
    alerts = set(re.findall(r"^\s*- alert:\s*(\S+)\s*$", rules, re.MULTILINE))
    runbook = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^### (\w+) \(", runbook, re.MULTILINE))
    assert alerts and alerts == sections


def test_prometheus_sends_its_alerts_to_the_alertmanager_that_loads_the_routing() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    (target,) = [t for static in alertmanagers["static_configs"] for t in static["targets"]]
    alertmanager = services()["alertmanager"]
    (port,) = container_ports(alertmanager)
    assert target == f"alertmanager:{port}"
    assert f"127.0.0.1:{port}/-/ready" in " ".join(alertmanager["healthcheck"]["test"])
    # The image's default flags read its configuration from there.
    assert "command" not in alertmanager
    assert mount_target_of(alertmanager, ALERTMANAGER) == "/etc/alertmanager/alertmanager.yml"
