"""`devstack up` (what `bin/run` runs) stops cleanly while its simulated course is sending: the
first SIGINT or SIGTERM stops the simulation, the services, Prometheus and the broker in order
without a traceback; a second one, later, kills what is left and exits at once."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.services import DEFAULT_PORTS
from devstack.stopping import FORCED_EXIT_STATUS, SAME_PRESS_SECONDS

pytestmark = pytest.mark.e2e
DEVSTACK = Path(sys.executable).parent / "devstack"
# Patience only: how long a broken start or stop may hang the test, not a speed claim.
START_PATIENCE, STOP_PATIENCE = 180.0, 60.0
# What an orderly stop must never print.
TROUBLE = re.compile(r"Traceback|Task exception|never retrieved|Exception")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    output = tmp_path / "up.out"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [str(DEVSTACK), "up", "--points", "600", "--interval", "2"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=os.environ | {"COLUMNS": "120"},
        )
    try:
        yield process, output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _until_sending(process: subprocess.Popen[str], output: Path) -> int:
    """Wait until the course's heartbeats reach the totals; the broker's pid."""
    deadline = time.monotonic() + START_PATIENCE
    reporting = f"http://127.0.0.1:{DEFAULT_PORTS['reporting']}"
    while time.monotonic() < deadline:
        assert process.poll() is None, output.read_text()
        broker = re.search(r"Kafka broker on \S+ \(pid (\d+)\)", output.read_text())
        if broker and _connected(reporting) > 0:
            return int(broker.group(1))
        time.sleep(1)
    raise AssertionError(f"the course never reached the totals:\n{output.read_text()}")


def _connected(reporting: str) -> int:
    try:
        metrics = httpx.get(f"{reporting}/metrics", timeout=2).text
    except httpx.TransportError:
        return 0
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(metrics)
            for sample in family.samples
            if sample.name == "session_points" and sample.labels.get("state") == "connected"
        )
    )


def _monitoring_ports(text: str) -> list[int]:
    """The ports of Prometheus and Alertmanager, printed as their alerts pages (they run
    wherever bin/run installed them)."""
    found = [
        re.search(rf"{name}\s+http://127\.0\.0\.1:(\d+)/", text)
        for name in ("prometheus", "alertmanager")
    ]
    assert all(found), text
    return [int(match.group(1)) for match in found if match]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _gone(pid: int) -> bool:
    """Whether the process has ended (waiting a little for init to reap an orphan)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_one_signal_stops_everything_in_order(
    running: tuple[subprocess.Popen[str], Path],
) -> None:
    process, output = running
    broker = _until_sending(process, output)
    process.send_signal(signal.SIGINT)
    assert process.wait(STOP_PATIENCE) == 0
    text = output.read_text()
    assert "Stopped." in text.splitlines()[-1], text
    assert not TROUBLE.search(text), text
    assert _gone(broker)
    ports = [*DEFAULT_PORTS.values(), *_monitoring_ports(text)]
    assert not [port for port in ports if _listening(port)]


def test_a_second_signal_forces_the_stop(running: tuple[subprocess.Popen[str], Path]) -> None:
    process, output = running
    broker = _until_sending(process, output)
    process.send_signal(signal.SIGTERM)
    time.sleep(SAME_PRESS_SECONDS * 2)  # a second press, not the same one passed on twice
    process.send_signal(signal.SIGTERM)
    assert process.wait(STOP_PATIENCE) == FORCED_EXIT_STATUS
    text = output.read_text()
    assert "Forced" in text and not TROUBLE.search(text), text
    assert _gone(broker)
    ports = [*DEFAULT_PORTS.values(), *_monitoring_ports(text)]
    assert not [port for port in ports if _listening(port)]
