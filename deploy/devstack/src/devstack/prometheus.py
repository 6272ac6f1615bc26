"""A Prometheus server on 127.0.0.1 from Debian's ``prometheus`` package, with the repository's
own configuration and alert rules (deploy/prometheus): only the scrape targets are this run's;
and an Alertmanager beside it from ``prometheus-alertmanager``, with a routing of this run's
(`devstack.alert_routes`).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import httpx
import yaml

from devstack.ports import free_port
from devstack.services import ServiceProcess

DEPLOY_DIR = Path(__file__).resolve().parents[3]
CONFIG = DEPLOY_DIR / "prometheus" / "prometheus.yml"
RULES_DIR = DEPLOY_DIR / "prometheus" / "rules"
ALERTMANAGER_CONFIG = DEPLOY_DIR / "alertmanager" / "alertmanager.yml"


class PrometheusLauncherError(RuntimeError):
    """The Prometheus server or the Alertmanager did not start or answer."""


@dataclass
class Served:
    """A server of the Prometheus family, on a port of its own, its log and data in `data_dir`."""

    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_file: ClassVar[str]

    @classmethod
    def _start(cls, data_dir: Path, command: list[str], ready_timeout: float, port: int) -> Self:
        with (data_dir / cls.log_file).open("ab") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        server = cls(f"http://127.0.0.1:{port}", data_dir, process)
        try:
            server._wait_ready(ready_timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        path = self.data_dir / self.log_file
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusLauncherError(f"{self.log_file}: exited\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2, trust_env=False).is_success:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise PrometheusLauncherError(
            f"{self.log_file}: not ready in {timeout} s\n{self.log_tail()}"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


class Alertmanager(Served):
    log_file = "alertmanager.log"

    @classmethod
    def start(
        cls, data_dir: Path, config: Mapping[str, Any], *, ready_timeout: float = 60.0
    ) -> Alertmanager:
        """One with `config` (the repository's, routed: `devstack.alert_routes`), alone: no
        cluster port for peers to gossip on."""
        data_dir.mkdir(parents=True, exist_ok=True)
        config_path = data_dir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(dict(config)), encoding="utf-8")
        port = free_port()
        command = [
            "prometheus-alertmanager",
            f"--config.file={config_path}",
            f"--storage.path={data_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ]
        return cls._start(data_dir, command, ready_timeout, port)


class Prometheus(Served):
    log_file = "prometheus.log"

    @classmethod
    def scraping(
        cls,
        services: Mapping[str, ServiceProcess],
        data_dir: Path,
        alertmanager: Alertmanager | None = None,
    ) -> Prometheus:
        """One that scrapes each of `services` as a job of its name."""
        targets = {n: s.url.removeprefix("http://") for n, s in services.items()}
        return cls.start(data_dir, targets, alertmanager=alertmanager)

    @classmethod
    def start(
        cls,
        data_dir: Path,
        targets: Mapping[str, str],
        *,
        alertmanager: Alertmanager | None = None,
        ready_timeout: float = 60.0,
    ) -> Prometheus:
        """Scrape each job's `host:port` of `targets` with the production intervals and rules,
        and send the alerts to `alertmanager`, if any."""
        data_dir.mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
        config["rule_files"] = [str(RULES_DIR / "*.yml")]
        config["scrape_configs"] = [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ]
        config.pop("alerting", None)  # the compose host name; this run's, if any, below
        if alertmanager is not None:
            target = alertmanager.url.removeprefix("http://")
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
        config_path = data_dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        port = free_port()
        command = [
            "prometheus",
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data_dir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        return cls._start(data_dir, command, ready_timeout, port)

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts pending or firing now, as `/api/v1/alerts` gives them."""
        answer = httpx.get(f"{self.url}/api/v1/alerts", timeout=10, trust_env=False)
        answer.raise_for_status()
        alerts: list[dict[str, Any]] = answer.json()["data"]["alerts"]
        return alerts
