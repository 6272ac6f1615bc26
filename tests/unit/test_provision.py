"""Provisioning on a broker that has only just started and does not list itself yet."""

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import NodeNotReadyError

import servicekit.provision as provision


class _NoBrokerYet:
    """A client whose metadata lists no broker until it has been refreshed once."""

    def __init__(self) -> None:
        self.listed: list[Any] = []
        self.cluster = SimpleNamespace(brokers=lambda: self.listed)
        self.refreshes = 0

    async def force_metadata_update(self) -> bool:
        self.refreshes += 1
        return True


def test_a_metadata_that_lists_no_broker_is_not_taken_for_every_broker_knowing() -> None:
    client = _NoBrokerYet()
    unknown = asyncio.run(provision._unknown_somewhere(client, ["heartbeats"]))
    assert unknown == ["no broker listed in the metadata yet"]
    assert client.refreshes == 1


def test_topics_are_created_once_the_broker_has_a_node_to_ask(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[str] = []

    async def create_missing(bootstrap: str, *_: object) -> None:
        attempts.append(bootstrap)
        if len(attempts) < 3:
            raise NodeNotReadyError(
                "Attempt to send a request to node which is not ready (node id None)."
            )

    async def every_broker_knows(*_: object) -> None:
        return None

    monkeypatch.setattr(provision, "_create_missing", create_missing)
    monkeypatch.setattr(provision, "_wait_until_every_broker_knows", every_broker_knows)
    asyncio.run(provision.ensure_topics("127.0.0.1:9", timeout_ms=5_000))
    assert attempts == ["127.0.0.1:9"] * 3


def test_a_broker_that_never_lists_a_node_fails_provisioning_when_the_time_is_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def create_missing(*_: object) -> None:
        raise NodeNotReadyError("node id None")

    monkeypatch.setattr(provision, "_create_missing", create_missing)
    with pytest.raises(NodeNotReadyError):
        asyncio.run(provision.ensure_topics("127.0.0.1:9", timeout_ms=500))
