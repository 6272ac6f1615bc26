"""The fault tests' toxiproxy client against the real server, on an asyncio echo server."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fault.toxiproxy import Proxy, Toxiproxy, ToxiproxyError

pytestmark = pytest.mark.integration

# Bounds a wait for something that must happen; reaching it fails the test, it asserts nothing.
PATIENCE = 5.0
_names = itertools.count()


@pytest.fixture(scope="module")
def toxiproxy() -> Iterator[Toxiproxy]:
    with Toxiproxy() as server:
        yield server
    assert not server.is_running()


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass  # the proxy cut the connection: that is what these tests do
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


@pytest.fixture
def proxy(toxiproxy: Toxiproxy, echo: str) -> Iterator[Proxy]:
    proxy = toxiproxy.create_proxy(f"echo_{next(_names)}", upstream=echo)
    yield proxy
    toxiproxy.delete_proxy(proxy.name)


async def connect(proxy: Proxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(proxy.host, proxy.port), PATIENCE)


async def round_trip(proxy: Proxy, data: bytes = b"ping\n") -> bytes:
    reader, writer = await connect(proxy)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.readexactly(len(data)), PATIENCE)
    finally:
        writer.close()


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    """What arrives until the connection ends; a reset ends it too."""
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), PATIENCE):
            received += chunk
    except ConnectionResetError:
        pass
    return received


async def test_data_goes_through_a_proxy_unchanged(toxiproxy: Toxiproxy, proxy: Proxy) -> None:
    assert toxiproxy.version().startswith("v2.")
    assert proxy.port != 0 and proxy.enabled
    assert await round_trip(proxy, b"hello, toxiproxy\n") == b"hello, toxiproxy\n"


async def test_latency_delays_every_round_trip(toxiproxy: Toxiproxy, proxy: Proxy) -> None:
    toxic = toxiproxy.latency(proxy.name, 300)
    reader, writer = await connect(proxy)
    started = time.monotonic()
    writer.write(b"ping\n")
    assert await asyncio.wait_for(reader.readexactly(5), PATIENCE) == b"ping\n"
    # Only a lower bound: how much later it may come depends on how busy the machine is.
    assert time.monotonic() - started >= 0.3
    writer.close()

    toxiproxy.remove_toxic(proxy.name, toxic.name)
    assert toxiproxy.toxics(proxy.name) == []


async def test_a_disabled_proxy_cuts_connections_and_refuses_new_ones(
    toxiproxy: Toxiproxy, proxy: Proxy
) -> None:
    reader, writer = await connect(proxy)
    writer.write(b"before\n")
    assert await asyncio.wait_for(reader.readexactly(7), PATIENCE) == b"before\n"

    assert not toxiproxy.disable(proxy.name).enabled
    assert await read_to_end(reader) == b""
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await connect(proxy)

    assert toxiproxy.enable(proxy.name).listen == proxy.listen
    assert await round_trip(proxy) == b"ping\n"


async def test_a_zero_timeout_is_a_black_hole_until_removed(
    toxiproxy: Toxiproxy, proxy: Proxy
) -> None:
    toxic = toxiproxy.timeout(proxy.name, 0)
    reader, writer = await connect(proxy)
    writer.write(b"anyone there?\n")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 1.0)

    toxiproxy.remove_toxic(proxy.name, toxic.name)
    # The connection it held is closed, not resumed; a new one flows.
    assert await read_to_end(reader) == b""
    writer.close()
    assert await round_trip(proxy) == b"ping\n"


async def test_limit_data_truncates_then_closes(toxiproxy: Toxiproxy, proxy: Proxy) -> None:
    toxiproxy.limit_data(proxy.name, 4)
    reader, writer = await connect(proxy)
    writer.write(b"abcdefgh")
    assert await read_to_end(reader) == b"abcd"
    writer.close()


async def test_reset_peer_resets_new_connections(toxiproxy: Toxiproxy, proxy: Proxy) -> None:
    toxiproxy.reset_peer(proxy.name, stream="upstream")
    reader, writer = await connect(proxy)
    writer.write(b"ping\n")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), PATIENCE)
    writer.close()


def test_toxics_reach_the_server_as_given(toxiproxy: Toxiproxy, proxy: Proxy) -> None:
    # The server fills attributes it does not know with zeros, so a misspelt name shows here.
    made = [
        toxiproxy.latency(proxy.name, 100, 20, stream="upstream", toxicity=0.5),
        toxiproxy.timeout(proxy.name, 1500, name="slow_timeout"),
        toxiproxy.reset_peer(proxy.name, 250),
        toxiproxy.bandwidth(proxy.name, 64),
        toxiproxy.slow_close(proxy.name, 700),
        toxiproxy.limit_data(proxy.name, 1024, stream="upstream"),
    ]
    shown = {
        (t.name, t.type, t.stream, t.toxicity, tuple(sorted(t.attributes.items()))) for t in made
    }
    assert shown == {
        ("latency_upstream", "latency", "upstream", 0.5, (("jitter", 20), ("latency", 100))),
        ("slow_timeout", "timeout", "downstream", 1.0, (("timeout", 1500),)),
        ("reset_peer_downstream", "reset_peer", "downstream", 1.0, (("timeout", 250),)),
        ("bandwidth_downstream", "bandwidth", "downstream", 1.0, (("rate", 64),)),
        ("slow_close_downstream", "slow_close", "downstream", 1.0, (("delay", 700),)),
        ("limit_data_upstream", "limit_data", "upstream", 1.0, (("bytes", 1024),)),
    }
    by_name = sorted(toxiproxy.toxics(proxy.name), key=lambda t: t.name)
    assert by_name == sorted(made, key=lambda t: t.name)
    with pytest.raises(ToxiproxyError, match="409"):
        toxiproxy.bandwidth(proxy.name, 1)  # same default name: toxiproxy refuses a second

    toxiproxy.reset()
    assert toxiproxy.toxics(proxy.name) == []
