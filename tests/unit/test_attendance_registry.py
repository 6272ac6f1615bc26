"""Attendance's registry: the expected learners it keeps as ints always say what the points do."""

from hypothesis import given
from hypothesis import strategies as st

from attendance.registry import Registry
from contracts.events import PointRegistration

operations = st.lists(
    st.tuples(
        st.sampled_from(["put", "remove"]), st.sampled_from(["P1", "P2", "P3"]), st.integers(0, 500)
    ),
    max_size=40,
)


@given(operations)
def test_expected_learners_follow_the_points(ops: list[tuple[str, str, int]]) -> None:
    registry = Registry()
    for op, code, learners in ops:
        if op == "put":
            registry.put_point(
                PointRegistration(
                    code=code,
                    name="Xã Đông Tiến",
                    level="commune",
                    channel="video_bridge",
                    expected_learners=learners,
                )
            )
        else:
            registry.remove_point(code)
        assert registry.expected_learners == {
            code: point.expected_learners for code, point in registry.points.items()
        }
