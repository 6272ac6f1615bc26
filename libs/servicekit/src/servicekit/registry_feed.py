"""Folding the compacted registry topics into a `RegistryTable`, the same way in every service."""

from collections.abc import Sequence

from contracts.codec import ContractError, decode
from contracts.events import PointRegistration, SessionSchedule
from contracts.registry import RegistryTable
from contracts.topics import REGISTRY_POINTS, REGISTRY_SESSIONS
from servicekit.kafka import DeadLetters, Record


async def apply_registry_records(
    table: RegistryTable, records: Sequence[Record], dead_letters: DeadLetters
) -> None:
    for record in records:
        try:
            _apply(table, record)
        except ContractError as error:
            await dead_letters.park(record, error)


def _apply(table: RegistryTable, record: Record) -> None:
    if record.topic == REGISTRY_POINTS.name:
        if record.value is None:
            table.remove_point(_key(record))
        else:
            table.put_point(decode(PointRegistration, record.value))
    elif record.topic == REGISTRY_SESSIONS.name:
        table.put_session(decode(SessionSchedule, record.value))


def _key(record: Record) -> str:
    if record.key is None:
        raise ContractError("tombstone without a key")
    return str(record.key.decode(errors="replace"))
