"""`devstack up`: broker, three services and a simulated course, live totals in the terminal."""

import asyncio
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from devstack.kafka import (
    Broker,
    default_cache_dir,
    fetch,
    repo_root,
)
from devstack.services import DEFAULT_PORTS, ServiceProcess, running_services
from devstack.simulate import CoursePlan, register_course, run_point
from servicekit.provision import ensure_topics

console = Console()


def up(plan: CoursePlan, *, data_dir: Path | None = None) -> None:
    data_dir = data_dir or repo_root() / ".var" / time.strftime("run-%Y%m%d-%H%M%S")
    with console.status("Fetching Apache Kafka from Maven Central (cached after the first run)…"):
        fetch(default_cache_dir())
    with console.status("Starting the Kafka broker…"):
        broker = Broker.start(default_cache_dir(), data_dir / "kafka")
    with broker:
        asyncio.run(ensure_topics(broker.bootstrap))
        console.print(f"Kafka broker on [bold]{broker.bootstrap}[/] (pid {broker.pid})")
        console.print("Starting registration, attendance and reporting…")
        with running_services(
            bootstrap=broker.bootstrap, data_dir=data_dir, ports=DEFAULT_PORTS
        ) as services:
            for service in services.values():
                console.print(f"  {service.name:<13} {service.url}/docs   log: {service.log_path}")
            dashboard = f"{services['reporting'].url}/?session={plan.session_code}"
            console.print(f"[bold green]Dashboard:[/] {dashboard}")
            try:
                asyncio.run(simulate(services, plan))
            except KeyboardInterrupt:
                console.print("Stopping the services and the broker…")


async def simulate(services: dict[str, ServiceProcess], plan: CoursePlan) -> None:
    async with (
        httpx.AsyncClient(base_url=services["registration"].url, timeout=10) as registration,
        httpx.AsyncClient(base_url=services["attendance"].url, timeout=10) as attendance,
        httpx.AsyncClient(base_url=services["reporting"].url, timeout=10) as reporting,
    ):
        points = await register_course(registration, plan)
        console.print(f"Registered {len(points)} points for session [bold]{plan.session_code}[/]")
        async with asyncio.TaskGroup() as tasks:
            for point in points:
                tasks.create_task(run_point(attendance, point, plan))
            tasks.create_task(show_totals(reporting, plan.session_code))


async def show_totals(reporting: httpx.AsyncClient, session_code: str) -> None:
    url = f"/v1/sessions/{session_code}/totals"
    with Live(console=console, refresh_per_second=2) as live:
        while True:
            response = await reporting.get(url)
            if response.status_code == 200:
                live.update(_totals_table(response.json(), str(reporting.base_url) + url))
            await asyncio.sleep(1)


def _totals_table(totals: dict[str, int], source: str) -> Table:
    table = Table(title=f"Live totals — {source}", caption="Ctrl-C stops everything")
    for column in (
        "registered",
        "connected",
        "late",
        "disconnected",
        "never connected",
        "learners",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        str(totals["registered"]),
        f"[green]{totals['connected']}",
        f"[yellow]{totals['late']}",
        f"[red]{totals['disconnected']}",
        str(totals["never_connected"]),
        f"{totals['learners_present']} / {totals['learners_expected']}",
    )
    return table
