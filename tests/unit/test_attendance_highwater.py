"""When the processor believes a partition's high watermark: the clock judges silence by wall
time only while the processor has read what Kafka holds, so a stale high watermark is a false
disconnect of every point in the partition."""

from hypothesis import given
from hypothesis import strategies as st

from attendance.processor import (
    AFTER_STALL_SECONDS,
    FRESH_HIGHWATER_SECONDS,
    highwater_is_current,
)

NOW = 1_000_000.0
NEVER_STALLED = 0.0


def test_a_high_watermark_never_read_is_not_believed() -> None:
    assert not highwater_is_current(None, NOW, NEVER_STALLED)


def test_a_recent_fetch_is_believed() -> None:
    assert highwater_is_current(NOW - 0.1, NOW, NEVER_STALLED)


def test_an_old_fetch_is_not_believed() -> None:
    assert not highwater_is_current(NOW - FRESH_HIGHWATER_SECONDS - 0.1, NOW, NEVER_STALLED)


def test_a_response_read_just_after_a_stall_is_not_believed() -> None:
    # The process was stopped for 15 s: the response that waited in the socket meanwhile is
    # read (and stamped) as it wakes, with the high watermark of 15 s ago.
    woke = NOW - 0.2
    assert not highwater_is_current(woke + 0.001, NOW, woke)


def test_a_fetch_sent_after_the_stall_is_believed() -> None:
    woke = NOW - AFTER_STALL_SECONDS - 0.5
    assert highwater_is_current(NOW - 0.1, NOW, woke)


@given(
    polled_ago=st.floats(0, 60),
    woke_ago=st.floats(0, 60),
)
def test_believed_only_when_read_lately_and_after_waking(
    polled_ago: float, woke_ago: float
) -> None:
    polled, woke = NOW - polled_ago, NOW - woke_ago
    believed = highwater_is_current(polled, NOW, woke)
    assert believed == (
        polled_ago <= FRESH_HIGHWATER_SECONDS and polled > woke + AFTER_STALL_SECONDS
    )
