"""The point agent's decisions, messages and learner counts, without a server; and its loop
against a scripted transport (the real services are in tests/e2e/test_point_agent.py)."""

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from point_agent import decisions
from point_agent.agent import Attempt, Console, Settings, run
from point_agent.decisions import (
    BACKOFF_CEILING_CAP_S,
    BACKOFF_FLOOR_CAP_S,
    OFF_AIR_RECHECK_S,
    REFUSALS_BELIEVED,
    Accepted,
    ExitCode,
    LinkDown,
    OffAir,
    Refused,
    Rejected,
    Standing,
    Stop,
    Throttled,
    Unavailable,
    Wait,
    backoff_s,
    decide,
)
from point_agent.heartbeats import Beat, SequenceNumbers, outcome_of, retry_after_s
from point_agent.learners import (
    FileCount,
    FixedCount,
    LearnerCountError,
    LearnerSource,
    Reading,
    TypedCount,
    ask_first_count,
    parse_count,
)
from point_agent.messages import Narrator, refusal_message, seconds_text

jitters = st.floats(min_value=0, max_value=1, exclude_max=True)
intervals = st.floats(min_value=0.01, max_value=3600)
NOW = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)


# --- decisions ---------------------------------------------------------------------------


def test_a_202_paces_the_next_beat_at_the_session_interval_unless_fixed() -> None:
    decision, standing = decide(Accepted(2.0), Standing(), jitter=0.5)
    assert decision == Wait(2.0, paced=True) and standing.interval_s == 2.0
    assert decide(Accepted(2.0), Standing(), 0.5, fixed_interval_s=0.1)[0] == Wait(0.1, True)
    # A server that does not say keeps the interval learnt before.
    assert decide(Accepted(None), Standing(interval_s=3.0), 0.5)[0] == Wait(3.0, True)


def test_a_202_forgets_the_failures_and_refusals_before_it() -> None:
    troubled = Standing(interval_s=5.0, failures=7, refusals=2)
    assert decide(Accepted(5.0), troubled, 0.5)[1] == Standing(interval_s=5.0)


@given(
    retry_after=st.floats(min_value=0.5, max_value=600),
    jitter=jitters,
    failures=st.integers(0, 50),
)
def test_a_server_asking_to_wait_is_waited_for_at_least_as_long(
    retry_after: float, jitter: float, failures: int
) -> None:
    for outcome in (Throttled(retry_after), Unavailable(503, retry_after)):
        decision, standing = decide(outcome, Standing(failures=failures), jitter)
        assert isinstance(decision, Wait) and not decision.paced
        assert retry_after <= decision.seconds <= retry_after * 1.2
        assert standing.failures == failures + 1


def test_a_retry_after_of_zero_is_not_a_busy_loop() -> None:
    decision, _ = decide(Throttled(0.0), Standing(), jitter=0.0)
    assert isinstance(decision, Wait) and decision.seconds > 0


@given(failures=st.integers(1, 200), interval=intervals, jitter=jitters)
def test_backoff_grows_within_its_cap_and_never_to_zero(
    failures: int, interval: float, jitter: float
) -> None:
    cap = min(max(interval, BACKOFF_FLOOR_CAP_S), BACKOFF_CEILING_CAP_S)
    wait = backoff_s(failures, interval, jitter)
    assert 0 < wait <= cap
    assert backoff_s(failures + 1, interval, jitter) >= wait


@given(interval=intervals, jitter=jitters)
def test_a_long_outage_is_retried_at_most_an_interval_apart(interval: float, jitter: float) -> None:
    standing = Standing(interval_s=interval)
    waits = []
    for _ in range(40):
        decision, standing = decide(LinkDown("cannot connect"), standing, jitter)
        assert isinstance(decision, Wait)
        waits.append(decision.seconds)
    assert max(waits) <= max(interval, BACKOFF_FLOOR_CAP_S)


def test_transport_errors_and_server_errors_without_retry_after_back_off() -> None:
    for outcome in (LinkDown("no answer in time"), Unavailable(502, None), Throttled(None)):
        first, standing = decide(outcome, Standing(interval_s=5.0), jitter=0.999)
        second, _ = decide(outcome, standing, jitter=0.999)
        assert isinstance(first, Wait) and isinstance(second, Wait)
        assert first.seconds < second.seconds <= 5.0


def test_a_refusal_is_believed_only_once_repeated() -> None:
    standing = Standing()
    refused = Refused(401, "unknown or revoked token")
    for _ in range(REFUSALS_BELIEVED - 1):
        decision, standing = decide(refused, standing, jitter=0.5)
        assert isinstance(decision, Wait)
    assert decide(refused, standing, 0.5)[0] == Stop(ExitCode.REFUSED)
    # A link failure in between does not make the server's word less true...
    _, between = decide(LinkDown("cut"), replace_refusals(REFUSALS_BELIEVED - 1), 0.5)
    assert decide(refused, between, 0.5)[0] == Stop(ExitCode.REFUSED)
    # ...but a heartbeat accepted in between does.
    _, accepted = decide(Accepted(5.0), replace_refusals(REFUSALS_BELIEVED - 1), 0.5)
    assert isinstance(decide(refused, accepted, 0.5)[0], Wait)


def replace_refusals(refusals: int) -> Standing:
    return Standing(refusals=refusals)


def test_a_heartbeat_the_server_cannot_understand_stops_the_agent_at_once() -> None:
    assert decide(Rejected(422, "bad"), Standing(), 0.5)[0] == Stop(ExitCode.INCOMPATIBLE)


# --- reading answers ----------------------------------------------------------------------


def answer(status: int, body: object = None, **headers: str) -> httpx.Response:
    content = b"" if body is None else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers)


def test_each_answer_is_read_as_its_outcome() -> None:
    received = {"received_at": NOW.isoformat(), "heartbeat_interval_s": 2.5}
    assert outcome_of(answer(202, received)) == Accepted(2.5)
    assert outcome_of(answer(202, {"received_at": NOW.isoformat()})) == Accepted(None)
    assert outcome_of(answer(429, {"detail": "x"}, **{"Retry-After": "3"})) == Throttled(3.0)
    assert outcome_of(answer(503, {}, **{"Retry-After": "2"})) == Unavailable(503, 2.0)
    assert outcome_of(answer(502)) == Unavailable(502, None)
    assert outcome_of(answer(408)) == Unavailable(408, None)
    token = answer(401, {"detail": "unknown or revoked token"})
    assert outcome_of(token) == Refused(401, "unknown or revoked token")
    assert outcome_of(answer(404, {"detail": "unknown session"})) == Refused(404, "unknown session")
    assert outcome_of(answer(422, {"detail": [{"msg": "bad"}]})) == Rejected(
        422, "Unprocessable Entity"
    )
    not_json = httpx.Response(404, content=b"<html>nginx</html>")
    assert outcome_of(not_json) == Refused(404, "Not Found")


def test_between_sessions_the_agent_waits_for_the_next_and_never_gives_up() -> None:
    filed = {"received_at": NOW.isoformat(), "heartbeat_interval_s": 5, "session_code": "S2"}
    assert outcome_of(answer(202, filed)) == Accepted(5.0, "S2")
    off_air = answer(409, {"detail": "no session of this point's courses is on air"})
    assert outcome_of(off_air) == OffAir("no session of this point's courses is on air")
    standing = Standing(failures=4, refusals=2)
    for _ in range(100):
        decision, standing = decide(OffAir("none"), standing, jitter=0.99)
        assert isinstance(decision, Wait)
        assert 0.8 * OFF_AIR_RECHECK_S <= decision.seconds <= OFF_AIR_RECHECK_S
    assert (standing.failures, standing.refusals) == (0, 0)
    # It names no session then, and the server's answer says which one heard it.
    assert "session_code" not in Beat("P1", None, seq=1, learners=3).body(NOW)
    narrator = Narrator("P1", None)
    waiting = narrator.after(OffAir("none"), Wait(30.0), 0, NOW)
    assert waiting is not None and "no session of point P1 is on air" in waiting
    assert narrator.after(OffAir("none"), Wait(30.0), 0, NOW) is None
    morning = narrator.after(Accepted(5.0, "S1"), Wait(5.0, paced=True), 12, NOW)
    assert morning is not None and "heard in session S1 (12 learners)" in morning
    assert narrator.after(Accepted(5.0, "S1"), Wait(5.0, paced=True), 12, NOW) is None
    afternoon = narrator.after(Accepted(5.0, "S2"), Wait(5.0, paced=True), 9, NOW)
    assert afternoon is not None and "heard in session S2" in afternoon


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    assert retry_after_s("7", NOW) == 7.0
    assert retry_after_s(format_datetime(NOW + timedelta(seconds=30), usegmt=True), NOW) == 30.0
    assert retry_after_s(format_datetime(NOW - timedelta(seconds=30), usegmt=True), NOW) == 0.0
    assert retry_after_s("soon", NOW) is None
    assert retry_after_s(None, NOW) is None


@given(st.lists(st.integers(0, 2**45), min_size=1, max_size=50))
def test_sequence_numbers_always_rise_even_when_the_clock_goes_back(clock: list[int]) -> None:
    seqs = SequenceNumbers(clock_ms=clock[0])
    sent = [seqs.next(clock_ms=ms) for ms in clock]
    assert sent == sorted(set(sent)) and sent[0] >= clock[0]


def test_a_restarted_agent_continues_above_the_numbers_it_sent() -> None:
    before = SequenceNumbers(clock_ms=1_000)
    last = max(before.next(clock_ms=1_000 + n) for n in range(5))
    assert SequenceNumbers(clock_ms=2_000).next(clock_ms=2_000) > last


def test_a_beat_body_is_what_the_server_takes() -> None:
    beat = Beat("P1", "S1", seq=9, learners=30, leaving=True, rtt_ms=12.345)
    assert beat.body(NOW) == {
        "point_code": "P1",
        "session_code": "S1",
        "seq": 9,
        "sent_at": NOW.isoformat(),
        "learners": 30,
        "leaving": True,
        "link": {"rtt_ms": 12.3},
    }
    assert set(Beat("P1", "S1", seq=1, learners=0).body(NOW)) == {
        "point_code",
        "session_code",
        "seq",
        "sent_at",
        "learners",
    }


# --- messages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refusal", "words"),
    [
        (Refused(401, "unknown or revoked token"), ["token was refused", "operations desk"]),
        (Refused(401, "bearer token required"), ["POINT_AGENT_TOKEN"]),
        (Refused(403, "a point may only speak for itself"), ["another point", "--point"]),
        (Refused(403, "point not enrolled in this session"), ["not enrolled", "--session"]),
        (Refused(404, "unknown session"), ["session S1 is unknown", "--session"]),
        (Refused(404, "Not Found"), ["--server"]),
        (Rejected(422, "Unprocessable Entity"), ["out of date"]),
    ],
)
def test_every_refusal_says_what_is_wrong_and_what_to_do(
    refusal: Refused | Rejected, words: list[str]
) -> None:
    message = refusal_message(refusal, "P1", "S1")
    assert all(word in message for word in words), message


def test_durations_read_naturally() -> None:
    assert [seconds_text(s) for s in (1.0, 2.5, 42.4, 185, 120)] == [
        "1 s",
        "2.5 s",
        "42 s",
        "3 min 5 s",
        "2 min",
    ]


def test_the_narrator_speaks_when_the_situation_changes_not_every_beat() -> None:
    narrator = Narrator("P1", "S1")
    paced = Wait(5.0, paced=True)
    retry = Wait(1.0)

    def after(outcome: Accepted | LinkDown | Throttled, decision: Wait, at: float) -> str | None:
        return narrator.after(outcome, decision, 30, NOW + timedelta(seconds=at))

    lines = [
        after(Accepted(5.0), paced, 0),
        after(Accepted(5.0), paced, 5),
        after(LinkDown("cannot connect: refused"), retry, 10),
        after(LinkDown("cannot connect: refused"), retry, 11),
        after(Accepted(5.0), paced, 52),
        after(Accepted(2.0), Wait(2.0, paced=True), 57),
        after(Throttled(1.0), retry, 58),
        after(Throttled(1.0), retry, 59),
    ]
    assert lines[0] is not None and lines[0].startswith("connected: point P1")
    assert "every 5 s" in lines[0]
    assert lines[1] is None and lines[3] is None and lines[7] is None
    assert lines[2] is not None and "link down since" in lines[2]
    assert lines[4] == "heard again after 42 s: sent the current count (30 learners)"
    assert lines[5] is not None and "every 2 s" in lines[5]
    assert lines[6] is not None and "429" in lines[6]


def test_the_narrator_says_why_it_stops() -> None:
    narrator = Narrator("P1", "S1")
    refused = Refused(401, "unknown or revoked token")
    first = narrator.after(refused, Wait(1.0), 0, NOW)
    last = narrator.after(refused, Stop(ExitCode.REFUSED), 0, NOW)
    assert first is not None and first.startswith("refused: the token was refused")
    assert last is not None and last.startswith("stopped: the token was refused")


def test_the_narrator_reports_learner_changes_and_problems_once() -> None:
    narrator = Narrator("P1", "S1")
    said = [
        narrator.learners(30, None),
        narrator.learners(30, None),
        narrator.learners(31, None),
        narrator.learners(31, "cannot read"),
        narrator.learners(31, "cannot read"),
        narrator.learners(33, None),
    ]
    assert said == [
        None,
        None,
        "learners: 31",
        "cannot read; still sending the last good count, 31",
        None,
        "learners: 33 (readable again)",
    ]


# --- learner counts -----------------------------------------------------------------------


def test_a_count_is_a_whole_number_in_range() -> None:
    assert parse_count(" 37\n") == 37
    for bad in ("", "thirty", "3.5", "-1", "1000001"):
        with pytest.raises(LearnerCountError):
            parse_count(bad)


def test_the_learners_file_is_read_again_and_a_bad_edit_keeps_the_last_good_count(
    tmp_path: Path,
) -> None:
    path = tmp_path / "learners.txt"
    path.write_text("25\n")
    source = FileCount(path)
    assert source.read().count == 25
    path.write_text("27")
    assert source.read().count == 27
    path.write_text("twenty")
    reading = source.read()
    assert reading.count == 27 and reading.problem is not None and "twenty" in reading.problem
    path.unlink()
    reading = source.read()
    assert reading.count == 27 and reading.problem is not None and "cannot read" in reading.problem


def test_an_unusable_learners_file_at_the_start_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LearnerCountError, match="cannot read"):
        FileCount(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(LearnerCountError, match="no usable count"):
        FileCount(tmp_path / "empty.txt")


def test_typed_counts_replace_the_first_and_typos_are_explained() -> None:
    said: list[str] = []
    answers = iter(["many", "30"])
    typed = TypedCount(ask_first_count(lambda prompt: next(answers), said.append))
    assert typed.read().count == 30
    typed.listen(io.StringIO("31\n\noops\n32\n"), said.append).join(timeout=5)
    assert typed.read().count == 32
    assert said[0] == "'many' is not a whole number of learners"
    assert any("'oops'" in line for line in said)


# --- the loop, on a scripted transport ----------------------------------------------------


class ScriptedServer:
    """Answers heartbeats from a script of statuses (None: the link is down); 202 after."""

    def __init__(self, script: list[int | None]) -> None:
        self.script = script
        self.bodies: list[dict[str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        step = self.script.pop(0) if self.script else 202
        if step is None:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        self.bodies.append(body)
        if step == 202:
            return httpx.Response(202, json={"received_at": NOW.isoformat()})
        detail = "unknown or revoked token" if step == 401 else "busy"
        return httpx.Response(step, json={"detail": detail}, headers={"Retry-After": "0"})


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's waits in milliseconds: these tests are about what is sent, not when."""
    monkeypatch.setattr(decisions, "BACKOFF_BASE_S", 0.001)
    monkeypatch.setattr(decisions, "BACKOFF_FLOOR_CAP_S", 0.001)
    monkeypatch.setattr(decisions, "REFUSAL_RECHECK_S", 0.001)


SETTINGS = Settings(
    server="http://attendance.test", token="pt_secret", point_code="P1", session_code="S1"
)


async def run_scripted(
    server: ScriptedServer, learners: LearnerSource, stop_after: int | None = None
) -> tuple[ExitCode, list[Attempt], list[str]]:
    stop = asyncio.Event()
    attempts: list[Attempt] = []
    lines: list[str] = []

    def seen(attempt: Attempt) -> None:
        attempts.append(attempt)
        if stop_after is not None and len(attempts) >= stop_after:
            stop.set()

    code = await run(
        Settings(**{**SETTINGS.__dict__, "fixed_interval_s": 0.01}),
        learners,
        stop,
        Console(lines.append, lines.append),
        on_attempt=seen,
        transport=httpx.MockTransport(server),
        jitter=lambda: 0.0,
    )
    return code, attempts, lines


class CountsInTurn:
    """A learner count that changes at given beats, as a room's operator might."""

    def __init__(self, counts: list[int]) -> None:
        self.counts = counts

    def read(self) -> Reading:
        return Reading(self.counts.pop(0) if len(self.counts) > 1 else self.counts[0])


@pytest.mark.usefixtures("quick_retries")
async def test_after_an_outage_the_current_count_goes_out_not_a_backlog() -> None:
    server = ScriptedServer([202, None, None, None, 202])
    # Changed while the link is down (third beat on).
    code, attempts, _ = await run_scripted(server, CountsInTurn([20, 20, 44]), stop_after=6)
    assert code == ExitCode.STOPPED
    # What reached the server: before the outage, the first beat back with the new count,
    # and nothing of the beats the link lost.
    assert [body["learners"] for body in server.bodies][:2] == [20, 44]
    assert [type(attempt.outcome) for attempt in attempts[:5]] == [
        Accepted,
        LinkDown,
        LinkDown,
        LinkDown,
        Accepted,
    ]
    seqs = [attempt.beat.seq for attempt in attempts]
    assert seqs == sorted(set(seqs))
    assert attempts[-1].beat.leaving


@pytest.mark.usefixtures("quick_retries")
async def test_a_stop_sends_one_leaving_beat_and_exits_normally() -> None:
    server = ScriptedServer([])
    code, _, lines = await run_scripted(server, FixedCount(12), stop_after=3)
    assert code == ExitCode.STOPPED
    assert [body.get("leaving", False) for body in server.bodies] == [False, False, False, True]
    assert any(line.startswith("left session S1") for line in lines)


@pytest.mark.usefixtures("quick_retries")
async def test_a_refused_token_stops_with_its_exit_code_and_never_shows_the_token() -> None:
    server = ScriptedServer([401] * REFUSALS_BELIEVED)
    code, attempts, lines = await run_scripted(server, FixedCount(12))
    assert code == ExitCode.REFUSED and len(attempts) == REFUSALS_BELIEVED
    assert lines[-1].startswith("stopped: the token was refused")
    assert not any("pt_secret" in line for line in lines)
    assert "pt_secret" not in repr(SETTINGS)
