"""Reading what actually landed on a topic, straight from the broker."""

from aiokafka import AIOKafkaConsumer

Landed = tuple[int, int, bytes, bytes | None]  # partition, offset, key, value


async def landed(bootstrap: str, topic: str) -> list[Landed]:
    """Every committed record of `topic` up to the ends it had when asked, by partition and
    offset. Up to those ends, not until it goes quiet: a topic the ingest writes watermarks to
    never does."""
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
        partitions = list(consumer.assignment())  # all of them: no group to share them with
        ends = await consumer.end_offsets(partitions)
        # By place, since a change of assignment (a metadata refresh) starts a partition over.
        found: dict[tuple[int, int], Landed] = {}
        while behind := [p for p in partitions if await consumer.position(p) < ends[p]]:
            batches = await consumer.getmany(*behind, timeout_ms=1000)
            for partition, records in batches.items():
                for r in records:
                    if r.offset < ends[partition]:
                        place = (partition.partition, r.offset)
                        found[place] = (*place, r.key, r.value)
        return [found[place] for place in sorted(found)]
    finally:
        await consumer.stop()


async def records_of_keys(
    bootstrap: str, topic: str, keys: set[bytes]
) -> list[tuple[bytes, bytes | None]]:
    """Every committed record of `keys` on `topic` so far, in offset order (a key keeps one
    partition)."""
    return [(key, value) for _, _, key, value in await landed(bootstrap, topic) if key in keys]
