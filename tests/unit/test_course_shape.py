"""The simulated course has the real course's shape, and every row is one registration accepts."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events import Level
from devstack.course import TOPICS, Course, CourseOptions, PointScript, course_of
from devstack.simulation import learners_at
from registration.divisions import check_place
from registration.importing import parse_points_csv
from registration.official import as_csv

NOW = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)


def accepted_by_registration(course: Course) -> None:
    parsed = parse_points_csv(
        as_csv(course.rows), known_courses=[course.options.course_code], extra_course=None
    )
    assert parsed.errors == []
    for point in parsed.rows:
        check_place(point.level, point.province_code, point.unit_code)


def test_the_seeds_course_has_every_official_unit_and_200_teams_sites() -> None:
    course = course_of(CourseOptions(), NOW)
    levels = Counter(row["level"] for row in course.rows)
    channels = Counter(row["channel"] for row in course.rows)
    assert len(course.rows) == 3_555
    assert levels[Level.PROVINCE.value] == 34
    assert levels["commune"] + levels["ward"] + levels["special_zone"] == 3_321
    assert channels["teams"] == 200
    assert 95_000 <= course.expected_learners <= 105_000
    assert len(course.gateways()) == 34
    accepted_by_registration(course)


def test_two_days_of_morning_and_afternoon_sessions_cover_the_nine_topics_in_order() -> None:
    options = CourseOptions(speed=60)
    sessions = [script.plan for script in course_of(options, NOW).sessions]
    assert [plan.title for plan in sessions] == [
        "Ngày 1 — sáng",
        "Ngày 1 — chiều",
        "Ngày 2 — sáng",
        "Ngày 2 — chiều",
    ]
    assert "; ".join(plan.topic for plan in sessions) == "; ".join(TOPICS)
    assert sessions[0].starts_at == NOW
    for earlier, later in pairwise(sessions):
        assert earlier.ends_at < later.starts_at
    assert (sessions[0].ends_at - sessions[0].starts_at) * options.speed == timedelta(hours=4)
    assert options.heartbeat_interval_s < options.late_after_s < options.disconnected_after_s


def test_past_the_official_units_more_rooms_per_unit_are_valid_points() -> None:
    course = course_of(CourseOptions(points=12_000), NOW)
    assert len(course.rows) == 12_000
    assert len({row["code"] for row in course.rows}) == 12_000
    accepted_by_registration(course)


def test_the_same_seed_gives_the_same_course() -> None:
    first, second = (course_of(CourseOptions(points=500, seed=7), NOW) for _ in range(2))
    assert first == second


@settings(max_examples=30)
@given(points=st.integers(1, 4_000), seed=st.integers(0, 1_000))
def test_any_size_gives_that_many_distinct_points_and_an_outage_inside_one_province(
    points: int, seed: int
) -> None:
    course = course_of(CourseOptions(points=points, seed=seed), NOW)
    assert len(course.rows) == points
    assert len({row["code"] for row in course.rows}) == points
    province_of = {row["code"]: row["province_code"] for row in course.rows}
    for script in course.sessions:
        assert set(script.points) == set(province_of)
        if script.outage is not None:
            assert {province_of[code] for code in script.outage.points} <= {
                script.outage.province_code
            }


@given(
    first=st.integers(1, 50),
    extra=st.integers(0, 50),
    joins=st.floats(0, 100),
    ramp=st.floats(0, 100),
    moments=st.lists(st.floats(0, 500), min_size=2),
)
def test_learners_arrive_steadily_from_the_first_count_to_the_full_room(
    first: int, extra: int, joins: float, ramp: float, moments: list[float]
) -> None:
    plan = PointScript(joins, first, first + extra)
    counts = [learners_at(plan, joins + moment, ramp) for moment in sorted(moments)]
    assert counts == sorted(counts)
    assert all(first <= count <= first + extra for count in counts)
