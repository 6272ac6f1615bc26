"""Real Apache Kafka 4.x on 127.0.0.1 (KRaft, combined broker+controller nodes): a single broker,
or a :class:`Cluster` of several in one static quorum.

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
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code

from devstack.ports import free_ports

KAFKA_DIR = Path(__file__).resolve().parents[2] / "kafka"
POM = KAFKA_DIR / "pom.xml"
LOG4J2_CONFIG = KAFKA_DIR / "log4j2.properties"

COPY_DEPENDENCIES = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
STATE_FILE = "broker.json"
# The JVM's JIT and GC flags, under the name Kafka's own launcher reads them by
# (bin/kafka-run-class.sh). The tests set C1 only (-XX:TieredStopAtLevel=1), which halves a
# broker's CPU to start and to idle; the default keeps C2 for sustained load (the benchmarks).
PERFORMANCE_OPTS = "KAFKA_JVM_PERFORMANCE_OPTS"
DEFAULT_PERFORMANCE_OPTS = "-XX:+UseG1GC"
# A storage format is a JVM that lives a second or two: C2 would only cost CPU.
SHORT_LIVED_OPTS = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"
CLUSTER_STATE_FILE = "cluster.json"
LOG_FILE = "broker.log"
CONFIG_FILE = "server.properties"
LOG_TAIL_LINES = 40
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_LISTENER_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_OWN_LISTENERS = ("PLAINTEXT", "CONTROLLER")


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


@dataclass(frozen=True)
class _Node:
    """What one node's server.properties says; a restart writes the same one again."""

    port: int
    controller_port: int
    node_id: int = 1
    # A static `controller.quorum.voters` list; None is a quorum of this node alone.
    voters: str | None = None
    replication_factor: int = 1
    extra_listeners: Mapping[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class Broker:
    """A broker started by :meth:`start`, or found again through its state file."""

    pid: int
    port: int
    controller_port: int
    data_dir: Path
    # Listener name -> (bound port, advertised port); see :meth:`start`.
    extra_listeners: Mapping[str, tuple[int, int]] = field(default_factory=dict)
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
        extra_listeners: Mapping[str, tuple[int, int]] = {},
    ) -> Broker:
        """Start a broker; `ports` (client, controller) brings one back where clients expect it.

        Each of `extra_listeners` (name -> (bind port, advertised port)) is one more plaintext
        listener on 127.0.0.1, for a TCP proxy that listens on the advertised port and forwards
        to the bound one: clients that bootstrap through the proxy are told the proxy's address,
        so they stay behind it when they reconnect. Pass the same ones again on a restart.
        """
        _check_listener_names(extra_listeners)
        port, controller_port = ports or free_ports(2)
        node = _Node(port, controller_port, extra_listeners=dict(extra_listeners))
        return cls._start(cache_dir, data_dir.resolve(), node, heap, ready_timeout)

    @classmethod
    def from_state(cls, data_dir: Path) -> Broker:
        """The broker a (possibly other) process started in ``data_dir``."""
        path = data_dir.resolve() / STATE_FILE
        try:
            state = json.loads(path.read_text())
            listeners = {
                str(name): (int(bound), int(advertised))
                for name, (bound, advertised) in state.get("extra_listeners", {}).items()
            }
            return cls(
                int(state["pid"]),
                int(state["port"]),
                int(state["controller_port"]),
                path.parent,
                listeners,
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
        _stop_together([self], timeout)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL, as a crash ends it: no shutdown hook; state file and data stay as they are."""
        if not self.is_running():
            return
        self._signal(signal.SIGKILL)
        if not self.wait(timeout):
            raise KafkaLauncherError(f"Kafka broker pid {self.pid} outlived SIGKILL by {timeout} s")

    def __enter__(self) -> Broker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @classmethod
    def _start(
        cls, cache_dir: Path, data_dir: Path, node: _Node, heap: str, ready_timeout: float
    ) -> Broker:
        libs = fetch(cache_dir)
        _prepare(libs, data_dir, node, cluster_id=None)
        broker = cls._launched(libs, data_dir, node, heap)
        try:
            broker._wait_until_ready(ready_timeout)
        except BaseException:
            broker.stop(timeout=5)
            raise
        broker._write_state()
        return broker

    @classmethod
    def _launched(cls, libs: Path, data_dir: Path, node: _Node, heap: str) -> Broker:
        """The JVM of a prepared node, started but not necessarily serving yet."""
        process = _launch(libs, data_dir / CONFIG_FILE, data_dir / LOG_FILE, heap)
        return cls(
            process.pid,
            node.port,
            node.controller_port,
            data_dir,
            dict(node.extra_listeners),
            _process=process,
        )

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
        _write_json(
            self.data_dir / STATE_FILE,
            {
                "pid": self.pid,
                "port": self.port,
                "controller_port": self.controller_port,
                "bootstrap": self.bootstrap,
                "extra_listeners": {
                    name: list(ports) for name, ports in self.extra_listeners.items()
                },
            },
        )


# --- a cluster of them ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionState:
    """Where a partition lives right now, as indices into :attr:`Cluster.nodes`."""

    leader: int | None
    replicas: tuple[int, ...]
    in_sync: tuple[int, ...]


@dataclass
class Cluster:
    """Combined broker+controller nodes in one static KRaft quorum, on 127.0.0.1.

    Node ``i`` of :attr:`nodes` has node.id ``i + 1`` and its data in ``<data_dir>/node-<i + 1>``.
    """

    data_dir: Path
    nodes: list[Broker]
    cache_dir: Path
    heap: str = "512m"

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def replication_factor(self) -> int:
        return _replication_for(len(self.nodes))

    @classmethod
    def start(
        cls,
        cache_dir: Path,
        data_dir: Path,
        nodes: int = 3,
        *,
        heap: str = "512m",
        ready_timeout: float = 90.0,
    ) -> Cluster:
        """Start ``nodes`` nodes together and return once every one serves clients."""
        if nodes < 1:
            raise ValueError(f"a cluster needs at least one node, not {nodes}")
        libs = fetch(cache_dir)
        cluster = cls(data_dir.resolve(), [], cache_dir.resolve(), heap)
        ports = free_ports(2 * nodes)
        settings = _cluster_nodes(list(zip(ports[::2], ports[1::2], strict=True)))
        cluster._prepare_all(libs, settings)
        try:
            # Every JVM runs before any is waited for: a node serves only once a majority of
            # the quorum is up, so waiting for the first alone would never end.
            for index, node in enumerate(settings):
                cluster.nodes.append(Broker._launched(libs, cluster._node_dir(index), node, heap))
            deadline = time.monotonic() + ready_timeout
            for broker in cluster.nodes:
                broker._wait_until_ready(max(0.0, deadline - time.monotonic()))
        except BaseException:
            cluster.stop(timeout=5)
            raise
        for broker in cluster.nodes:
            broker._write_state()
        cluster._write_state()
        return cluster

    @classmethod
    def from_state(cls, data_dir: Path) -> Cluster:
        """The cluster a (possibly other) process started in ``data_dir``."""
        path = data_dir.resolve() / CLUSTER_STATE_FILE
        try:
            state = json.loads(path.read_text())
            nodes = [Broker.from_state(path.parent / str(name)) for name in state["nodes"]]
            return cls(path.parent, nodes, Path(state["cache_dir"]), str(state["heap"]))
        except FileNotFoundError:
            raise KafkaLauncherError(f"no cluster state file at {path}") from None
        except (KeyError, TypeError, ValueError) as error:
            raise KafkaLauncherError(f"unreadable cluster state file {path}: {error!r}") from None

    def restart(self, index: int, *, ready_timeout: float = 60.0) -> Broker:
        """Start node ``index`` again (after a kill or stop) on its ports and its data."""
        ports = [(node.port, node.controller_port) for node in self.nodes]
        node = _cluster_nodes(ports)[index]
        self.nodes[index] = Broker._start(
            self.cache_dir, self._node_dir(index), node, self.heap, ready_timeout
        )
        return self.nodes[index]

    @property
    def exit_codes(self) -> list[int | None]:
        return [node.exit_code for node in self.nodes]

    def is_running(self) -> bool:
        """True while any node runs."""
        return any(node.is_running() for node in self.nodes)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every node has exited or ``timeout`` passes; True when all have."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for node in self.nodes:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not node.wait(remaining):
                return False
        return True

    def stop(self, timeout: float = 30.0) -> None:
        _stop_together(self.nodes, timeout)
        (self.data_dir / CLUSTER_STATE_FILE).unlink(missing_ok=True)

    async def partition(self, topic: str, partition: int) -> PartitionState:
        """Leader, replicas and in-sync replicas of one partition, from cluster metadata."""
        described = await _partitions(self.bootstrap, topic)
        try:
            found = next(p for p in described if p["partition"] == partition)
        except StopIteration:
            raise KafkaLauncherError(f"{topic} has no partition {partition}") from None
        leader: int = found["leader"]
        return PartitionState(
            # Metadata names a missing leader -1.
            leader=None if leader < 0 else _index_of(leader),
            replicas=tuple(_index_of(node_id) for node_id in found["replicas"]),
            in_sync=tuple(_index_of(node_id) for node_id in found["isr"]),
        )

    async def leader_of(self, topic: str, partition: int) -> int:
        """The index in :attr:`nodes` of the node leading ``topic``'s ``partition``."""
        leader = (await self.partition(topic, partition)).leader
        if leader is None:
            raise KafkaLauncherError(f"{topic} partition {partition} has no leader right now")
        return leader

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _node_dir(self, index: int) -> Path:
        return self.data_dir / f"node-{index + 1}"

    def _prepare_all(self, libs: Path, settings: Sequence[_Node]) -> None:
        # On a restart from the same data dir the id already on disk must be kept.
        cluster_id = _existing_cluster_id(self._node_dir(0) / "kraft-logs") or _new_cluster_id()
        # Each format is a JVM of its own, seconds apiece on a small machine; they take no
        # ports and end by themselves, so threads cannot leave anything behind.
        with ThreadPoolExecutor(len(settings)) as pool:
            formats = [
                pool.submit(_prepare, libs, self._node_dir(index), node, cluster_id)
                for index, node in enumerate(settings)
            ]
        for done in formats:
            done.result()

    def _write_state(self) -> None:
        _write_json(
            self.data_dir / CLUSTER_STATE_FILE,
            {
                "nodes": [node.data_dir.name for node in self.nodes],
                "bootstrap": self.bootstrap,
                "cache_dir": str(self.cache_dir),
                "heap": self.heap,
            },
        )


def _replication_for(nodes: int) -> int:
    # Three copies, the usual production choice, where there are nodes enough to hold them.
    return min(nodes, 3)


def _index_of(node_id: int) -> int:
    # _cluster_nodes numbers the nodes from 1, Kafka's custom; Cluster.nodes counts from 0.
    return node_id - 1


def _cluster_nodes(ports: Sequence[tuple[int, int]]) -> list[_Node]:
    """Node ids 1.. on each (client, controller) port pair, all voters of one static quorum."""
    voters = ",".join(
        f"{node_id}@127.0.0.1:{controller}"
        for node_id, (_, controller) in enumerate(ports, start=1)
    )
    return [
        _Node(port, controller, node_id, voters, _replication_for(len(ports)))
        for node_id, (port, controller) in enumerate(ports, start=1)
    ]


async def _partitions(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] != 0:
        error = for_code(described["error_code"])
        raise KafkaLauncherError(f"describing {topic} failed: {error.__name__}")
    partitions: list[dict[str, Any]] = described["partitions"]
    return partitions


def _stop_together(brokers: Sequence[Broker], timeout: float) -> None:
    """SIGTERM every broker before waiting for any, SIGKILL what is left after ``timeout``.

    A node's controlled shutdown needs the controller quorum; stopped one after another, the
    last nodes would wait for a majority that has already gone.
    """
    running = [broker for broker in brokers if broker.is_running()]
    for broker in running:
        broker._signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for broker in running:
        if not broker.wait(max(0.0, deadline - time.monotonic())):
            broker.kill()
    for broker in brokers:
        (broker.data_dir / STATE_FILE).unlink(missing_ok=True)


# --- files, ports and processes ------------------------------------------------------------------


def _prepare(libs: Path, data_dir: Path, node: _Node, cluster_id: str | None) -> None:
    """Write the node's server.properties and format its storage (once: -g keeps what is there)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    _refuse_if_running(data_dir)
    log_dir = data_dir / "kraft-logs"
    config = data_dir / CONFIG_FILE
    config.write_text(_server_properties(node, log_dir))
    # On a used data dir, format -g still insists on the id already on disk.
    cluster_id = _existing_cluster_id(log_dir) or cluster_id or _new_cluster_id()
    _format_storage(libs, config, cluster_id, standalone=node.voters is None)


def _write_json(path: Path, state: Mapping[str, Any]) -> None:
    # Written aside and renamed, so a reader never sees half a file.
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(state, indent=2) + "\n")
    partial.replace(path)


def _check_listener_names(listeners: Mapping[str, tuple[int, int]]) -> None:
    for name in listeners:
        # Upper case, the way Kafka spells listener names in its config, metadata and log; the
        # broker's own two cannot be given a second meaning.
        if not _LISTENER_NAME.fullmatch(name) or name in _OWN_LISTENERS:
            raise ValueError(
                f"extra listener name {name!r}: use upper-case letters, digits and '_', "
                f"and none of {', '.join(_OWN_LISTENERS)}"
            )


def _refuse_if_running(data_dir: Path) -> None:
    if not (data_dir / STATE_FILE).is_file():
        return
    previous = Broker.from_state(data_dir)
    if previous.is_running():
        raise KafkaLauncherError(
            f"a broker started from {data_dir} is still running (pid {previous.pid}, "
            f"{previous.bootstrap})"
        )


def _server_properties(node: _Node, log_dir: Path) -> str:
    replicas = node.replication_factor
    # One copy to spare: acks=all goes on with a node down, yet is never one disk's word alone.
    min_in_sync = str(max(1, replicas - 1))
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        **_quorum_settings(node),
        **_listener_settings(node),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        "default.replication.factor": str(replicas),
        "min.insync.replicas": min_in_sync,
        "offsets.topic.replication.factor": str(replicas),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": min_in_sync,
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": min_in_sync,
        "group.initial.rebalance.delay.ms": "0",
        # The 128 MiB default does not fit next to everything else in a small heap.
        "log.cleaner.dedupe.buffer.size": "16777216",
        # Topics are created explicitly with their partition counts and configs; a typo'd or
        # forgotten topic should fail loudly instead of appearing with broker defaults.
        "auto.create.topics.enable": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _quorum_settings(node: _Node) -> dict[str, str]:
    if node.voters is None:
        # A dynamic quorum that this node alone bootstraps (formatted with --standalone).
        return {"controller.quorum.bootstrap.servers": f"127.0.0.1:{node.controller_port}"}
    return {"controller.quorum.voters": node.voters}


def _listener_settings(node: _Node) -> dict[str, str]:
    listeners = [
        f"PLAINTEXT://127.0.0.1:{node.port}",
        f"CONTROLLER://127.0.0.1:{node.controller_port}",
    ]
    advertised = [f"PLAINTEXT://127.0.0.1:{node.port}"]
    protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
    for name, (bind_port, advertised_port) in node.extra_listeners.items():
        listeners.append(f"{name}://127.0.0.1:{bind_port}")
        advertised.append(f"{name}://127.0.0.1:{advertised_port}")
        protocols.append(f"{name}:PLAINTEXT")
    return {
        "listeners": ",".join(listeners),
        "advertised.listeners": ",".join(advertised),
        "listener.security.protocol.map": ",".join(protocols),
    }


def _existing_cluster_id(log_dir: Path) -> str | None:
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


def _java_command(
    libs: Path, heap: str, performance: str, main_class: str, *args: str
) -> list[str]:
    return [
        "java",
        f"-Xms{heap}",
        f"-Xmx{heap}",
        *shlex.split(performance),
        f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
        # No shell involved: the JVM expands the wildcard itself.
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


def _format_storage(libs: Path, config: Path, cluster_id: str, *, standalone: bool) -> None:
    _require_tools("java")
    # --standalone makes this node the whole of a dynamic quorum; with a static
    # controller.quorum.voters list StorageTool refuses it.
    mode = ["--standalone"] if standalone else []
    command = _java_command(
        libs, "256m", SHORT_LIVED_OPTS, "kafka.tools.StorageTool",
        "format", *mode, "-t", cluster_id, "-c", str(config), "-g",
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
            _java_command(
                libs,
                heap,
                os.environ.get(PERFORMANCE_OPTS, DEFAULT_PERFORMANCE_OPTS),
                "kafka.Kafka",
                str(config),
            ),
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
