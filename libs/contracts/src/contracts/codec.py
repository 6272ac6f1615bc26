"""Bytes on the wire <-> contract models, with one error type for anything unreadable."""

from typing import TypeVar

from pydantic import ValidationError

from contracts.events import Event

E = TypeVar("E", bound=Event)


# Far above any record a writer of this system produces (a heartbeat is a few hundred bytes, a
# point's registration or a track a few KiB): a bigger one is parked unread, never parsed.
MAX_RECORD_BYTES = 64 * 1024


class ContractError(ValueError):
    """A record that does not match its topic's contract; it belongs on the dead-letter topic."""


def check_size(data: bytes, contract: str) -> None:
    if len(data) > MAX_RECORD_BYTES:
        raise ContractError(
            f"not a valid {contract}: {len(data)} bytes, more than a record's {MAX_RECORD_BYTES}"
        )


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()


def decode(model: type[E], data: bytes | None) -> E:
    if data is None:
        raise ContractError(f"empty record where a {model.__name__} was expected")
    check_size(data, model.__name__)
    try:
        return model.model_validate_json(data)
    except ValidationError as error:
        raise ContractError(f"not a valid {model.__name__}: {problems(error, 5)}") from None


def problems(error: ValidationError, limit: int | None = None) -> str:
    """pydantic's findings as one line, `field: what is wrong; ...` (the first `limit`)."""
    return "; ".join(
        (f"{'.'.join(str(part) for part in item['loc'])}: " if item["loc"] else "")
        + item["msg"].removeprefix("Value error, ")
        for item in error.errors()[:limit]
    )
