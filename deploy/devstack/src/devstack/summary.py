"""The terminal's live view of a simulated course: what reporting says and what we sent."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from devstack.simulation import Scene, Traffic
from registration.divisions import provinces

WORST_PROVINCES = 5
VIET_NAM = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass
class Seen:
    """What the desk is shown: reporting's totals and open incidents, Prometheus's alerts."""

    totals: dict[str, Any] | None = None
    incidents: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # firing


def summary(seen: Seen, scene: Scene, traffic: Traffic, dashboard: str) -> RenderableType:
    parts: list[RenderableType] = [_heading(scene, dashboard)]
    if seen.totals is not None:
        parts += [_totals(seen.totals), _provinces(seen.totals)]
    parts.append(_alarms(seen))
    parts.append(_traffic(traffic))
    return Group(*parts)


def _alarms(seen: Seen) -> Text:
    text = Text()
    names = provinces()
    for incident in seen.incidents:
        group = incident["group"]
        name = names[group].name if incident["kind"] == "province" and group in names else group
        since = datetime.fromisoformat(incident["opened_at"]).astimezone(VIET_NAM)
        text.append(
            f"Incident: {name}, {incident['points']} points down since {since:%H:%M:%S}\n",
            style="bold red",
        )
    for alert in seen.alerts:
        labels = alert["labels"]
        where = labels.get("province") or labels.get("channel") or labels.get("job") or ""
        text.append(f"Alert firing: {labels['alertname']} {where}\n", style="red")
    if not seen.incidents and not seen.alerts:
        text.append("No incident open, no alert firing\n", style="dim")
    return text


def _heading(scene: Scene, dashboard: str) -> Text:
    text = Text()
    if scene.session is None:
        text.append("Waiting for the next session…\n", style="bold")
    else:
        plan = scene.session.plan
        minutes, seconds = divmod(int(scene.elapsed_s), 60)
        text.append(f"{plan.code} — {plan.title}", style="bold")
        text.append(f"  ({plan.topic})\n", style="dim")
        text.append(f"on air for {minutes}:{seconds:02d}, ends {plan.ends_at:%H:%M:%S} UTC")
        outage = scene.session.outage
        if outage is not None:
            name = provinces()[outage.province_code].name
            if scene.outage_now:
                text.append(f"\n{name} is losing {len(outage.points)} rooms", style="bold red")
            elif scene.elapsed_s < outage.starts_after_s:
                text.append(f"\n{name} will lose {len(outage.points)} rooms at ", style="dim")
                text.append(f"{int(outage.starts_after_s)} s", style="dim")
            else:
                text.append(f"\n{name} is back", style="green")
        text.append(f"\nDashboard: {dashboard}   Ctrl-C stops everything\n", style="cyan")
    return text


def _totals(totals: dict[str, Any]) -> Table:
    title = "Live totals (reporting)"
    if totals.get("unknown"):
        title += f" [bold]— states unknown since {totals.get('judged_until') or 'start'}[/]"
    table = Table(title=title, title_justify="left")
    for column in ("registered", "connected", "late", "disconnected", "never", "learners", "rate"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{totals['registered']:,}",
        f"[green]{totals['connected']:,}",
        f"[yellow]{totals['late']:,}",
        f"[red]{totals['disconnected']:,}",
        f"{totals['never_connected']:,}",
        f"{totals['learners_present']:,} / {totals['learners_expected']:,}",
        f"{totals['attendance_rate']:.0%}",
    )
    return table


def _provinces(totals: dict[str, Any]) -> Table:
    table = Table(title="Provinces with most rooms off the air", title_justify="left")
    for column in ("province", "connected", "late", "disconnected", "never"):
        table.add_column(column, justify="right" if column != "province" else "left")
    names = provinces()
    worst = sorted(
        totals["by_province"].items(),
        key=lambda item: item[1]["registered"] - item[1]["connected"],
        reverse=True,
    )[:WORST_PROVINCES]
    for code, counts in worst:
        table.add_row(
            names[code].name if code in names else code,
            f"{counts['connected']}/{counts['registered']}",
            f"[yellow]{counts['late']}",
            f"[red]{counts['disconnected']}",
            str(counts["never_connected"]),
        )
    return table


def _traffic(traffic: Traffic) -> Text:
    refused = ", ".join(f"{status}: {count:,}" for status, count in sorted(traffic.refused.items()))
    text = Text(
        f"Simulator: {traffic.sent:,} heartbeats sent, {traffic.accepted:,} accepted"
        f", refused {{{refused}}}, {traffic.transport_errors:,} unreachable"
        f", {traffic.skipped:,} skipped while the ingest was saturated",
        style="dim",
    )
    if traffic.last_problem:
        text.append(f"\nlast problem: {traffic.last_problem}", style="yellow")
    return text
