"""The partition clock: event time from the ingest's watermarks, outages taken out of silence."""

import json

from hypothesis import given
from hypothesis import strategies as st

from attendance.clock import Gap, IngestClock


def clock() -> IngestClock:
    return IngestClock(outage_after=1.0, gone_after=10.0)


def test_the_clock_reads_the_earliest_instance_still_writing() -> None:
    c = clock()
    assert c.now is None
    assert c.watermark("a", 100.0, final=False) == (None, True)
    assert c.now == 100.0
    assert c.watermark("b", 100.5, final=False) == (None, False)  # a is behind: wait for it
    assert c.now == 100.0
    c.watermark("a", 100.75, final=False)
    assert c.now == 100.5
    c.watermark("a", 101.0, final=False)
    assert c.now == 100.5  # b has not proved anything past 100.5 yet


def test_an_instance_that_stops_is_no_longer_waited_for() -> None:
    c = clock()
    c.watermark("a", 100.0, final=False)
    for step in range(1, 41):  # b every 0.25 s up to 110.0
        c.watermark("b", 100.0 + step * 0.25, final=False)
        assert c.now == 100.0  # a may only be slow: its heartbeats could still come
    c.watermark("b", 110.25, final=False)
    assert c.now == 110.25 and set(c.marks) == {"b"}


def test_behind_counts_from_the_end_of_an_outage() -> None:
    """Kafka away from 100 to 130: b is through first, 30 s ahead of a, whose heartbeats held
    meanwhile are still to land. a is waited for as long as after any silence of its own."""
    c = clock()
    c.watermark("a", 100.0, final=False)
    c.watermark("b", 100.0, final=False)
    gap, _ = c.watermark("b", 130.0, final=False)
    assert gap == Gap(100.0, 29.0)
    for step in range(1, 41):
        c.watermark("b", 130.0 + step * 0.25, final=False)
        assert c.now == 100.0
    c.watermark("b", 140.25, final=False)
    assert c.now == 140.25 and set(c.marks) == {"b"}


def test_an_instance_that_says_it_stops_is_let_go_at_once() -> None:
    c = clock()
    c.watermark("a", 100.0, final=False)
    c.watermark("b", 100.2, final=False)
    c.watermark("a", 100.25, final=True)
    assert c.now == 100.2 and set(c.marks) == {"b"}


def test_the_clock_stops_while_nothing_proves_the_ingest_accepting() -> None:
    c = clock()
    c.watermark("a", 100.0, final=True)
    assert c.now is None and c.watermark("a", 100.0, final=True) == (None, False)


def test_a_stretch_without_evidence_is_a_gap() -> None:
    c = clock()
    assert c.stamp(100.0) is None
    assert c.stamp(100.9) is None
    assert c.stamp(100.5) is None  # older than what is known: says nothing
    assert c.stamp(130.9) == Gap(100.9, 29.0)  # 30 s without a stamp, the first second counted
    gap, moved = c.watermark("a", 131.0, final=False)
    assert gap is None and moved


def test_the_clock_survives_a_restart() -> None:
    c = clock()
    c.watermark("a", 100.0, final=False)
    c.watermark("b", 100.3, final=False)
    c.stamp(103.0)  # after a gap
    saved = json.loads(json.dumps(c.saved()))
    again = IngestClock.resumed(saved, outage_after=1.0, gone_after=10.0)
    assert again == c
    assert IngestClock.resumed(None, outage_after=1.0, gone_after=10.0).now is None
    assert IngestClock.resumed({"now": "x"}, outage_after=1.0, gone_after=10.0).now is None


stamps = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", None]),  # None: a heartbeat's receive time
        st.floats(min_value=0.0, max_value=40.0, allow_nan=False),
        st.booleans(),
    ),
    max_size=60,
)


@given(stamps)
def test_the_clock_never_goes_back_nor_past_the_evidence(
    events: list[tuple[str | None, float, bool]],
) -> None:
    c = clock()
    previous = None
    for ingest, at, final in events:
        if ingest is None:
            c.stamp(at)
        else:
            c.watermark(ingest, at, final and ingest == "c")
        if previous is not None:
            assert c.now is not None and c.now >= previous
        previous = c.now
        if c.now is not None:
            assert c.evidence is not None and c.now <= c.evidence


@given(st.lists(st.floats(min_value=0.0, max_value=5.0, allow_nan=False), max_size=50))
def test_gaps_add_up_to_the_silence_beyond_the_allowance(steps: list[float]) -> None:
    c = clock()
    at, excused = 1000.0, 0.0
    c.stamp(at)
    for step in steps:
        at += step
        gap = c.stamp(at)
        if gap is not None:
            assert gap.seconds > 0
            excused += gap.seconds
    expected = sum(step - 1.0 for step in steps if step > 1.0)
    assert abs(excused - expected) < 1e-6
