"""The shape of a course like the real one, decided up front and without I/O.

Two days of morning and afternoon sessions over nine lecture topics; every official province and
commune-level unit as a point plus 200 Teams sites (more rooms per unit past 3,555 points); close
to 100,000 expected learners. What each point will do in each session (when it joins, whether it
never does, which province goes dark and when) is drawn here from one seeded random generator, so
a rehearsal can be replayed exactly.
"""

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts.events import Channel, Level
from registration.divisions import provinces as official_provinces
from registration.official import official_points

SEED_POINTS = 3_555
TEAMS_SITES = 200
TOPICS = (
    "Chuyên đề 1: Tổng quan chính quyền địa phương hai cấp",
    "Chuyên đề 2: Tổ chức bộ máy cấp xã",
    "Chuyên đề 3: Quản lý tài chính, ngân sách cấp xã",
    "Chuyên đề 4: Quản lý đất đai và đô thị",
    "Chuyên đề 5: Chuyển đổi số và dịch vụ công trực tuyến",
    "Chuyên đề 6: Văn hoá, xã hội và y tế cơ sở",
    "Chuyên đề 7: Quốc phòng, an ninh ở cơ sở",
    "Chuyên đề 8: Kỹ năng lãnh đạo, điều hành",
    "Chuyên đề 9: Tổng kết và thảo luận",
)
# (label, start in the simulated day, length, topics covered): the real course's rhythm.
SESSION_PATTERN = (
    ("Ngày 1 — sáng", timedelta(hours=7, minutes=30), timedelta(hours=4), TOPICS[0:2]),
    (
        "Ngày 1 — chiều",
        timedelta(hours=13, minutes=30),
        timedelta(hours=3, minutes=30),
        TOPICS[2:4],
    ),
    ("Ngày 2 — sáng", timedelta(hours=7, minutes=30), timedelta(hours=4), TOPICS[4:7]),
    (
        "Ngày 2 — chiều",
        timedelta(hours=13, minutes=30),
        timedelta(hours=3, minutes=30),
        TOPICS[7:9],
    ),
)
# Between two sessions the simulated clock keeps running at the chosen speed, but never for long:
# a rehearsal should not wait out a lunch break or a night.
BREAK = timedelta(hours=1)


@dataclass(frozen=True)
class CourseOptions:
    course_code: str = "TAPHUAN-2026"
    points: int = SEED_POINTS
    heartbeat_interval_s: float = 5.0
    speed: float = 1.0  # simulated seconds per real second
    join_over_s: float = 30.0  # real seconds over which points join at the start of a session
    never_join_share: float = 0.005
    outage_after_s: float = 50.0  # real seconds into each session
    outage_for_s: float = 45.0
    outage_share: float = 0.8
    seed: int = 2026

    @property
    def late_after_s(self) -> float:
        return 3 * self.heartbeat_interval_s

    @property
    def disconnected_after_s(self) -> float:
        return 6 * self.heartbeat_interval_s


@dataclass(frozen=True)
class SessionPlan:
    code: str
    title: str
    topic: str
    starts_at: datetime
    ends_at: datetime

    def as_request(self, course: str, options: CourseOptions) -> dict[str, object]:
        return {
            "code": self.code,
            "course_code": course,
            "title": self.title,
            "topic": self.topic,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "heartbeat_interval_s": options.heartbeat_interval_s,
            "late_after_s": options.late_after_s,
            "disconnected_after_s": options.disconnected_after_s,
        }


@dataclass(frozen=True)
class Outage:
    """Most points of one province stop being heard for a while, then come back."""

    province_code: str
    starts_after_s: float
    lasts_s: float
    points: frozenset[str]

    def silences(self, code: str, since_start_s: float) -> bool:
        return (
            code in self.points
            and self.starts_after_s <= since_start_s < self.starts_after_s + self.lasts_s
        )


@dataclass(frozen=True)
class PointScript:
    """What one point does in one session: when it joins and how full its room gets."""

    joins_after_s: float | None  # None: never joins
    first_learners: int
    learners: int


@dataclass(frozen=True)
class SessionScript:
    plan: SessionPlan
    points: dict[str, PointScript]
    outage: Outage | None


@dataclass(frozen=True)
class Course:
    options: CourseOptions
    rows: list[dict[str, str]]  # in the registration import format
    sessions: list[SessionScript] = field(default_factory=list)

    @property
    def expected_learners(self) -> int:
        return sum(int(row["expected_learners"]) for row in self.rows)

    def gateways(self) -> dict[str, str]:
        """The province point relaying for each province, where there is one."""
        return {
            row["province_code"]: row["code"]
            for row in self.rows
            if row["level"] == Level.PROVINCE.value
        }


def course_of(options: CourseOptions, now: datetime) -> Course:
    rng = random.Random(options.seed)
    rows = point_rows(options, rng)
    sessions = [session_script(plan, rows, options, rng) for plan in session_plans(options, now)]
    return Course(options, rows, sessions)


def point_rows(options: CourseOptions, rng: random.Random) -> list[dict[str, str]]:
    """Provinces first (they relay for their units), then units, extra rooms and Teams sites."""
    teams = round(options.points * TEAMS_SITES / SEED_POINTS)
    official = official_points(expected_learners=0)
    wanted = options.points - teams
    if wanted <= len(official):
        chosen = _provinces_first(official, wanted, rng)
    else:
        chosen = official + _extra_rooms(official, wanted - len(official), rng)
    rows = [_with_learners(row, rng) for row in chosen]
    provinces = sorted(official_provinces())
    rows += [_teams_site(number, rng.choice(provinces), rng) for number in range(1, teams + 1)]
    for row in rows:
        row["code"] = f"{options.course_code}-{row['code']}"
    return rows


def session_plans(options: CourseOptions, now: datetime) -> list[SessionPlan]:
    """The four sessions, the first starting now, the others after compressed breaks."""
    plans = []
    starts_at = now
    for number, (label, _, length, topics) in enumerate(SESSION_PATTERN, start=1):
        ends_at = starts_at + length / options.speed
        plans.append(
            SessionPlan(
                code=f"{options.course_code}-S{number}",
                title=label,
                topic="; ".join(topics),
                starts_at=starts_at,
                ends_at=ends_at,
            )
        )
        starts_at = ends_at + BREAK / options.speed
    return plans


def session_script(
    plan: SessionPlan, rows: list[dict[str, str]], options: CourseOptions, rng: random.Random
) -> SessionScript:
    length_s = (plan.ends_at - plan.starts_at).total_seconds()
    join_over = min(options.join_over_s, length_s / 4)
    points = {row["code"]: _point_script(row, join_over, options, rng) for row in rows}
    return SessionScript(plan, points, _outage(rows, options, length_s, rng))


def _point_script(
    row: dict[str, str], join_over: float, options: CourseOptions, rng: random.Random
) -> PointScript:
    expected = int(row["expected_learners"])
    if rng.random() < options.never_join_share:
        return PointScript(None, 0, 0)
    # Most rooms connect early, a tail straggles in.
    joins_after = join_over * rng.betavariate(1.2, 2.5)
    full = max(1, round(expected * rng.uniform(0.9, 1.0)))
    return PointScript(joins_after, max(1, round(full * rng.uniform(0.3, 0.6))), full)


def _outage(
    rows: list[dict[str, str]], options: CourseOptions, length_s: float, rng: random.Random
) -> Outage | None:
    if options.outage_after_s + options.outage_for_s > length_s:
        return None
    by_province: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if row["level"] != Level.PROVINCE.value and row["channel"] == Channel.VIDEO_BRIDGE.value:
            by_province[row["province_code"]].append(row["code"])
    if not by_province:
        return None
    # One of the biggest provinces, so that its fall shows on the national totals.
    candidates = sorted(by_province, key=lambda code: (-len(by_province[code]), code))[:5]
    province = rng.choice(candidates)
    points = by_province[province]
    silenced = rng.sample(points, round(len(points) * options.outage_share))
    return Outage(province, options.outage_after_s, options.outage_for_s, frozenset(silenced))


def _provinces_first(
    official: list[dict[str, str]], wanted: int, rng: random.Random
) -> list[dict[str, str]]:
    provinces = [row for row in official if row["level"] == Level.PROVINCE.value]
    units = [row for row in official if row["level"] != Level.PROVINCE.value]
    if wanted <= len(provinces):
        return rng.sample(provinces, wanted)
    return provinces + rng.sample(units, wanted - len(provinces))


def _extra_rooms(
    official: list[dict[str, str]], count: int, rng: random.Random
) -> list[dict[str, str]]:
    """More rooms in the same units: a second hall of a commune is a point of its own."""
    units = [row for row in official if row["level"] != Level.PROVINCE.value]
    extra = []
    for number in range(count):
        unit = units[number % len(units)]
        room = number // len(units) + 2
        extra.append(unit | {"code": f"{unit['code']}-P{room}", "name": f"{unit['name']} ({room})"})
    rng.shuffle(extra)
    return extra


def _with_learners(row: dict[str, str], rng: random.Random) -> dict[str, str]:
    # Provincial halls gather leaders of every department; communes fill one meeting room.
    low, high = (60, 120) if row["level"] == Level.PROVINCE.value else (12, 44)
    return row | {"expected_learners": str(rng.randint(low, high))}


def _teams_site(number: int, province: str, rng: random.Random) -> dict[str, str]:
    return {
        "code": f"TEAMS-{number:03d}",
        "name": f"Điểm Teams {number:03d}",
        "level": Level.OTHER.value,
        "channel": Channel.TEAMS.value,
        "province_code": province,
        "unit_code": "",
        "host": "",
        "phone": "",
        "expected_learners": str(rng.randint(20, 50)),
        "courses": "",
    }
