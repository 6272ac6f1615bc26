"""`devstack` command line: fetch, start and stop the local Kafka broker."""

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

from devstack.kafka import (
    STATE_FILE,
    Broker,
    KafkaLauncherError,
    default_cache_dir,
    fetch,
    repo_root,
)
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
) -> None:
    """Start the broker, print its bootstrap address, and run until Ctrl-C or SIGTERM."""
    fresh = data_dir is None
    data = data_dir or _fresh_data_dir()
    # Handlers go in before the JVM starts so that no signal can orphan it.
    with (
        _reported_errors(),
        _signals_interrupt(signal.SIGTERM, signal.SIGHUP),
        Broker.start(cache_dir or default_cache_dir(), data, heap=heap) as broker,
    ):
        _serve(broker)
    # A crashed broker's data dir (and log) is kept for a post-mortem.
    if broker.exit_code not in CLEAN_EXIT_CODES:
        typer.echo(f"broker log: {broker.log_path}", err=True)
    elif fresh and not keep_data:
        shutil.rmtree(broker.data_dir, ignore_errors=True)


@app.command("kafka-stop")
def kafka_stop(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data dir of the broker to stop [default: the one running under .var/]"),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds before SIGTERM becomes SIGKILL")] = 30.0,
) -> None:
    """Stop the broker recorded in <data-dir>/broker.json (SIGTERM, then SIGKILL)."""
    with _reported_errors():
        broker = Broker.from_state(data_dir) if data_dir else _the_running_broker()
        if not broker.is_running():
            broker.stop()  # only clears the stale state file
            typer.echo(f"no broker running from {broker.data_dir} (pid {broker.pid} is gone)")
            return
        broker.stop(timeout=timeout)
    typer.echo(f"stopped Kafka broker pid {broker.pid} ({broker.bootstrap})")


def _serve(broker: Broker) -> None:
    """Create the startup topics, announce the broker, and block until it exits or Ctrl-C."""
    try:
        asyncio.run(ensure_topics(broker.bootstrap))
        typer.echo(f"pid {broker.pid}, data in {broker.data_dir}; Ctrl-C stops", err=True)
        typer.echo(broker.bootstrap)
        broker.wait()
        typer.echo(f"Kafka broker exited with code {broker.exit_code}", err=True)
    except KeyboardInterrupt:
        typer.echo("stopping Kafka broker", err=True)


def _fresh_data_dir() -> Path:
    var = repo_root() / ".var"
    var.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="kafka-", dir=var))


def _the_running_broker() -> Broker:
    candidates = [Broker.from_state(path.parent) for path in _state_files()]
    running = [broker for broker in candidates if broker.is_running()]
    if len(running) == 1:
        return running[0]
    if not running:
        raise KafkaLauncherError(f"no running broker found under {repo_root() / '.var'}")
    listing = "\n".join(f"  {broker.data_dir} (pid {broker.pid})" for broker in running)
    raise KafkaLauncherError(f"several brokers are running; pick one with --data-dir:\n{listing}")


def _state_files() -> list[Path]:
    return sorted((repo_root() / ".var").glob(f"*/{STATE_FILE}"))


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
    # SIGINT too: started from a script in the background it would be ignored, not Ctrl-C.
    with _reported_errors(), _signals_interrupt(signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        run_demo(options)
