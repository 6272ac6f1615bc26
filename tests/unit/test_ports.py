"""The ports devstack hands out are free, distinct and never ones the kernel gives to an
outgoing connection (`devstack.ports`)."""

import contextlib
import random
import socket

import pytest

from devstack import ports
from devstack.ports import _ephemeral_range, free_port, free_ports


def test_ports_are_distinct_free_and_outside_the_ephemeral_range() -> None:
    low, high = _ephemeral_range()
    ports = free_ports(50)
    # Each bound the moment it is handed out: the processes of other tests draw from the same
    # slice in processes of their own, and 60 ports held unbound for a while can meet one of
    # theirs (a two-worker run saw "address already in use" here).
    with contextlib.ExitStack() as held:
        for _ in range(10):
            port = free_port()
            held.enter_context(socket.socket()).bind(("127.0.0.1", port))
            ports.append(port)
    assert len(set(ports)) == len(ports)
    assert not [port for port in ports if low <= port <= high]


def test_a_port_taken_or_already_handed_out_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given, (listened, fresh) = free_port(), free_ports(2)
    ports._given -= {listened, fresh}  # as if never handed out: only `given` was
    draws = iter([given, listened, fresh])
    monkeypatch.setattr(random, "choice", lambda _: next(draws))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", listened))
        taken.listen()
        assert free_ports(1) == [fresh]


def test_processes_side_by_side_draw_from_slices_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn = []
    for index in range(2):
        monkeypatch.setenv(ports.SLICE_VARIABLE, f"{index}/2")
        drawn.append(free_ports(200))
    assert max(drawn[0]) < min(drawn[1])
