"""The timing wheel against a plain dict of deadlines."""

from hypothesis import given
from hypothesis import strategies as st

from attendance.timers import DeadlineWheel

operations = st.lists(
    st.one_of(
        st.tuples(st.just("schedule"), st.integers(0, 20), st.floats(0, 100)),
        st.tuples(st.just("cancel"), st.integers(0, 20), st.just(0.0)),
        st.tuples(st.just("pop"), st.just(0), st.floats(0, 100)),
    ),
    max_size=80,
)


@given(operations)
def test_pops_exactly_the_due_keys(ops: list[tuple[str, int, float]]) -> None:
    wheel: DeadlineWheel[int] = DeadlineWheel(resolution=0.5)
    model: dict[int, float] = {}
    now = 0.0
    for op, key, value in ops:
        if op == "schedule":
            wheel.schedule(key, value)
            model[key] = value
        elif op == "cancel":
            wheel.cancel(key)
            model.pop(key, None)
        else:
            now = max(now, value)  # time only moves forward
            due = sorted(wheel.pop_due(now))
            expected = sorted(k for k, at in model.items() if at <= now)
            assert due == expected
            for k in expected:
                del model[k]
        assert len(wheel) == len(model)
        assert all(wheel.deadline_of(k) == at for k, at in model.items())


def test_a_tick_visits_only_what_expires() -> None:
    wheel: DeadlineWheel[int] = DeadlineWheel(resolution=0.1)
    for key in range(100_000):
        wheel.schedule(key, 1_000.0 + key % 30)
    assert sorted(wheel.pop_due(1_000.05)) == list(range(0, 100_000, 30))
    assert len(wheel) == 100_000 - 3_334
