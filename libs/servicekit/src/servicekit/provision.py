"""Creating the project's topics explicitly, with their partition counts and cleanup policies.

`python -m servicekit.provision` creates every topic of docs/architecture.md on
`KAFKA_BOOTSTRAP_SERVERS`, with `KAFKA_REPLICATION_FACTOR` copies of each partition (default 1);
deployments run it once before the services start, so nothing relies on auto-creation.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import NodeNotReadyError, TopicAlreadyExistsError, for_code
from aiokafka.protocol.metadata import MetadataRequest
from pydantic import Field
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

from contracts.topics import ALL_TOPICS, Topic
from servicekit.settings import ServiceSettings


class ProvisionError(RuntimeError):
    """Kafka refused to create a topic."""


class ProvisionSettings(ServiceSettings):
    """What the topics job reads besides the shared settings."""

    replication_factor: int = Field(1, ge=1, validation_alias="KAFKA_REPLICATION_FACTOR")


async def ensure_topics(
    bootstrap: str,
    topics: Sequence[Topic] = ALL_TOPICS,
    *,
    replication_factor: int = 1,
    timeout_ms: int = 30_000,
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are. Returns once
    every broker knows every partition's leader: a broker learns of a new topic from the
    metadata log after the controller answered, and a client asking it first is told the topic
    does not exist."""
    if replication_factor < 1:
        raise ValueError(f"replication_factor must be at least 1, not {replication_factor}")
    # A broker that has just started can answer the bootstrap metadata request before it lists
    # itself among the brokers; the admin client then has no node to ask (NodeNotReadyError for
    # node None) and never refreshes on its own, so a new client tries again.
    await AsyncRetrying(
        retry=retry_if_exception_type(NodeNotReadyError),
        stop=stop_after_delay(timeout_ms / 1000),
        wait=wait_fixed(0.2),
        reraise=True,
    )(_create_missing, bootstrap, topics, replication_factor, timeout_ms)
    await _wait_until_every_broker_knows(bootstrap, [topic.name for topic in topics], timeout_ms)


async def _create_missing(
    bootstrap: str, topics: Sequence[Topic], replication_factor: int, timeout_ms: int
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            _new_topic(topic, replication_factor) for topic in topics if topic.name not in existing
        ]
        if missing:
            response = await admin.create_topics(missing, timeout_ms=timeout_ms)
            _raise_topic_errors(response.topic_errors)
    finally:
        await admin.close()


async def _wait_until_every_broker_knows(
    bootstrap: str, topics: list[str], timeout_ms: int
) -> None:
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    await client.bootstrap()
    try:
        # Still unknown when the time is up: the last answer, not tenacity's RetryError.
        unknown: list[str] = await AsyncRetrying(
            retry=retry_if_result(bool),
            stop=stop_after_delay(timeout_ms / 1000),
            wait=wait_fixed(0.1),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else [],
        )(_unknown_somewhere, client, topics)
        if unknown:
            raise ProvisionError("topics still unknown to a broker: " + "; ".join(unknown))
    finally:
        await client.close()


async def _unknown_somewhere(client: AIOKafkaClient, topics: list[str]) -> list[str]:
    """`broker n: topic` for each topic a broker has no leader for in some partition yet."""
    brokers = client.cluster.brokers()
    if not brokers:
        # Asking no broker would find nothing unknown: wait until the metadata lists one.
        await client.force_metadata_update()
        return ["no broker listed in the metadata yet"]
    unknown = []
    for broker in brokers:
        response = await client.send(broker.nodeId, MetadataRequest(topics))
        for error_code, topic, *_, partitions in response.topics:
            if error_code != 0 or not partitions or any(p[2] < 0 for p in partitions):
                unknown.append(f"broker {broker.nodeId}: {topic}")
    return unknown


def _new_topic(topic: Topic, replication_factor: int) -> NewTopic:
    return NewTopic(
        name=topic.name,
        num_partitions=topic.partitions,
        replication_factor=replication_factor,
        topic_configs=_topic_config(topic, replication_factor),
    )


def _topic_config(topic: Topic, replication_factor: int) -> dict[str, str]:
    config: dict[str, str] = topic.config
    if replication_factor == 1:
        return config
    # One copy to spare: acks=all goes on with a broker down, yet never acknowledges a record
    # that a single broker holds. A topic's own setting still wins.
    return {"min.insync.replicas": str(replication_factor - 1)} | config


def _raise_topic_errors(topic_errors: Sequence[tuple[Any, ...]]) -> None:
    failures = []
    for topic, code, *message in topic_errors:
        error = for_code(code)
        # Someone else created it between our list and create: that is the state we want.
        if code == 0 or error is TopicAlreadyExistsError:
            continue
        failures.append(f"{topic}: {error.__name__} {' '.join(map(str, message))}".rstrip())
    if failures:
        raise ProvisionError("creating Kafka topics failed: " + "; ".join(failures))


if __name__ == "__main__":
    settings = ProvisionSettings()
    asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap_servers, replication_factor=settings.replication_factor
        )
    )
    print(f"{len(ALL_TOPICS)} topics present")
