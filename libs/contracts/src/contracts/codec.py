"""Bytes on the wire <-> contract models, with one error type for anything unreadable."""

from typing import TypeVar

from pydantic import ValidationError

from contracts.events import Event

E = TypeVar("E", bound=Event)


class ContractError(ValueError):
    """A record that does not match its topic's contract; it belongs on the dead-letter topic."""


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()


def decode(model: type[E], data: bytes | None) -> E:
    if data is None:
        raise ContractError(f"empty record where a {model.__name__} was expected")
    try:
        return model.model_validate_json(data)
    except ValidationError as error:
        raise ContractError(_describe(model, error)) from None


def _describe(model: type[Event], error: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'record'}: {item['msg']}"
        for item in error.errors()[:5]
    )
    return f"not a valid {model.__name__}: {problems}"
