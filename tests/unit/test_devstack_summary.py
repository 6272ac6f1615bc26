"""The terminal's live view names the open incidents (province by name, Viet Nam's time) and
the firing alerts, or says there are none."""

from rich.console import Console

from devstack.simulation import Scene, Traffic
from devstack.summary import Seen, summary


def shown(seen: Seen) -> str:
    console = Console(record=True, width=160)
    console.print(summary(seen, Scene(), Traffic(), "http://127.0.0.1:8003/"))
    return console.export_text()


def test_an_open_incident_and_its_alert_are_shown() -> None:
    seen = Seen(
        incidents=[
            {"kind": "province", "group": "38", "opened_at": "2026-12-03T01:10:00Z", "points": 133}
        ],
        alerts=[{"labels": {"alertname": "ProvinceLosingPoints", "province": "38"}}],
    )
    text = shown(seen)
    assert "Incident: Thanh Hóa, 133 points down since 08:10:00" in text
    assert "Alert firing: ProvinceLosingPoints 38" in text


def test_nothing_open_is_said() -> None:
    assert "No incident open, no alert firing" in shown(Seen())
