"""A Prometheus server on 127.0.0.1 from Debian's ``prometheus`` package, with the repository's
own configuration and alert rules (deploy/prometheus): only the scrape targets are this run's.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from devstack.ports import free_port
from devstack.services import ServiceProcess

MONITORING_DIR = Path(__file__).resolve().parents[3] / "prometheus"
CONFIG = MONITORING_DIR / "prometheus.yml"
RULES_DIR = MONITORING_DIR / "rules"
LOG_FILE = "prometheus.log"


class PrometheusLauncherError(RuntimeError):
    """The Prometheus server did not start or answer."""


@dataclass
class Prometheus:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]

    @classmethod
    def scraping(cls, services: Mapping[str, ServiceProcess], data_dir: Path) -> Prometheus:
        """One that scrapes each of `services` as a job of its name."""
        return cls.start(data_dir, {n: s.url.removeprefix("http://") for n, s in services.items()})

    @classmethod
    def start(
        cls, data_dir: Path, targets: Mapping[str, str], *, ready_timeout: float = 60.0
    ) -> Prometheus:
        """Scrape each job's `host:port` of `targets` with the production intervals and rules."""
        data_dir.mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
        config["rule_files"] = [str(RULES_DIR / "*.yml")]
        config["scrape_configs"] = [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ]
        config_path = data_dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        port = free_port()
        with (data_dir / LOG_FILE).open("ab") as log:
            process = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={data_dir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = cls(f"http://127.0.0.1:{port}", data_dir, process)
        try:
            server._wait_ready(ready_timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts pending or firing now, as `/api/v1/alerts` gives them."""
        answer = httpx.get(f"{self.url}/api/v1/alerts", timeout=10, trust_env=False)
        answer.raise_for_status()
        alerts: list[dict[str, Any]] = answer.json()["data"]["alerts"]
        return alerts

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        path = self.data_dir / LOG_FILE
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusLauncherError(f"prometheus exited:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2, trust_env=False).is_success:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise PrometheusLauncherError(f"prometheus not ready in {timeout} s:\n{self.log_tail()}")

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
