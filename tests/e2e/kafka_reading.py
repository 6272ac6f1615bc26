"""Reading what actually landed on a topic, straight from the broker."""

from aiokafka import AIOKafkaConsumer


async def records_of_keys(
    bootstrap: str, topic: str, keys: set[bytes]
) -> list[tuple[bytes, bytes | None]]:
    """Every committed record of `keys` on `topic` so far, in offset order (a key keeps one
    partition)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        found: list[tuple[int, bytes, bytes | None]] = []
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            if not batches:
                return [(key, value) for _, key, value in sorted(found)]
            for records in batches.values():
                found += [(r.offset, r.key, r.value) for r in records if r.key in keys]
    finally:
        await consumer.stop()
