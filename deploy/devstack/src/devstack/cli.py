"""`devstack` command line: fetch, start and stop the local Kafka broker (or cluster)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
import yaml

from devstack.alert_routes import CoordinatorsError, read_coordinators, routed
from devstack.kafka import (
    CLUSTER_STATE_FILE,
    STATE_FILE,
    Broker,
    Cluster,
    KafkaLauncherError,
    default_cache_dir,
    fetch,
    repo_root,
)
from devstack.prometheus import ALERTMANAGER_CONFIG
from servicekit.provision import ensure_topics

# 143 = 128 + SIGTERM: the JVM's exit code after Kafka's shutdown hook has run.
CLEAN_EXIT_CODES = (0, 143)

app = typer.Typer(help="Local development stack.", no_args_is_help=True)

CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        help="Where the Maven repository and broker jars are kept "
        "[default: $DEVSTACK_CACHE or <repo>/.cache/kafka]"
    ),
]


@app.command("alert-routes")
def alert_routes(
    coordinators: Annotated[
        Path, typer.Option(help="CSV: province_code,email,webhook (one address per row)")
    ],
    out: Annotated[Path, typer.Option(help="Where to write Alertmanager's configuration")],
    desk_webhook: Annotated[
        str, typer.Option(help="The desk's webhook [default: the base's]")
    ] = "",
) -> None:
    """Render deploy/alertmanager/alertmanager.yml with a route to each province's
    coordinators; check it with `amtool check-config OUT` and mount it as compose does."""
    try:
        config = routed(
            yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8")),
            read_coordinators(coordinators),
            desk_webhook=desk_webhook,
        )
    except CoordinatorsError as error:
        typer.echo(f"{coordinators}: {error}", err=True)
        raise typer.Exit(2) from None
    out.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    provinces = len(config["route"]["routes"]) - 1
    typer.echo(f"{out}: the desk and {provinces} provinces' coordinators")


@app.command("kafka-fetch")
def kafka_fetch(cache_dir: CacheDirOption = None) -> None:
    """Download the Kafka broker jars from Maven Central into the cache (once)."""
    with _reported_errors():
        libs = fetch(cache_dir or default_cache_dir())
    typer.echo(f"Kafka jars in {libs}")


@app.command("kafka-start")
def kafka_start(
    cache_dir: CacheDirOption = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Broker data dir [default: a fresh temp dir under <repo>/.var/]"),
    ] = None,
    heap: Annotated[str, typer.Option(help="JVM heap size (-Xms/-Xmx)")] = "512m",
    keep_data: Annotated[
        bool, typer.Option(help="Keep the fresh temp data dir after the broker stops")
    ] = False,
    nodes: Annotated[
        int,
        typer.Option(
            min=1,
            help="1: a single broker; more: a KRaft cluster of that many nodes, its topics "
            "replicated 3 times (as often as there are nodes, if fewer)",
        ),
    ] = 1,
) -> None:
    """Start the broker, print its bootstrap address(es), and run until Ctrl-C or SIGTERM."""
    fresh = data_dir is None
    data = data_dir or _fresh_data_dir()
    cache = cache_dir or default_cache_dir()
    # Handlers go in before the JVM starts so that no signal can orphan it.
    with (
        _reported_errors(),
        _signals_interrupt(signal.SIGTERM, signal.SIGHUP),
        (
            Broker.start(cache, data, heap=heap)
            if nodes == 1
            else Cluster.start(cache, data, nodes, heap=heap)
        ) as kafka,
    ):
        _serve(kafka)
    # A crashed broker's data dir (and log) is kept for a post-mortem.
    crashed = [node for node in _nodes(kafka) if node.exit_code not in CLEAN_EXIT_CODES]
    for node in crashed:
        typer.echo(f"broker log: {node.log_path}", err=True)
    if fresh and not keep_data and not crashed:
        shutil.rmtree(kafka.data_dir, ignore_errors=True)


@app.command("kafka-stop")
def kafka_stop(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Data dir of the broker or cluster to stop [default: the one running under .var/]"
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds before SIGTERM becomes SIGKILL")] = 30.0,
) -> None:
    """Stop the broker recorded in <data-dir>/broker.json, or the cluster of <data-dir>/cluster.json
    (SIGTERM, then SIGKILL)."""
    with _reported_errors():
        kafka = _recorded(data_dir) if data_dir else _the_running_kafka()
        if not kafka.is_running():
            kafka.stop()  # only clears the stale state files
            typer.echo(f"no broker running from {kafka.data_dir} (pid {_pids(kafka)} is gone)")
            return
        kafka.stop(timeout=timeout)
    typer.echo(f"stopped Kafka {_what(kafka)} pid {_pids(kafka)} ({kafka.bootstrap})")


def _serve(kafka: Broker | Cluster) -> None:
    """Create the startup topics, announce the broker, and block until it exits or Ctrl-C."""
    what = _what(kafka)
    try:
        replication = kafka.replication_factor if isinstance(kafka, Cluster) else 1
        asyncio.run(ensure_topics(kafka.bootstrap, replication_factor=replication))
        typer.echo(f"pid {_pids(kafka)}, data in {kafka.data_dir}; Ctrl-C stops", err=True)
        typer.echo(kafka.bootstrap)
        kafka.wait()
        codes = ", ".join(str(node.exit_code) for node in _nodes(kafka))
        typer.echo(f"Kafka {what} exited with code {codes}", err=True)
    except KeyboardInterrupt:
        typer.echo(f"stopping Kafka {what}", err=True)


def _nodes(kafka: Broker | Cluster) -> list[Broker]:
    return kafka.nodes if isinstance(kafka, Cluster) else [kafka]


def _pids(kafka: Broker | Cluster) -> str:
    return ", ".join(str(node.pid) for node in _nodes(kafka))


def _what(kafka: Broker | Cluster) -> str:
    return "cluster" if isinstance(kafka, Cluster) else "broker"


def _fresh_data_dir() -> Path:
    var = repo_root() / ".var"
    var.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="kafka-", dir=var))


def _recorded(data_dir: Path) -> Broker | Cluster:
    if (data_dir / CLUSTER_STATE_FILE).is_file():
        return Cluster.from_state(data_dir)
    return Broker.from_state(data_dir)


def _the_running_kafka() -> Broker | Cluster:
    candidates = [_recorded(path.parent) for path in _state_files()]
    running = [kafka for kafka in candidates if kafka.is_running()]
    if len(running) == 1:
        return running[0]
    if not running:
        raise KafkaLauncherError(f"no running broker found under {repo_root() / '.var'}")
    listing = "\n".join(f"  {kafka.data_dir} (pid {_pids(kafka)})" for kafka in running)
    raise KafkaLauncherError(f"several brokers are running; pick one with --data-dir:\n{listing}")


def _state_files() -> list[Path]:
    # A cluster's nodes keep their own broker.json one level further down, in node-<id>/.
    var = repo_root() / ".var"
    return sorted([*var.glob(f"*/{STATE_FILE}"), *var.glob(f"*/{CLUSTER_STATE_FILE}")])


@contextlib.contextmanager
def _reported_errors() -> Iterator[None]:
    try:
        yield
    except KafkaLauncherError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


@contextlib.contextmanager
def _signals_interrupt(*signums: signal.Signals) -> Iterator[None]:
    """Treat these signals like Ctrl-C, so one code path stops the broker.

    Only the first one interrupts: a second Ctrl-C (or `uv run` passing the same one on) must
    not cut short the orderly stop of the services and the broker it started.
    """
    stopping = False

    def interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@app.command("up")
def up(
    points: Annotated[
        int, typer.Option(min=1, max=100_000, help="Simulated connection points")
    ] = 3_555,
    interval: Annotated[
        float, typer.Option(min=1.0, help="Heartbeat interval of the sessions, in seconds")
    ] = 5.0,
    speed: Annotated[
        float,
        typer.Option(min=1.0, help="Simulated seconds per real second (60: a session in minutes)"),
    ] = 1.0,
    seed: Annotated[
        int, typer.Option(help="Seed of the simulation: same seed, same course")
    ] = 2026,
) -> None:
    """Run the system: the broker, the three services, and a simulated two-day course to watch."""
    from devstack.course import CourseOptions
    from devstack.demo import up as run_demo

    options = CourseOptions(points=points, heartbeat_interval_s=interval, speed=speed, seed=seed)
    with _reported_errors():
        run_demo(options)  # it stops on Ctrl-C, SIGTERM or SIGHUP (devstack.stopping)
