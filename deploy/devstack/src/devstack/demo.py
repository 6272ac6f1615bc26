"""`devstack up`: the broker, three services and a simulated course, live totals in the terminal."""

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml
from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from devstack.course import Course, CourseOptions, course_of
from devstack.kafka import Broker, default_cache_dir, fetch, repo_root
from devstack.prometheus import ALERTMANAGER_CONFIG, Alertmanager, Prometheus
from devstack.registering import (
    create_course_and_sessions,
    designate_gateways,
    import_points,
    until_attendance_knows,
)
from devstack.services import DEFAULT_PORTS, ServiceProcess, running_services
from devstack.simulate import DEV_OPERATOR_TOKEN
from devstack.simulation import SimulatedCourse
from devstack.stopping import Stopper
from devstack.summary import Seen, summary
from servicekit.provision import ensure_topics

console = Console()


def up(options: CourseOptions, *, data_dir: Path | None = None) -> None:
    data_dir = data_dir or repo_root() / ".var" / time.strftime("run-%Y%m%d-%H%M%S")
    began = time.monotonic()
    started: list[int] = []  # pids, for a forced stop

    def kill_what_is_left() -> None:
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    with Stopper(console.print, kill_what_is_left) as stopper, contextlib.ExitStack() as running:
        with _progress() as progress:
            with _step(progress, "Fetching Apache Kafka from Maven Central (cached after once)"):
                fetch(default_cache_dir())
            with _step(progress, "Starting the Kafka broker"):
                broker = running.enter_context(
                    Broker.start(default_cache_dir(), data_dir / "kafka")
                )
                started.append(broker.pid)
            with _step(progress, "Creating the topics"):
                asyncio.run(ensure_topics(broker.bootstrap))
            with _step(progress, "Starting registration, attendance and reporting"):
                services = running.enter_context(
                    running_services(
                        bootstrap=broker.bootstrap, data_dir=data_dir, ports=DEFAULT_PORTS
                    )
                )
                started.extend(service.process.pid for service in services.values())
            prometheus, alertmanager = None, None
            # Debian's packages; bin/run installs them.
            if shutil.which("prometheus-alertmanager"):
                with _step(progress, "Starting Alertmanager with the desk's routing"):
                    # The repository's routing as it stands: alerts grouped by province and
                    # session, shown on its page; the example desk hook delivers nowhere.
                    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
                    alertmanager = running.enter_context(
                        Alertmanager.start(data_dir / "alertmanager", config)
                    )
                    started.append(alertmanager.process.pid)
            if shutil.which("prometheus"):
                with _step(progress, "Starting Prometheus with the alert rules"):
                    prometheus = running.enter_context(
                        Prometheus.scraping(services, data_dir / "prometheus", alertmanager)
                    )
                    started.append(prometheus.process.pid)
        console.print(f"Kafka broker on [bold]{broker.bootstrap}[/] (pid {broker.pid})")
        for service in services.values():
            console.print(f"  {service.name:<13} {service.url}/docs   log: {service.log_path}")
        if prometheus is not None:
            console.print(f"  {'prometheus':<13} {prometheus.url}/alerts")
        if alertmanager is not None:
            console.print(f"  {'alertmanager':<13} {alertmanager.url}/#/alerts")
        asyncio.run(stopper.run(_run_course(services, options, began, prometheus)))
    console.print("Stopped.")


async def _run_course(
    services: dict[str, ServiceProcess],
    options: CourseOptions,
    began: float,
    prometheus: Prometheus | None,
) -> None:
    dashboard = f"{services['reporting'].url}/"
    async with (
        httpx.AsyncClient(base_url=services["registration"].url, timeout=60) as registration,
        httpx.AsyncClient(
            base_url=services["attendance"].url,
            timeout=15,
            limits=httpx.Limits(max_connections=64),
        ) as attendance,
        httpx.AsyncClient(base_url=services["reporting"].url, timeout=10) as reporting,
    ):
        course = course_of(options, datetime.now(UTC))
        tokens = await _register(registration, attendance, course)
        console.print(
            f"[bold green]Dashboard:[/] {dashboard}  — {len(course.rows):,} points,"
            f" {course.expected_learners:,} learners expected;"
            f" ready {time.monotonic() - began:.0f} s after start"
        )
        simulation = SimulatedCourse(course, tokens, attendance)
        watching = asyncio.create_task(_watch(reporting, prometheus, simulation, dashboard))
        try:
            await simulation.run()
        finally:
            # Before the clients close: a request cut off by their closing would end in error.
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
            await simulation.abandon()
        console.print(
            f"The course is over. Reports: {services['reporting'].url}"
            f"/v1/courses/{options.course_code}/report?format=csv — Ctrl-C stops everything."
        )
        await asyncio.Event().wait()


async def _register(
    registration: httpx.AsyncClient, attendance: httpx.AsyncClient, course: Course
) -> dict[str, str]:
    with _progress() as progress:
        with _step(progress, f"Creating course {course.options.course_code} and its sessions"):
            await create_course_and_sessions(registration, course, DEV_OPERATOR_TOKEN)
        importing = progress.add_task("Registering the points", total=len(course.rows))
        tokens = await import_points(
            registration,
            course,
            DEV_OPERATOR_TOKEN,
            lambda done: progress.advance(importing, done),
        )
        relaying = progress.add_task("Province relay gateways", total=len(course.gateways()))
        await designate_gateways(
            registration, course, DEV_OPERATOR_TOKEN, lambda done: progress.advance(relaying, done)
        )
        with _step(progress, "Waiting for attendance to read the registry from Kafka"):
            await until_attendance_knows(attendance, course, tokens)
    return tokens


async def _watch(
    reporting: httpx.AsyncClient,
    prometheus: Prometheus | None,
    simulation: SimulatedCourse,
    dashboard: str,
) -> None:
    with Live(console=console, refresh_per_second=2, transient=False) as live:
        while True:
            seen = Seen()
            if simulation.scene.session is not None:
                code = simulation.scene.session.plan.code
                with contextlib.suppress(httpx.TransportError):
                    answer = await reporting.get(f"/v1/sessions/{code}/totals")
                    if answer.status_code == 200:
                        seen.totals = answer.json()
                    answer = await reporting.get(f"/v1/sessions/{code}/incidents")
                    if answer.status_code == 200:
                        seen.incidents = answer.json()
                    if prometheus is not None:
                        alerts = await asyncio.to_thread(prometheus.alerts)
                        seen.alerts = [a for a in alerts if a["state"] == "firing"]
            live.update(summary(seen, simulation.scene, simulation.traffic, dashboard))
            await asyncio.sleep(1)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@contextlib.contextmanager
def _step(progress: Progress, description: str) -> Iterator[None]:
    """A step of unknown length: a pulsing bar while it runs, a full one when it is done."""
    task = progress.add_task(description, total=None)
    yield
    progress.update(task, total=1, completed=1)
