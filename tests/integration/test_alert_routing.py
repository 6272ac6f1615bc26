"""Alertmanager's configuration, as compose mounts it and as `devstack alert-routes` renders it
for every province, is valid for Debian's Alertmanager (amtool, installed by bin/_prepare.sh),
and routes a province's alert to its coordinators and to the desk."""

from pathlib import Path

import pytest
import yaml

from devstack.alert_routes import Coordinator, routed
from devstack.prometheus import ALERTMANAGER_CONFIG
from registration.divisions import provinces
from tests.integration.test_monitoring_config import installed, run_tool

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def amtool() -> str:
    return installed("amtool", "prometheus-alertmanager")


def run(amtool: str, *args: str) -> str:
    """What amtool answers (its warnings go to stderr)."""
    return run_tool(amtool, *args)[0]


def test_the_mounted_and_the_rendered_configurations_route_as_meant(
    amtool: str, tmp_path: Path
) -> None:
    run(amtool, "check-config", str(ALERTMANAGER_CONFIG))
    base = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    coordinators = [Coordinator(code, email=f"p{code}@academy.example") for code in provinces()]
    rendered = tmp_path / "alertmanager.yml"
    rendered.write_text(yaml.safe_dump(routed(base, coordinators)), encoding="utf-8")
    run(amtool, "check-config", str(rendered))

    def receivers(*labels: str) -> str:
        return run(amtool, "config", "routes", "test", f"--config.file={rendered}", *labels)

    losing = ("alertname=ProvinceLosingPoints", "session=K2026-D1-AM")
    assert receivers(*losing, "province=38").strip() == "province-38,desk"
    assert receivers("alertname=ServiceDown", "job=attendance").strip() == "desk"
