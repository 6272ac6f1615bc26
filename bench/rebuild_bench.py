"""The reporting service against a real Kafka broker: rebuilding the totals after a restart.

    uv run python bench/rebuild_bench.py [--size FACTOR] [--runs 3] [--profile] [--py-spy]

One `SessionSchedule`, N = 100,000 x size `PointRegistration` records and N `PointStatus`
records (mixed states, realistic learner counts) published to the compacted topics. Baseline: a
bare aiokafka consumer (no group) draining the three topics from the beginning to their end
offsets, no decoding. Ours: a reporting process started on the broker, timed from its start
(and from its `/healthz` answering 200) until the session's totals add up to what was published
(registered, every state, learners present). Medians over `--runs` runs (a fresh process and
database each), spread, the ratio, and the RSS of the process after the rebuild per point (also
less the RSS of an idle reporting process on empty topics). Also the same records decoded and
folded in-process (`LiveTotals.put_*`, no Kafka), and the memory the fold holds per point
(tracemalloc). `--profile` adds a cProfile of that fold, where its memory was allocated, and the
fold with the incident detector at a few sizes with drops old and recent; `--py-spy` adds a
py-spy (--gil) profile of the reporting process in one more, untimed run.

It starts its own single-node Kafka broker on 127.0.0.1 (devstack), creates the topics, and
stops everything it started (broker, reporting processes) even on error. `--size` scales the
data (`--size 0.05` for a quick check).
"""

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import random
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from harness import (
    Figure,
    Record,
    Rule,
    Spy,
    Table,
    cpu_seconds,
    drain_bare,
    has,
    kafka,
    med,
    produce_all,
    record_figure,
    rss_bytes,
    run_after_machine_facts,
    size_and_runs,
    spread,
    spy_report,
    step,
)

from contracts.codec import decode, encode
from contracts.events import (
    Channel,
    Level,
    PointRegistration,
    PointState,
    PointStatus,
    SessionSchedule,
    Totals,
)
from contracts.tokens import hash_token, new_token
from contracts.topics import (
    POINT_STATUS,
    REGISTRY_POINTS,
    REGISTRY_SESSIONS,
    TOTALS,
    point_key,
    session_key,
    status_key,
)
from contracts.wire import read_point, read_status
from devstack.services import ServiceProcess, start_in
from registration.divisions import provinces
from reporting.incidents import IncidentDetector
from reporting.live import LiveTotals

REBUILD_POINTS = 100_000
PRESENT = (PointState.CONNECTED, PointState.LATE)
STATES = ("connected", "late", "disconnected", "never_connected")
# Where the reporting process's time goes while it folds the topics.
REPORTING_RULES: list[Rule] = [
    ("decode: pydantic validate_json", has("codec.py", "decode")),
    ("fold: LiveTotals (live.py)", has("live.py")),
    ("incidents, timeline, snapshots", has("incidents.py")),
    ("HTTP: uvicorn/starlette (the bench's polls)", has("starlette")),
    ("consume: faststream (parse, middlewares, subscriber loop)", has("faststream")),
    ("consume: aiokafka (fetch, records)", has("aiokafka")),
]


def wait_http(url: str, ok: int, deadline: float, every: float = 0.05) -> float:
    """Poll `url` until it answers `ok`; the perf_counter time it did."""
    with httpx.Client(timeout=3) as client:
        while time.perf_counter() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if client.get(url).status_code == ok:
                    return time.perf_counter()
            time.sleep(every)
    raise TimeoutError(f"{url} did not answer {ok} in time")


@dataclass
class Expected:
    registered: int = 0
    states: Counter[str] = field(default_factory=Counter)
    learners_present: int = 0
    learners_expected: int = 0

    def matches(self, counts: dict[str, int]) -> bool:
        return (
            counts.get("registered") == self.registered
            and all(counts.get(state) == self.states[state] for state in STATES)
            and counts.get("learners_present") == self.learners_present
            and counts.get("learners_expected") == self.learners_expected
        )


LEVELS = (
    (Level.COMMUNE, 65),
    (Level.WARD, 25),
    (Level.OTHER, 6),
    (Level.PROVINCE, 2),
    (Level.SPECIAL_ZONE, 2),
)
STATE_WEIGHTS = (
    (PointState.CONNECTED, 72),
    (PointState.LATE, 6),
    (PointState.DISCONNECTED, 12),
    (PointState.NEVER_CONNECTED, 10),
)


def rebuild_records(
    n: int, session: str, course: str, drop_age: tuple[float, float] = (300, 3000)
) -> tuple[list[Record], Expected]:
    """The session, n registrations and n statuses as the services would publish them, an hour
    into the session. Disconnected points dropped `drop_age` seconds ago: by default all past
    the incident detector's grace (60 s) and window (3 min), so every run (whenever it starts)
    sees them the same way."""
    rng = random.Random(20261123)
    now = datetime.now(UTC)
    province_codes = sorted(provinces())[::3]  # 12 real province codes
    schedule = SessionSchedule(
        code=session,
        course_code=course,
        title="Chuyên đề 1",
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=3),
    )
    records: list[Record] = [(REGISTRY_SESSIONS.name, session_key(session), encode(schedule))]
    statuses: list[Record] = []
    expected = Expected(registered=n)
    levels = [level for level, _ in LEVELS]
    level_weights = [weight for _, weight in LEVELS]
    states = [state for state, _ in STATE_WEIGHTS]
    state_weights = [weight for _, weight in STATE_WEIGHTS]
    for number in range(1, n + 1):
        code = f"P{number:06d}"
        level = rng.choices(levels, level_weights)[0]
        channel = (
            Channel.TEAMS
            if level is Level.OTHER
            else Channel.OTHER
            if number % 50 == 0
            else Channel.VIDEO_BRIDGE
        )
        expected_learners = rng.randint(20, 40)
        point = PointRegistration(
            code=code,
            name=f"UBND xã Điểm cầu số {number}",
            level=level,
            province_code=rng.choice(province_codes),
            unit_code=f"{number % 100_000:05d}"
            if level not in (Level.OTHER, Level.PROVINCE)
            else None,
            channel=channel,
            host="Nguyễn Văn An",
            phone="0912 345 678",
            expected_learners=expected_learners,
            courses=(course,),
            token_hash=hash_token(new_token()),
        )
        records.append((REGISTRY_POINTS.name, point_key(code), encode(point)))
        state = rng.choices(states, state_weights)[0]
        learners = max(0, expected_learners - rng.randint(0, 10))
        joined = schedule.starts_at + timedelta(seconds=rng.uniform(0, 300))
        if state is PointState.CONNECTED:
            last = now - timedelta(seconds=rng.uniform(0, 10))
            since = joined
        elif state is PointState.LATE:
            last = now - timedelta(seconds=rng.uniform(12, 30))
            since = last + timedelta(seconds=12)
        else:
            since = now - timedelta(seconds=rng.uniform(*drop_age))
            last = since - timedelta(seconds=30)
        heard = state is not PointState.NEVER_CONNECTED
        seconds = (last - joined).total_seconds() if heard else 0.0
        status = PointStatus(
            session_code=session,
            point_code=code,
            state=state,
            learners=learners if heard else 0,
            since=since if heard else schedule.starts_at,
            last_heartbeat_at=last if heard else None,
            reconnects=rng.choice((0, 0, 0, 1, 2)) if heard else 0,
            first_connected_at=joined if heard else None,
            present_seconds=seconds,
            learner_seconds=seconds * learners,
            min_learners=max(0, learners - 3) if heard else None,
            max_learners=learners + 2 if heard else None,
        )
        statuses.append((POINT_STATUS.name, status_key(session, code), encode(status)))
        expected.states[state.value] += 1
        expected.learners_expected += expected_learners
        if state in PRESENT:
            expected.learners_present += status.learners
    return records + statuses, expected


def summed(breakdown: dict[str, dict[str, int]]) -> dict[str, int]:
    keys = ("registered", *STATES, "learners_present", "learners_expected")
    return {key: sum(counts[key] for counts in breakdown.values()) for key in keys}


@dataclass
class RebuildRun:
    from_start: float
    from_healthy: float
    start_to_healthy: float
    rss: int
    peak_rss: int
    cpu: float
    totals_status: int
    # Process start -> GET /totals answered 200 with the last published totals (stale).
    last_shown: float | None


def rebuild_ours(
    bootstrap: str,
    data_dir: Path,
    session: str,
    expected: Expected,
    patience: float = 300,
    spy_out: Path | None = None,
) -> RebuildRun:
    """A reporting process from its start until the session's totals add up."""
    began = time.perf_counter()
    deadline = began + patience
    service = start_in("reporting", bootstrap=bootstrap, data_dir=data_dir)
    try:
        with contextlib.ExitStack() as stack:
            if spy_out is not None:
                time.sleep(0.3)  # let the interpreter come up before py-spy attaches
                stack.callback(Spy(service.process.pid, spy_out, nonblocking=True).stop)
            return _until_complete(service, began, deadline, session, expected, patience)
    finally:
        service.stop()


def _until_complete(
    service: ServiceProcess,
    began: float,
    deadline: float,
    session: str,
    expected: Expected,
    patience: float,
) -> RebuildRun:
    last_shown = _last_totals_shown(service, began, session)
    healthy = wait_http(f"{service.url}/healthz", 200, deadline)
    # GET /totals answers 500 once learners present pass 1,000,000 (Counts.learners_present
    # is a `Count`, at most 1e6): the province breakdown, summed, says the same thing.
    url = f"{service.url}/v1/sessions/{session}/breakdown/province"
    with httpx.Client(timeout=10) as client:
        while True:
            if service.process.poll() is not None:
                raise RuntimeError(f"reporting exited:\n{service.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                response = client.get(url)
                if response.status_code == 200 and expected.matches(summed(response.json())):
                    done = time.perf_counter()
                    break
            if time.perf_counter() > deadline:
                raise TimeoutError(f"totals incomplete after {patience:.0f} s")
            time.sleep(0.05)
        rss, peak = rss_bytes(service.process.pid), rss_bytes(service.process.pid, "VmHWM")
        cpu = cpu_seconds(service.process.pid)
        totals_status = client.get(f"{service.url}/v1/sessions/{session}/totals").status_code
    return RebuildRun(
        done - began, done - healthy, healthy - began, rss, peak, cpu, totals_status, last_shown
    )


def _last_totals_shown(service: ServiceProcess, began: float, session: str) -> float | None:
    """Process start -> the session's last published totals answered (marked stale), or None
    if no stale totals were answered within 10 s."""
    url = f"{service.url}/v1/sessions/{session}/totals"
    with httpx.Client(timeout=3) as client:
        while time.perf_counter() < began + 10:
            with contextlib.suppress(httpx.TransportError):
                answer = client.get(url)
                if answer.status_code == 200 and answer.json().get("stale"):
                    return time.perf_counter() - began
            time.sleep(0.02)
    return None


def last_snapshot(session: str) -> Record:
    """Totals reporting published before the restart (within `Count`'s bounds, unlike the
    rebuilt session's learners), as of a minute ago."""
    counts = dict.fromkeys(("registered", *STATES, "learners_present", "learners_expected"), 0)
    totals = Totals(session_code=session, as_of=datetime.now(UTC) - timedelta(minutes=1), **counts)
    return (TOTALS.name, session_key(session), encode(totals))


def idle_process(bootstrap: str, data_dir: Path) -> tuple[int, float]:
    """RSS of a reporting process with nothing to fold, settled, and its start-up seconds
    (process start -> /healthz 200)."""
    began = time.perf_counter()
    service = start_in("reporting", bootstrap=bootstrap, data_dir=data_dir)
    try:
        healthy = wait_http(f"{service.url}/healthz", 200, began + 60)
        time.sleep(2)
        return rss_bytes(service.process.pid), healthy - began
    finally:
        service.stop()


def fold(records: Sequence[Record], decode_only: bool = False) -> LiveTotals:
    """What reporting.app's handlers do with each record, minus Kafka and incidents."""
    live = LiveTotals()
    at = datetime.now(UTC)
    for topic, _, value in records:
        if topic == REGISTRY_SESSIONS.name:
            session = decode(SessionSchedule, value)
            if not decode_only:
                live.put_session(session, at)
        elif topic == REGISTRY_POINTS.name:
            point = read_point(value)
            if not decode_only:
                live.put_point(point, at)
        else:
            status = read_status(value)
            if not decode_only:
                live.put_status(status, status.last_heartbeat_at or status.since)
    return live


def timed_fold(records: Sequence[Record], decode_only: bool = False) -> float:
    began = time.perf_counter()
    fold(records, decode_only)
    return time.perf_counter() - began


def fold_memory(records: Sequence[Record], top: int = 0) -> tuple[int, str]:
    """Bytes the folded LiveTotals holds (tracemalloc; the input records are not counted), and
    with `top` the lines that allocated most of it."""
    tracemalloc.start()
    try:
        live = fold(records)
        current, _ = tracemalloc.get_traced_memory()
        snapshot = tracemalloc.take_snapshot() if top else None
    finally:
        tracemalloc.stop()
    del live
    lines = []
    if snapshot is not None:
        for stat in snapshot.statistics("lineno")[:top]:
            frame = stat.traceback[0]
            where = f"{Path(frame.filename).name}:{frame.lineno}"
            lines.append(f"{stat.size / 2**20:8.1f} MiB {stat.count:>9,} blocks  {where}")
        for model in (PointRegistration, PointStatus):
            values = [v for _, _, v in records if v.startswith(_event_type_prefix(model))]
            lines.append(f"one decoded {model.__name__}: {_held_by(model, values):,.0f} bytes")
    return current, "\n".join(lines)


def _event_type_prefix(model: type[PointRegistration] | type[PointStatus]) -> bytes:
    return b'{"event_type":"' + str(model.model_fields["event_type"].default).encode()


def _held_by(model: type[PointRegistration] | type[PointStatus], values: Sequence[bytes]) -> float:
    """Bytes per decoded record held by a list of them (tracemalloc)."""
    tracemalloc.start()
    try:
        held = [decode(model, value) for value in values]
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del held
    return current / max(1, len(values))


def fold_with_incidents(records: Sequence[Record], tick_every: int = 5_000) -> float:
    """`fold` plus what reporting.app does for incidents: `_watch_for_incidents` after each
    status (same logic, restated here) and `IncidentDetector.tick` (every second in the app,
    every `tick_every` records here); the seconds taken."""
    live = LiveTotals()
    detector = IncidentDetector()
    now = datetime.now(UTC)
    began = time.perf_counter()
    for number, (topic, _, value) in enumerate(records):
        if topic == REGISTRY_SESSIONS.name:
            live.put_session(decode(SessionSchedule, value), now)
        elif topic == REGISTRY_POINTS.name:
            live.put_point(read_point(value), now)
        else:
            status = read_status(value)
            before = live.put_status(status, status.last_heartbeat_at or status.since)
            point = live.registry.points[status.point_code]
            if status.state is PointState.DISCONNECTED and (
                before is None or before.state in PRESENT
            ):
                groups = [
                    (status.session_code, "province", point.province_code or "--"),
                    (status.session_code, "channel", point.channel.value),
                ]
                detector.dropped(status.session_code, status.point_code, groups, status.since)
            elif status.state in PRESENT:
                detector.back(status.session_code, status.point_code)
        if number % tick_every == 0:
            registered = {
                (code, kind, group): tally.registered
                for code, view in live.sessions.items()
                for kind, tallies in (("province", view.provinces), ("channel", view.channels))
                for group, tally in tallies.items()
            }
            detector.tick(datetime.now(UTC), registered)
    return time.perf_counter() - began


def incident_table(sizes: Sequence[int]) -> Table:
    table = Table(
        "in-process fold + incident detector (as reporting.app), by the age of the drops",
        ("points", "drops 5-50 min old (s)", "drops 70-150 s old (s)", "ratio"),
    )
    for n in sizes:
        old = fold_with_incidents(rebuild_records(n, "S1", "C1")[0])
        recent = fold_with_incidents(rebuild_records(n, "S1", "C1", drop_age=(70, 150))[0])
        table.rows.append((f"{n:,}", f"{old:.2f}", f"{recent:.2f}", f"{recent / old:.1f}"))
    table.notes.append(
        "drops past the 60 s grace but inside the 3 min window stay in the detector's"
        " confirmed deques, and IncidentDetector.back() (called for every connected or late"
        " status) rebuilds every deque of the session: O(drops) per status, quadratic overall"
    )
    return table


def profile_fold(records: Sequence[Record], top: int = 18) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    fold(records)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def run_rebuild(args: argparse.Namespace, tmp: Path) -> list[Table]:
    n = max(100, round(REBUILD_POINTS * args.size))
    session, course = "S1", "C1"
    step(f"rebuild: generating 1 session, {n:,} points and {n:,} statuses")
    records, expected = rebuild_records(n, session, course)
    topics = (REGISTRY_SESSIONS, REGISTRY_POINTS, POINT_STATUS)
    mine: list[RebuildRun] = []
    base: list[float] = []
    spy = ""
    with kafka(tmp / "rebuild") as broker:
        bootstrap = broker.bootstrap
        step("rebuild: idle reporting process (empty topics)")
        idle, idle_startup = idle_process(bootstrap, tmp / "rebuild-idle")
        step(f"rebuild: publishing {len(records):,} records")
        produced = asyncio.run(produce_all(bootstrap, records, chunk=20_000))
        asyncio.run(produce_all(bootstrap, [last_snapshot(session)]))
        for run in range(args.runs):
            seconds, count = asyncio.run(drain_bare(bootstrap, topics))
            assert count == len(records), (count, len(records))
            base.append(seconds)
            step(f"rebuild run {run + 1}: baseline drained {count:,} records in {seconds:.2f} s")
            mine.append(rebuild_ours(bootstrap, tmp / f"rebuild-{run}", session, expected))
            step(f"rebuild run {run + 1}: reporting complete in {mine[-1].from_start:.2f} s")
        if args.py_spy:
            step("rebuild: one more run, untimed, under py-spy")
            spy_out = tmp / "spy-rebuild.raw"
            rebuild_ours(bootstrap, tmp / "rebuild-spy", session, expected, spy_out=spy_out)
            spy = spy_report(
                spy_out, "rebuild: py-spy --gil of the reporting process", REPORTING_RULES
            )
    step("rebuild: in-process fold")
    decode_s = [timed_fold(records, decode_only=True) for _ in range(args.runs)]
    fold_s = [timed_fold(records) for _ in range(args.runs)]
    held, where = fold_memory(records, top=12 if args.profile else 0)

    b = med(base)
    from_start = [r.from_start for r in mine]
    from_healthy = [r.from_healthy for r in mine]
    to_healthy = [r.start_to_healthy for r in mine]
    rss = med([float(r.rss) for r in mine])
    table = Table(
        f"rebuild: 1 session, {n:,} points + {n:,} statuses ({len(records):,} records,"
        f" {sum(len(v) for _, _, v in records) / 1e6:.0f} MB), {args.runs} runs",
        ("what", "median (s)", "spread (s)", "ratio", "records/s"),
    )
    table.rows.append(
        ("baseline: bare consumer drain", f"{b:.2f}", spread(base), "1.0", _rate(len(records), b))
    )
    for label, values in (
        ("ours: process start -> totals complete", from_start),
        ("ours: /healthz 200 -> totals complete", from_healthy),
    ):
        m = med(values)
        table.rows.append(
            (label, f"{m:.2f}", spread(values), f"{m / b:.1f}", _rate(len(records), m))
        )
    table.rows.append(
        ("  (process start -> /healthz 200)", f"{med(to_healthy):.2f}", spread(to_healthy), "", "")
    )
    shown = [r.last_shown for r in mine if r.last_shown is not None]
    if shown:
        table.rows.append(
            (
                "ours: process start -> last totals shown, stale",
                f"{med(shown):.2f}",
                spread(shown),
                "",
                "",
            )
        )
    folding = [r.from_start - idle_startup for r in mine]
    m = med(folding)
    table.rows.append(
        (
            "ours: start -> complete, less idle start-up",
            f"{m:.2f}",
            spread(folding),
            f"{m / b:.1f}",
            _rate(len(records), m),
        )
    )
    for label, values in (
        ("in-process: decode only", decode_s),
        ("in-process: decode + LiveTotals.put_*", fold_s),
    ):
        m = med(values)
        table.rows.append(
            (label, f"{m:.2f}", spread(values), f"{m / b:.1f}", _rate(len(records), m))
        )
    table.notes += [
        f"published in {produced:.1f} s (acks=all, idempotent, futures gathered per 20,000)",
        f"an idle reporting process (empty topics) starts in {idle_startup:.2f} s (start ->"
        " /healthz 200); the subscribers start reading before /healthz answers, so"
        " '/healthz -> complete' misses the part of the fold done during start-up",
        f"reporting RSS after the rebuild: {rss / 2**20:.0f} MiB (peak"
        f" {med([float(r.peak_rss) for r in mine]) / 2**20:.0f} MiB)"
        f" = {rss / n:,.0f} bytes per point;"
        f" less the idle process ({idle / 2**20:.0f} MiB): {(rss - idle) / n:,.0f} bytes per point"
        " (target < 1 KB)",
        f"in-process LiveTotals after the fold (tracemalloc): {held / 2**20:.0f} MiB"
        f" = {held / n:,.0f} bytes per point",
        f"CPU of the reporting process until complete: median {med([r.cpu for r in mine]):.1f} s",
        f"GET /v1/sessions/{session}/totals after the rebuild answered"
        f" {', '.join(str(r.totals_status) for r in mine)} (learners present"
        f" {expected.learners_present:,})",
        f"expected: {dict(expected.states)}, learners present {expected.learners_present:,}"
        f" of {expected.learners_expected:,}",
    ]
    # The interpreter's start and imports (~2.5 s, the same on empty topics) are not the fold.
    rebuilt = med(folding)
    record_figure(
        Figure(
            "B5",
            f"reporting: fold of {n:,} points + statuses after a restart (process start ->"
            " totals, less an idle process's start)",
            f"{rebuilt:.2f} s",
            f"{spread(folding)} s",
            f"{b:.2f} s (bare drain of the same records)",
            f"{rebuilt / b:.2f}x the baseline",
            "<= 1.5x",
            rebuilt / b <= 1.5,
        )
    )
    record_figure(
        Figure(
            "B6",
            "reporting: memory per point (process RSS after the rebuild, less an idle process)",
            f"{(rss - idle) / n:,.0f} B",
            f"in-process fold {held / n:,.0f} B (tracemalloc)",
            "—",
            "—",
            "< 1 KB",
            (rss - idle) / n < 1024,
        )
    )
    record_figure(
        Figure(
            "B5",
            "reporting: a restarted instance answers its last totals, marked stale (process"
            " start -> GET /totals 200)",
            f"{med(shown):.2f} s" if len(shown) == len(mine) else "not shown",
            f"{spread(shown)} s, {len(shown)} of {len(mine)} runs" if shown else "—",
            "—",
            "—",
            "< 2 s",
            len(shown) == len(mine) and max(shown) < 2.0,
        )
    )
    tables = [table]
    if args.profile:
        step("rebuild: in-process fold with the incident detector")
        tables.append(
            incident_table([max(1000, round(x * args.size)) for x in (10_000, 20_000, 40_000)])
        )
        step("rebuild: profiling the in-process fold")
        print(profile_fold(records))
        print("where the folded LiveTotals' memory was allocated (tracemalloc, top lines):")
        print(where)
    if spy:
        print(spy)
    return tables


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}"


def main() -> None:
    parser = size_and_runs(__doc__, "scale of the data (1.0 = full)", "runs of the rebuild")
    parser.add_argument("--profile", action="store_true", help="cProfile the in-process fold")
    parser.add_argument(
        "--py-spy", action="store_true", help="py-spy the reporting process in an extra rebuild"
    )
    run_after_machine_facts("rebuild", run_rebuild, parser.parse_args())


if __name__ == "__main__":
    main()
