"""Ports for the processes devstack and the tests start, outside the kernel's ephemeral range.

A port found free with `bind(0)` comes from the range Linux also takes the source ports of
outgoing connections from: between picking it and the service listening on it, a client's
connection can take it (CI saw reporting fail with "address already in use"). Ports below that
range are never handed to a connection.
"""

import contextlib
import os
import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10_000  # above the well-known and most registered services' ports
# "i/n": this process and its children take ports from the i-th of n slices of the range only,
# so runs side by side (pytest-xdist's workers) never pick the same one.
SLICE_VARIABLE = "DEVSTACK_PORT_SLICE"
# Handed out by this process already: a port picked but not yet listened on still probes free.
_given: set[int] = set()


def free_ports(count: int) -> list[int]:
    """`count` different ports on 127.0.0.1 that nothing listens on now."""
    candidates = _candidates()
    # All probes stay bound until every port is picked, so the ports differ.
    with contextlib.ExitStack() as stack:
        picked: list[int] = []
        while len(picked) < count:
            port = random.choice(candidates)
            if port in _given:
                continue
            probe = stack.enter_context(socket.socket())
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            picked.append(port)
            _given.add(port)
        return picked


def free_port() -> int:
    (port,) = free_ports(1)
    return port


def _candidates() -> range:
    low, high = _ephemeral_range()
    whole = range(LOWEST, low) if low - LOWEST >= 1_000 else range(high + 1, 65_536)
    index, _, count = os.environ.get(SLICE_VARIABLE, "0/1").partition("/")
    size = len(whole) // int(count)
    return whole[int(index) * size : (int(index) + 1) * size]


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = map(int, EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32_768, 60_999  # Linux's default
    return low, high
