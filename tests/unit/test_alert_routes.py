"""The rendering of Alertmanager's routing from a coordinators file."""

import re
from pathlib import Path

import pytest
import yaml

from devstack.alert_routes import Coordinator, CoordinatorsError, read_coordinators, routed
from devstack.prometheus import ALERTMANAGER_CONFIG

BASE = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))


def test_each_province_routes_to_its_coordinators_and_the_desk_hears_everything() -> None:
    config = routed(
        BASE,
        [
            Coordinator("38", email="b@academy.example"),
            Coordinator("38", email="a@academy.example"),
            Coordinator("38", webhook="https://chat.example/38"),
            Coordinator("01", webhook="https://chat.example/01"),
        ],
        desk_webhook="https://chat.example/desk",
    )
    assert config["route"]["routes"] == [
        {"receiver": "province-01", "matchers": ['province="01"'], "continue": True},
        {"receiver": "province-38", "matchers": ['province="38"'], "continue": True},
        {"receiver": "desk"},
    ]
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["province-38"]["email_configs"] == [
        {"to": "a@academy.example, b@academy.example", "send_resolved": True}
    ]
    assert receivers["province-38"]["webhook_configs"] == [
        {"url": "https://chat.example/38", "send_resolved": True}
    ]
    assert "email_configs" not in receivers["province-01"]
    assert receivers["desk"]["webhook_configs"][0]["url"] == "https://chat.example/desk"
    # The grouping and the relay are the base's; the base itself is left as it was.
    assert config["route"]["group_by"] == ["alertname", "session", "province"]
    assert config["global"] == BASE["global"]
    assert BASE["route"]["routes"] == []


def test_rendering_twice_is_rendering_once() -> None:
    coordinators = [Coordinator("38", email="a@academy.example")]
    once = routed(BASE, coordinators)
    assert routed(once, coordinators) == once


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("8,a@academy.example,", "not 2 digits"),
        ("38,,", "neither an email nor a webhook"),
        ("38,,ftp://chat.example", "not an http(s) URL"),
    ],
)
def test_a_row_that_cannot_be_routed_is_named_by_its_line(
    tmp_path: Path, row: str, reason: str
) -> None:
    path = tmp_path / "coordinators.csv"
    path.write_text(f"province_code,email,webhook\n01,a@academy.example,\n{row}\n")
    with pytest.raises(CoordinatorsError, match=f"line 3: .*{re.escape(reason)}"):
        read_coordinators(path)


def test_the_example_file_reads() -> None:
    example = ALERTMANAGER_CONFIG.parent / "coordinators.example.csv"
    assert {c.province_code for c in read_coordinators(example)} == {"01", "38"}
