"""Creating the project's topics explicitly, with their partition counts and cleanup policies.

`python -m servicekit.provision` creates every topic of DESIGN §6 on `KAFKA_BOOTSTRAP_SERVERS`;
deployments run it once before the services start, so nothing relies on auto-creation.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from contracts.topics import ALL_TOPICS, Topic
from servicekit.settings import ServiceSettings


class ProvisionError(RuntimeError):
    """Kafka refused to create a topic."""


async def ensure_topics(
    bootstrap: str, topics: Sequence[Topic] = ALL_TOPICS, *, timeout_ms: int = 30_000
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [_new_topic(topic) for topic in topics if topic.name not in existing]
        if missing:
            response = await admin.create_topics(missing, timeout_ms=timeout_ms)
            _raise_topic_errors(response.topic_errors)
    finally:
        await admin.close()


def _new_topic(topic: Topic) -> NewTopic:
    return NewTopic(
        name=topic.name,
        num_partitions=topic.partitions,
        replication_factor=1,
        topic_configs=topic.config,
    )


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
    asyncio.run(ensure_topics(ServiceSettings().kafka_bootstrap_servers))
    print(f"{len(ALL_TOPICS)} topics present")
