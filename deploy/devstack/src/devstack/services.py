"""The three services as separate processes, the way production runs them."""

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.ports import free_port

PR_SET_PDEATHSIG = 1
SERVICES = ("registration", "attendance", "reporting")
DEFAULT_PORTS = {"registration": 8001, "attendance": 8002, "reporting": 8003}
# How long a SIGTERMed service may take to drain before it is SIGKILLed.
GRACE_SECONDS = 15.0
# How long a service keeps an idle connection open (uvicorn's default is 5 s). Longer than a
# heartbeat interval, so a room reuses its connection, and longer than any client keeps one idle
# (httpx: 5 s; a load balancer: 60 s), so a client never sends on a connection the server is
# closing at that moment. deploy/service.Dockerfile sets the same.
KEEP_ALIVE_S = 75


class ServiceError(RuntimeError):
    """A service did not come up; the message carries the tail of its log."""


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = GRACE_SECONDS) -> None:
        """SIGTERM lets the service drain and commit; SIGKILL only if it does not exit in time."""
        stop_all([self], timeout)


def stop_all(services: Iterable[ServiceProcess], timeout: float = GRACE_SECONDS) -> None:
    """SIGTERM every service before waiting for any, so they drain at the same time; SIGKILL
    what is still running after `timeout`."""
    running = [service for service in services if service.process.poll() is None]
    for service in running:
        service.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for service in running:
        try:
            service.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


def start_service(name: str, *, port: int, env: Mapping[str, str], log_dir: Path) -> ServiceProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                f"{name}.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--timeout-keep-alive",
                str(KEEP_ALIVE_S),
                "--no-access-log",
            ],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
            preexec_fn=_terminate_with_parent,
        )
    return ServiceProcess(name, port, process, log_path)


def _terminate_with_parent() -> None:
    """Ask Linux to SIGTERM the service if whoever started it dies without stopping it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_healthy(service: ServiceProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise ServiceError(f"{service.name} exited:\n{service.log_tail()}")
        try:
            if httpx.get(f"{service.url}/healthz", timeout=3).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise ServiceError(f"{service.name} not healthy after {timeout:.0f} s:\n{service.log_tail()}")


def service_env(name: str, *, bootstrap: str, data_dir: Path) -> dict[str, str]:
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    if name == "registration":
        env["REGISTRATION_DATABASE_URL"] = f"sqlite:///{data_dir / 'registration.db'}"
    if name == "attendance":
        env["ATTENDANCE_DATABASE_URL"] = f"sqlite:///{data_dir / 'attendance.db'}"
    if name == "reporting":
        env["REPORTING_DATABASE_URL"] = f"sqlite:///{data_dir / 'reporting.db'}"
    return env


def start_in(
    name: str,
    *,
    bootstrap: str,
    data_dir: Path,
    port: int | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> ServiceProcess:
    """Start one service on `bootstrap`, keeping its database and log under `data_dir`."""
    env = service_env(name, bootstrap=bootstrap, data_dir=data_dir) | dict(extra_env or {})
    return start_service(name, port=port or free_port(), env=env, log_dir=data_dir / "logs")


@contextmanager
def running_services(
    *,
    bootstrap: str,
    data_dir: Path,
    ports: Mapping[str, int] | None = None,
    extra_env: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[dict[str, ServiceProcess]]:
    """Start the three services, wait until each is healthy, and stop them all on exit."""
    ports = ports or {name: free_port() for name in SERVICES}
    started: dict[str, ServiceProcess] = {}
    try:
        for name in SERVICES:
            extra = (extra_env or {}).get(name, {})
            started[name] = start_in(
                name, bootstrap=bootstrap, data_dir=data_dir, port=ports[name], extra_env=extra
            )
        for service in started.values():
            wait_healthy(service)
        yield started
    finally:
        stop_all(started.values())
