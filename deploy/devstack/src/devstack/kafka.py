"""A real single-node Apache Kafka 4.x broker (KRaft, combined broker+controller) on 127.0.0.1.

The broker is assembled from Maven Central jars (see ``deploy/devstack/kafka/pom.xml``) and run
with ``java -cp 'libs/*' kafka.Kafka``: no Docker, no release tarball.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

KAFKA_DIR = Path(__file__).resolve().parents[2] / "kafka"
POM = KAFKA_DIR / "pom.xml"
LOG4J2_CONFIG = KAFKA_DIR / "log4j2.properties"

COPY_DEPENDENCIES = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
STATE_FILE = "broker.json"
LOG_FILE = "broker.log"
CONFIG_FILE = "server.properties"
LOG_TAIL_LINES = 40
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class KafkaLauncherError(RuntimeError):
    """The local broker could not be fetched, started or stopped."""


# --- where things live ---------------------------------------------------------------------------


def repo_root() -> Path:
    for start in (Path(__file__).resolve().parent, Path.cwd()):
        for folder in (start, *start.parents):
            if (folder / "uv.lock").is_file():
                return folder
    raise KafkaLauncherError("cannot find the repository root (no uv.lock above this package)")


def default_cache_dir() -> Path:
    override = os.environ.get("DEVSTACK_CACHE")
    return Path(override) if override else repo_root() / ".cache" / "kafka"


# --- fetching the jars ---------------------------------------------------------------------------


def fetch(cache_dir: Path) -> Path:
    """Download the broker's jars into ``<cache_dir>/libs`` once; return that folder."""
    cache_dir = cache_dir.resolve()
    libs = cache_dir / "libs"
    stamp = cache_dir / "libs.stamp"
    fingerprint = _pom_fingerprint()
    if _is_fetched(libs, stamp, fingerprint):
        return libs
    _require_tools("java", "mvn")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(cache_dir / "fetch.lock"):
        # Another process may have finished the same fetch while we waited for the lock.
        if _is_fetched(libs, stamp, fingerprint):
            return libs
        stamp.unlink(missing_ok=True)
        # Stale jars of another version would end up on the same 'libs/*' class path.
        shutil.rmtree(libs, ignore_errors=True)
        _run_maven(cache_dir, libs)
        stamp.write_text(fingerprint + "\n")
    return libs


def _pom_fingerprint() -> str:
    if not POM.is_file():
        raise KafkaLauncherError(f"broker POM not found at {POM}")
    digest = hashlib.sha256(POM.read_bytes())
    digest.update(COPY_DEPENDENCIES.encode())
    return digest.hexdigest()


def _is_fetched(libs: Path, stamp: Path, fingerprint: str) -> bool:
    try:
        recorded = stamp.read_text().strip()
    except FileNotFoundError:
        return False
    return recorded == fingerprint and any(libs.glob("kafka_2.13-*.jar"))


def _require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        raise KafkaLauncherError(
            f"{' and '.join(missing)} not found on PATH: the local Kafka broker needs "
            "a JDK (17+) and Maven (3.8+)"
        )


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_maven(cache_dir: Path, libs: Path) -> None:
    command = [
        "mvn", "-B", "-q", "-ntp",
        "-f", str(POM),
        f"-Dmaven.repo.local={cache_dir / 'm2'}",
        COPY_DEPENDENCIES,
        "-DincludeScope=runtime",
        f"-DoutputDirectory={libs}",
    ]  # fmt: skip
    # cwd in the cache so Maven never drops a target/ folder into the source tree.
    result = subprocess.run(
        command, cwd=cache_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False
    )
    if result.returncode != 0:
        # Maven 3.8 emits colour resets even in batch mode.
        output = ANSI_ESCAPE.sub("", result.stdout.decode(errors="replace"))
        raise KafkaLauncherError(
            f"mvn failed with exit code {result.returncode} fetching the Kafka jars:\n"
            + _tail(output)
        )


# --- the broker process --------------------------------------------------------------------------


@dataclass
class Broker:
    """A broker started by :meth:`start`, or found again through its state file."""

    pid: int
    port: int
    controller_port: int
    data_dir: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_FILE

    @classmethod
    def start(
        cls,
        cache_dir: Path,
        data_dir: Path,
        *,
        heap: str = "512m",
        ready_timeout: float = 60.0,
        ports: tuple[int, int] | None = None,
    ) -> Broker:
        """Start a broker; `ports` (client, controller) brings one back where clients expect it."""
        libs = fetch(cache_dir)
        data_dir = data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        _refuse_if_running(data_dir)
        port, controller_port = ports or _free_ports(2)
        log_dir = data_dir / "kraft-logs"
        config = data_dir / CONFIG_FILE
        config.write_text(_server_properties(port, controller_port, log_dir))
        _format_storage(libs, config, _existing_cluster_id(log_dir) or _new_cluster_id())
        process = _launch(libs, config, data_dir / LOG_FILE, heap)
        broker = cls(process.pid, port, controller_port, data_dir, process)
        try:
            broker._wait_until_ready(ready_timeout)
        except BaseException:
            broker.stop(timeout=5)
            raise
        broker._write_state()
        return broker

    @classmethod
    def from_state(cls, data_dir: Path) -> Broker:
        """The broker a (possibly other) process started in ``data_dir``."""
        path = data_dir.resolve() / STATE_FILE
        try:
            state = json.loads(path.read_text())
            return cls(
                int(state["pid"]), int(state["port"]), int(state["controller_port"]), path.parent
            )
        except FileNotFoundError:
            raise KafkaLauncherError(f"no broker state file at {path}") from None
        except (KeyError, TypeError, ValueError) as error:
            raise KafkaLauncherError(f"unreadable broker state file {path}: {error!r}") from None

    @property
    def exit_code(self) -> int | None:
        """The broker's exit code, if this process started it and it has exited."""
        return None if self._process is None else self._process.poll()

    def is_running(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return _is_our_broker(self.pid, self.config_path)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the broker exits or ``timeout`` passes; True when it has exited."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_running():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the broker's own PID (Kafka's shutdown hook flushes), SIGKILL after timeout."""
        if self.is_running():
            self._signal(signal.SIGTERM)
            if not self.wait(timeout):
                self._signal(signal.SIGKILL)
                self.wait(10)
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)

    def __enter__(self) -> Broker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _signal(self, signum: signal.Signals) -> None:
        # Popen.send_signal refuses once the child is reaped, so a recycled PID is never hit.
        if self._process is not None:
            self._process.send_signal(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not _accepts_connections(self.port):
            if not self.is_running():
                raise KafkaLauncherError(
                    f"Kafka broker exited before serving on {self.bootstrap}; "
                    f"end of {self.log_path}:\n{_tail_file(self.log_path)}"
                )
            if time.monotonic() >= deadline:
                raise KafkaLauncherError(
                    f"Kafka broker not serving on {self.bootstrap} after {timeout:.0f} s; "
                    f"end of {self.log_path}:\n{_tail_file(self.log_path)}"
                )
            time.sleep(0.1)

    def _write_state(self) -> None:
        state = {
            "pid": self.pid,
            "port": self.port,
            "controller_port": self.controller_port,
            "bootstrap": self.bootstrap,
        }
        path = self.data_dir / STATE_FILE
        partial = path.with_suffix(".json.tmp")
        partial.write_text(json.dumps(state, indent=2) + "\n")
        partial.replace(path)


def _refuse_if_running(data_dir: Path) -> None:
    if not (data_dir / STATE_FILE).is_file():
        return
    previous = Broker.from_state(data_dir)
    if previous.is_running():
        raise KafkaLauncherError(
            f"a broker started from {data_dir} is still running (pid {previous.pid}, "
            f"{previous.bootstrap})"
        )


def _free_ports(count: int) -> list[int]:
    # All sockets stay bound until every port is picked, so the ports differ.
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _server_properties(port: int, controller_port: int, log_dir: Path) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # The 128 MiB default does not fit next to everything else in a small heap.
        "log.cleaner.dedupe.buffer.size": "16777216",
        # Topics are created explicitly with their partition counts and configs; a typo'd or
        # forgotten topic should fail loudly instead of appearing with broker defaults.
        "auto.create.topics.enable": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _existing_cluster_id(log_dir: Path) -> str | None:
    # Restarting on a used data dir: format -g still insists on the id already on disk.
    try:
        lines = (log_dir / "meta.properties").read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id":
            return value.strip()
    return None


def _new_cluster_id() -> str:
    # Kafka's Uuid text form: URL-safe base64 of the 16 bytes without padding; Kafka itself
    # never hands out ids starting with '-' because they read as command-line options.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _java_command(libs: Path, heap: str, main_class: str, *args: str) -> list[str]:
    return [
        "java",
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
        # No shell involved: the JVM expands the wildcard itself.
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


def _format_storage(libs: Path, config: Path, cluster_id: str) -> None:
    _require_tools("java")
    command = _java_command(
        libs, "256m", "kafka.tools.StorageTool",
        "format", "--standalone", "-t", cluster_id, "-c", str(config), "-g",
    )  # fmt: skip
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise KafkaLauncherError(
            f"formatting Kafka storage failed (exit code {result.returncode}):\n"
            + _tail(result.stdout.decode(errors="replace"))
        )


def _launch(libs: Path, config: Path, log_path: Path, heap: str) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        # Own session and process group: Ctrl-C in the terminal reaches the launcher, which
        # then stops the broker cleanly, instead of both racing on the same SIGINT.
        return subprocess.Popen(
            _java_command(libs, heap, "kafka.Kafka", str(config)),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _is_our_broker(pid: int, config: Path) -> bool:
    """True if ``pid`` is a live (not zombie) Kafka broker running ``config``."""
    proc = Path("/proc") / str(pid)
    try:
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    # The PID may have been recycled by an unrelated process since the state file was written.
    return state != "Z" and b"kafka.Kafka" in cmdline and str(config).encode() in cmdline


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _tail_file(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return _tail(path.read_text(errors="replace"), lines)
    except FileNotFoundError:
        return "(no log file)"
