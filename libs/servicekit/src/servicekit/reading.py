"""Reading partitions whole, from the beginning to their end offsets as of now, with a plain
aiokafka consumer: a table read at start, before FastStream's per-record path is running."""

import gc
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from servicekit.kafka import Record


async def read_whole(
    bootstrap: str, partitions: Sequence[TopicPartition], apply: Callable[[Record], None]
) -> None:
    """Hand every record of `partitions` to `apply`, in offset order within each. Only
    committed transactions count: what a producer wrote and never committed is not a table's."""
    if not partitions:
        return
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    # A table read allocates only objects that live on: the collector's passes over the growing
    # table would cost a third of the read and free nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        consumer.assign(list(partitions))
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(list(partitions))
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for record in records:
                    apply(record)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        if collecting:
            gc.enable()
        await consumer.stop()
