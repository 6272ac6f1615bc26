"""The devstack launcher's three-node KRaft cluster and its extra (proxied) listeners, on real
brokers: replicated topics survive a SIGKILLed leader, and a client that bootstraps through a
proxy on an extra listener is kept behind that proxy."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from contracts.topics import ALL_TOPICS, HEARTBEATS, Topic
from devstack.kafka import Broker, Cluster, PartitionState, default_cache_dir
from devstack.ports import free_ports
from servicekit.provision import ensure_topics

pytestmark = pytest.mark.integration

# DescribeConfigs' config_source for a value set on the topic itself (not a broker default).
TOPIC_CONFIG_SOURCE = 1
# Long enough for the controller to fence a SIGKILLed node (broker.session.timeout.ms, 9 s)
# and for a restarted one to catch up, on a busy two-core machine.
FAILOVER_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster.start(default_cache_dir(), tmp_path_factory.mktemp("cluster")) as cluster:
        asyncio.run(ensure_topics(cluster.bootstrap, replication_factor=3))
        yield cluster
    assert not cluster.is_running(), "every node must stop with the cluster"


async def test_provisioned_topics_have_three_replicas_and_need_two_in_sync(
    cluster: Cluster,
) -> None:
    await ensure_topics(cluster.bootstrap, replication_factor=3)  # already there: no error
    described = await _describe_topics(cluster.bootstrap, [t.name for t in ALL_TOPICS])
    assert len(described) == len(ALL_TOPICS)
    for found in described:
        assert found["error_code"] == 0, found
        for partition in found["partitions"]:
            assert sorted(partition["replicas"]) == [1, 2, 3], (found["topic"], partition)
            assert sorted(partition["isr"]) == [1, 2, 3], (found["topic"], partition)
    for topic in ALL_TOPICS:
        value, source = await _topic_setting(cluster.bootstrap, topic.name, "min.insync.replicas")
        assert (value, source) == ("2", TOPIC_CONFIG_SOURCE), topic.name


async def test_acks_all_writes_go_on_while_a_leader_is_down_and_it_rejoins(
    cluster: Cluster,
) -> None:
    topic, partition = HEARTBEATS.name, 0
    async with _producer(cluster.bootstrap, enable_idempotence=True) as producer:
        sent = await _send(producer, topic, partition, "before", 20)
        killed = await cluster.leader_of(topic, partition)
        cluster.nodes[killed].kill()
        # Sent while the dead node still leads in everyone's metadata: the producer must ride
        # out the failover by itself.
        sent += await _send(producer, topic, partition, "failover", 20)
        survivors = await _eventually(
            cluster, topic, partition, lambda s: s.leader != killed and killed not in s.in_sync
        )
        assert len(survivors.in_sync) == 2, survivors
        # Two in sync of three is what min.insync.replicas=2 allows for acks=all.
        sent += await _send(producer, topic, partition, "degraded", 20)
        await asyncio.to_thread(cluster.restart, killed)
        await _eventually(cluster, topic, partition, lambda s: len(s.in_sync) == 3)
        sent += await _send(producer, topic, partition, "healed", 20)
    # Idempotence: the retries of the failover left no duplicates, and nothing was lost.
    assert await _read(cluster.bootstrap, topic, partition, len(sent)) == sent


# --- an extra listener behind a proxy ------------------------------------------------------------


@dataclass
class Forwarder:
    """A TCP forwarder to one port of the broker: just enough of a proxy to see traffic pass
    through it and to cut it off."""

    target_port: int
    forwarded_bytes: int = 0
    _server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", 0)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        # Closing the server alone leaves the open connections working.
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.transport.abort()
            return
        self._writers += [writer, upstream_writer]
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                self.forwarded_bytes += len(data)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.transport.abort()


@dataclass
class ProxiedBroker:
    broker: Broker
    proxies: dict[str, Forwarder]


@pytest.fixture(scope="module")
async def proxied(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ProxiedBroker]:
    names = ("PRODUCER", "CONSUMER")
    proxies = {name: Forwarder(port) for name, port in zip(names, free_ports(2), strict=True)}
    for proxy in proxies.values():
        await proxy.start()
    listeners = {name: (proxy.target_port, proxy.port) for name, proxy in proxies.items()}
    broker = await asyncio.to_thread(
        Broker.start,
        default_cache_dir(),
        tmp_path_factory.mktemp("proxied"),
        extra_listeners=listeners,
    )
    with broker:
        yield ProxiedBroker(broker, proxies)
    for proxy in proxies.values():
        await proxy.close()


async def test_a_client_that_bootstraps_through_a_proxy_stays_behind_it(
    proxied: ProxiedBroker,
) -> None:
    broker, proxies = proxied.broker, proxied.proxies
    assert Broker.from_state(broker.data_dir).extra_listeners == broker.extra_listeners
    topic = Topic(f"it.proxied.{uuid.uuid4().hex}", partitions=1, key="none")
    await ensure_topics(broker.bootstrap, [topic])
    behind_producer = proxies["PRODUCER"]
    # Not idempotent: aiokafka's idempotent producer retries a batch forever instead of failing
    # it after request_timeout_ms, so it would only hang once the proxy is gone.
    async with _producer(
        f"127.0.0.1:{behind_producer.port}", enable_idempotence=False, request_timeout_ms=5_000
    ) as producer:
        await producer.send_and_wait(topic.name, b"through the proxy", partition=0)
        # The broker told the client the proxy's address, not its own.
        assert {b.port for b in producer.client.cluster.brokers()} == {behind_producer.port}
        assert await _read(f"127.0.0.1:{proxies['CONSUMER'].port}", topic.name, 0, 1) == [
            b"through the proxy"
        ]
        assert all(proxy.forwarded_bytes > 0 for proxy in proxies.values())
        await behind_producer.close()
        with pytest.raises(KafkaError):
            await producer.send_and_wait(topic.name, b"nowhere to go", partition=0)
    # The consumer's proxy is a listener of its own and still works.
    assert await _read(f"127.0.0.1:{proxies['CONSUMER'].port}", topic.name, 0, 1) == [
        b"through the proxy"
    ]


# --- helpers -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _producer(bootstrap: str, **settings: Any) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **settings)
    await producer.start()
    try:
        yield producer
    finally:
        # stop() flushes, and an idempotent producer's flush waits for as long as a broker is
        # unreachable: a failed test must not hang the run on top of it.
        async with asyncio.timeout(FAILOVER_TIMEOUT_S):
            await producer.stop()


async def _send(
    producer: AIOKafkaProducer, topic: str, partition: int, phase: str, count: int
) -> list[bytes]:
    """Send ``count`` values and wait until all are acknowledged (or FAILOVER_TIMEOUT_S passes)."""
    values = [f"{phase}-{i}".encode() for i in range(count)]
    async with asyncio.timeout(FAILOVER_TIMEOUT_S):
        futures = [await producer.send(topic, value, partition=partition) for value in values]
        await asyncio.gather(*futures)
    return values


async def _read(bootstrap: str, topic: str, partition: int, count: int) -> list[bytes]:
    """The first ``count`` values of one partition, read without a consumer group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, partition)])
        async with asyncio.timeout(30):
            while len(values) < count:
                batches = await consumer.getmany(timeout_ms=1_000)
                values += [r.value for records in batches.values() for r in records if r.value]
    finally:
        await consumer.stop()
    return values


async def _eventually(
    cluster: Cluster,
    topic: str,
    partition: int,
    condition: Callable[[PartitionState], bool],
) -> PartitionState:
    """The partition's state once ``condition`` holds for it, polled up to FAILOVER_TIMEOUT_S."""
    deadline = time.monotonic() + FAILOVER_TIMEOUT_S
    while not condition(state := await cluster.partition(topic, partition)):
        assert time.monotonic() < deadline, f"{topic}[{partition}] still {state}"
        await asyncio.sleep(0.2)
    return state


async def _describe_topics(bootstrap: str, topics: list[str]) -> list[dict[str, Any]]:
    described: list[dict[str, Any]] = await _with_admin(
        bootstrap, lambda admin: admin.describe_topics(topics)
    )
    return described


async def _topic_setting(bootstrap: str, topic: str, name: str) -> tuple[str, int]:
    """The topic's value of one setting, and where it comes from (DescribeConfigs v1+)."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, {name: None})
    responses = await _with_admin(bootstrap, lambda admin: admin.describe_configs([resource]))
    (_error_code, _message, _type, _name, entries) = responses[0].resources[0]
    (entry,) = [entry for entry in entries if entry[0] == name]
    return str(entry[1]), int(entry[3])


async def _with_admin(bootstrap: str, call: Callable[[AIOKafkaAdminClient], Awaitable[Any]]) -> Any:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await call(admin)
    finally:
        await admin.close()
