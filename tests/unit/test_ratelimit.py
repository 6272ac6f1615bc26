"""Token buckets per point: bursts within bounds, waits that are honest, keys independent."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attendance.ratelimit import TokenBuckets

# Binary fractions only, so the arithmetic the properties compare is exact.
capacities = st.integers(1, 12)
rates = st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0])
steps = st.integers(0, 24).map(lambda eighths: eighths / 8)
keys = st.sampled_from(["a", "b", "c"])
calls = st.lists(st.tuples(keys, steps), max_size=120)


def timeline(calls: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """The calls at the times they happen: each step is the time since the previous call."""
    now = 0.0
    timed = []
    for key, step in calls:
        now += step
        timed.append((key, now))
    return timed


class Remembering:
    """The same rule, written plainly and never forgetting a bucket."""

    def __init__(self, capacity: float, rate: float) -> None:
        self.capacity, self.rate = capacity, rate
        self.buckets: dict[str, tuple[float, float]] = {}

    def allows(self, key: str, now: float) -> bool:
        tokens, at = self.buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        allowed = tokens >= 1
        self.buckets[key] = (tokens - 1 if allowed else tokens, now)
        return allowed


@given(capacities, rates, calls)
def test_forgetting_full_buckets_changes_no_answer(
    capacity: int, rate: float, calls: list[tuple[str, float]]
) -> None:
    buckets, model = TokenBuckets(capacity, rate), Remembering(capacity, rate)
    for key, now in timeline(calls):
        assert (buckets.take(key, now) is None) == model.allows(key, now)


@given(capacities, rates, calls)
def test_no_window_allows_more_than_the_burst_plus_the_refill(
    capacity: int, rate: float, calls: list[tuple[str, float]]
) -> None:
    buckets = TokenBuckets(capacity, rate)
    allowed: dict[str, list[float]] = {}
    for key, now in timeline(calls):
        if buckets.take(key, now) is None:
            allowed.setdefault(key, []).append(now)
    for times in allowed.values():
        for first, last in itertools.combinations(range(len(times)), 2):
            in_window = last - first + 1
            assert in_window <= capacity + rate * (times[last] - times[first])


@given(capacities, rates, calls, calls)
def test_one_key_never_affects_another(
    capacity: int, rate: float, mine: list[tuple[str, float]], others: list[tuple[str, float]]
) -> None:
    my_times = [now for _, now in timeline(mine)]
    alone = TokenBuckets(capacity, rate)
    answers_alone = [alone.take("me", now) for now in my_times]
    # The same calls of mine, in time order among anybody else's, however many they make.
    merged = sorted(
        [(now, "me") for now in my_times] + [(now, key) for key, now in timeline(others)]
    )
    crowded = TokenBuckets(capacity, rate)
    answers_crowded = []
    for now, key in merged:
        answer = crowded.take(key, now)
        if key == "me":
            answers_crowded.append(answer)
    assert answers_crowded == answers_alone


@given(capacities, rates, st.lists(steps, min_size=1, max_size=60))
def test_a_refusal_says_how_long_to_wait_and_that_is_enough(
    capacity: int, rate: float, gaps: list[float]
) -> None:
    buckets = TokenBuckets(capacity, rate)
    now = 0.0
    for gap in gaps:
        now += gap
        wait = buckets.take("p", now)
        if wait is not None:
            assert wait >= 1 and wait == int(wait)
            assert buckets.take("p", now + wait) is None
            now += wait


def test_a_point_flooding_at_a_hundred_times_its_rate_is_held_to_its_rate() -> None:
    buckets = TokenBuckets(capacity=10, rate=1.0)
    flood = [buckets.take("flooder", n / 20) for n in range(20 * 60)]  # 20/s for a minute
    beats = [buckets.take("steady", n * 5.0) for n in range(12)]  # every 5 s
    assert sum(answer is None for answer in flood) == 10 + 59
    assert all(answer is None for answer in beats)
    assert {answer for answer in flood if answer is not None} == {1.0}


def test_memory_follows_the_points_heard_from_recently() -> None:
    buckets = TokenBuckets(capacity=10, rate=1.0)  # a bucket refills in 10 s
    for code in range(10_000):
        buckets.take(f"P{code}", code / 1_000)  # 10,000 points within 10 s
    assert len(buckets) == 10_000
    buckets.take("late", 15.0)
    assert len(buckets) == 1 + sum(1 for code in range(10_000) if code / 1_000 > 5.0)
    buckets.take("later", 100.0)
    assert len(buckets) == 1


@pytest.mark.parametrize(("capacity", "rate"), [(0.5, 1.0), (10, 0.0), (10, -1.0)])
def test_limits_that_could_never_allow_anything_are_refused(capacity: float, rate: float) -> None:
    with pytest.raises(ValueError):
        TokenBuckets(capacity, rate)
