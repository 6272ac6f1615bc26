"""The routing of Alertmanager: the desk hears every alert, and each province's alerts go to
that province's coordinators too, by e-mail (through the SMTP relay the base sets) and webhook.

Rendered from deploy/alertmanager/alertmanager.yml and a coordinators file (CSV: province_code,
email, webhook; a row per address), so the base stays the one hand-written file.
"""

import copy
import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DESK = "desk"
PROVINCE_CODE = re.compile(r"\d{2}")


class CoordinatorsError(ValueError):
    """A row of the coordinators file that cannot be routed; the message names its line."""


@dataclass(frozen=True)
class Coordinator:
    province_code: str
    email: str = ""
    webhook: str = ""


def read_coordinators(path: Path) -> list[Coordinator]:
    with path.open(newline="", encoding="utf-8-sig") as rows:
        reader = csv.DictReader(rows)
        return [_coordinator(row, line) for line, row in enumerate(reader, start=2)]


def _coordinator(row: Mapping[str, str | None], line: int) -> Coordinator:
    found = Coordinator(
        *((row.get(f) or "").strip() for f in ("province_code", "email", "webhook"))
    )
    if not PROVINCE_CODE.fullmatch(found.province_code):
        raise CoordinatorsError(
            f"line {line}: province_code {found.province_code!r} is not 2 digits"
        )
    if not (found.email or found.webhook):
        raise CoordinatorsError(f"line {line}: neither an email nor a webhook")
    if found.webhook and not found.webhook.startswith(("http://", "https://")):
        raise CoordinatorsError(f"line {line}: webhook {found.webhook!r} is not an http(s) URL")
    return found


def routed(
    base: Mapping[str, Any], coordinators: Iterable[Coordinator], *, desk_webhook: str = ""
) -> dict[str, Any]:
    """`base` with a route and a receiver for each province that has coordinators; the desk's
    webhook replaced by `desk_webhook`, if given."""
    config = copy.deepcopy(dict(base))
    provinces: dict[str, list[Coordinator]] = {}
    for coordinator in coordinators:
        provinces.setdefault(coordinator.province_code, []).append(coordinator)
    receivers = [r for r in config["receivers"] if not r["name"].startswith("province-")]
    if desk_webhook:
        desk = next(r for r in receivers if r["name"] == DESK)
        desk["webhook_configs"] = [{"url": desk_webhook, "send_resolved": True}]
    routes = []
    for code, theirs in sorted(provinces.items()):
        receiver: dict[str, Any] = {"name": f"province-{code}"}
        if emails := sorted({c.email for c in theirs if c.email}):
            receiver["email_configs"] = [{"to": ", ".join(emails), "send_resolved": True}]
        if hooks := sorted({c.webhook for c in theirs if c.webhook}):
            receiver["webhook_configs"] = [{"url": url, "send_resolved": True} for url in hooks]
        receivers.append(receiver)
        # `continue`, so the route after these, the desk's, hears it as well.
        routes.append(
            {"receiver": receiver["name"], "matchers": [f'province="{code}"'], "continue": True}
        )
    config["receivers"] = receivers
    config["route"]["routes"] = [*routes, {"receiver": DESK}]
    return config
