"""The totals reporting last published (`reporting.totals`), read at start: what a restarted
instance serves, marked stale, while it reads the tables the current totals come from."""

from aiokafka import TopicPartition

from contracts.codec import ContractError, decode
from contracts.events import Totals
from contracts.topics import TOTALS
from servicekit.kafka import Record
from servicekit.reading import read_whole


async def last_totals(bootstrap: str) -> dict[str, Totals]:
    """Each session's last published totals, marked stale."""
    found: dict[str, Totals] = {}

    def apply(record: Record) -> None:
        code = (record.key or b"").decode(errors="replace")
        if record.value is None:
            found.pop(code, None)
            return
        try:
            found[code] = decode(Totals, record.value).model_copy(update={"stale": True})
        except ContractError:  # the next snapshot replaces it; the tables are the truth
            return

    partitions = [TopicPartition(TOTALS.name, p) for p in range(TOTALS.partitions)]
    await read_whole(bootstrap, partitions, apply)
    return found
